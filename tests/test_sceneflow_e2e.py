"""SceneFlow end to end on the embedded world: the synthetic FlyingThings3D writer, evaluation
against PFM ground truth, hints on SceneFlow pairs, and a few training steps with hints."""
from __future__ import annotations

import json
import math
import re
import os

import cv2
import numpy as np
import pytest
import torch

import networks
from datasets.sceneflow import (
    SCENEFLOW_STEREO_SCALE_FACTOR, make_sceneflow_splits, read_sceneflow_disparity,
    sceneflow_disparity_path, sceneflow_image_path)
from datasets.sceneflow_dataset import SceneFlowDataset
from depth_hints import evaluation as ev
from depth_hints import synthetic as S
from depth_hints.checkpoints import save_weights_folder
from depth_hints.options import parse_evaluate
from depth_hints.pfm import write_pfm
from depth_hints.splits import read_split_file

RENDER_W, RENDER_H = 256, 144  # 16:9 like SceneFlow's 960x540
FX = 1050.0 * RENDER_W / 960.0  # 280 px
SEQUENCES, FRAMES, SEED = 2, 4, 0  # one TRAIN and one TEST sequence
TRAIN, TEST = "flyingthings3d/TRAIN/A/0000", "flyingthings3d/TEST/A/0000"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(root, split folder) of a tiny synthetic SceneFlow tree with its split lists."""
    root = tmp_path_factory.mktemp("sceneflow") / "sf"
    summary = S.write_synthetic_sceneflow(str(root), SEQUENCES, FRAMES, RENDER_W, RENDER_H, SEED)
    assert summary["train_folders"] == [TRAIN] and summary["test_folders"] == [TEST]
    split = root / "splits" / "sceneflow"
    make_sceneflow_splits(str(root), str(split), val_fraction=0.0)
    return root, split


def run(argv) -> dict:
    return ev.evaluate(parse_evaluate([str(a) for a in argv]))


def gt_disparities(root, split):
    return [read_sceneflow_disparity(sceneflow_disparity_path(str(root), s.folder, s.frame_index, s.side))
            for s in read_split_file(split / "test_files.txt")]


def as_scaled_disp(disparity_px, fx=FX):
    """Disparity in pixels -> the scaled disparity a stereo-trained model would output."""
    return disparity_px * SCENEFLOW_STEREO_SCALE_FACTOR / fx


# ----------------------------------------------------------------------------- the writer

def test_writer_layout_and_ground_truth_consistency(world):
    root, split = world
    for folder in (TRAIN, TEST):
        for frame in range(FRAMES):
            for side in "lr":
                for sceneflow_pass in ("clean", "final"):
                    assert os.path.isfile(sceneflow_image_path(str(root), folder, frame, side, sceneflow_pass))
                assert os.path.isfile(sceneflow_disparity_path(str(root), folder, frame, side))
    assert {(s.folder, s.frame_index) for s in read_split_file(split / "test_files.txt")} == \
        {(TEST, f) for f in range(FRAMES)}
    assert {(s.frame_index, s.side) for s in read_split_file(split / "train_files.txt")} == \
        {(f, side) for f in (1, 2) for side in "lr"}

    # the loader's depth (fx * 1 / disparity) is the rendered depth in metres; sky = 0
    world_ = S.make_world(SEED, 0, FRAMES)
    _, depth, _ = S.render_view(world_, S.camera_to_world(world_, 1, 2), S.sceneflow_intrinsics(RENDER_W, RENDER_H),
                                RENDER_H, RENDER_W, pixel_offset=0.5)
    loaded = SceneFlowDataset(str(root), [f"{TRAIN} 1 l"], 64, 128, (0,)).get_depth(TRAIN, 1, "l")
    np.testing.assert_allclose(loaded, depth, rtol=1e-5)
    assert (loaded[depth == 0] == 0).all() and (depth == 0).any() and (depth > 0).mean() > 0.5

    # rectified pair: the right view sampled at x - d(left) reproduces the left view, and x + d(right)
    # the right one (median error, robust to occlusions), far better than no shift
    def image(side):
        path = sceneflow_image_path(str(root), TRAIN, 1, side)
        return cv2.imread(path)[..., ::-1].astype(np.float32)
    left, right = image("l"), image("r")
    xs, ys = np.meshgrid(np.arange(RENDER_W, dtype=np.float32), np.arange(RENDER_H, dtype=np.float32))
    for target, other, side, sign in ((left, right, "l", -1), (right, left, "r", 1)):
        d = read_sceneflow_disparity(sceneflow_disparity_path(str(root), TRAIN, 1, side))
        warped = cv2.remap(other, xs + sign * d, ys, cv2.INTER_LINEAR)
        inside = (d > 0) & (xs + sign * d >= 0) & (xs + sign * d <= RENDER_W - 1)
        assert np.median(np.abs(warped - target).mean(-1)[inside]) < 2.0
        assert np.median(np.abs(other - target).mean(-1)[inside]) > 8.0
        assert 0 < d[d > 0].min() and d.max() < 60  # 3..165 px at 960 wide, scaled to 256

    # the final pass is the clean one blurred and noisy, not a copy
    final = cv2.imread(sceneflow_image_path(str(root), TRAIN, 1, "l", "final"))[..., ::-1].astype(np.float32)
    assert 0.5 < np.abs(final - left).mean() < 10


@pytest.fixture
def make_synthetic_script():
    """scripts/make_synthetic_kitti.py as a module (scripts/ is not a package)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                        "make_synthetic_kitti.py")
    spec = importlib.util.spec_from_file_location("make_synthetic_kitti", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_sceneflow_layout_rerun_skips_and_other_parameters_are_refused(tmp_path, capsys,
                                                                             make_synthetic_script):
    out = tmp_path / "sf"
    argv = ["--layout", "sceneflow", "--out_dir", str(out), "--num_sequences", "3",
            "--frames_per_sequence", "3", "--width", "48", "--height", "27", "--val_fraction", "0.5"]
    make_synthetic_script.main(argv)
    summary = json.loads(capsys.readouterr().out)
    # 3 sequences: 2 TRAIN (one held out as val) and 1 TEST; frame 1 is the only inner frame
    assert summary["split_counts"] == {"train_files.txt": 2, "val_files.txt": 2, "test_files.txt": 3}
    assert summary["split_dir"] == str(out / "splits" / "sceneflow")
    assert summary["files_written"] == 1 + 3 * 3 * 2 * 3  # config + sequences x frames x sides x files
    victim = sceneflow_disparity_path(str(out), "flyingthings3d/TRAIN/A/0001", 2, "r")
    before = read_sceneflow_disparity(victim)
    os.remove(victim)
    make_synthetic_script.main(argv)
    summary = json.loads(capsys.readouterr().out)
    assert summary["files_written"] == 1 and summary["views_rendered"] == 2
    np.testing.assert_array_equal(read_sceneflow_disparity(victim), before)
    with pytest.raises(ValueError, match="overwrite"):
        S.write_synthetic_sceneflow(str(out), 3, 3, 64, 36)


# ----------------------------------------------------------------------------- evaluation

def test_evaluation_of_the_ground_truth_itself(world, tmp_path):
    root, split = world
    gts = gt_disparities(root, split)
    disps = np.stack([as_scaled_disp(np.where(g > 0, g, 1.0)) for g in gts]).astype(np.float32)
    np.save(tmp_path / "gt.npy", disps)
    out = tmp_path / "m.json"
    result = run(["--ext_disp_to_eval", tmp_path / "gt.npy", "--dataset", "sceneflow", "--data_path", root,
                  "--eval_split", split, "--eval_stereo", "--output_json", out])
    assert result["n"] == FRAMES and result["scaling"] == "stereo"
    assert result["pred_depth_scale_factor"] == SCENEFLOW_STEREO_SCALE_FACTOR == 10.0
    saved = json.loads(out.read_text())
    for name in ("abs_rel", "sq_rel", "rmse", "rmse_log", "epe", "bad1", "bad3"):
        assert saved[name] == pytest.approx(0, abs=1e-5), name
    assert saved["a1"] == saved["a2"] == saved["a3"] == 1.0
    # a mono model with an arbitrary scale: median scaling recovers the ground truth
    np.save(tmp_path / "scaled.npy", disps * 0.37)
    mono = run(["--ext_disp_to_eval", tmp_path / "scaled.npy", "--dataset", "sceneflow", "--data_path", root,
                "--eval_split", split, "--eval_mono"])
    assert mono["epe"] == pytest.approx(0, abs=1e-4) and mono["abs_rel"] == pytest.approx(0, abs=1e-6)
    assert mono["median_ratio"] == pytest.approx(10.0 * 0.37, rel=1e-5)  # gt / (1 / scaled disp)


HAND_FOLDER = "flyingthings3d/TEST/B/0007"


def hand_tree(root, num_frames=2, height=20, width=32, disparity=10.0):
    """Constant ground-truth disparity with a sky band (0), a NaN and an inf, which never count."""
    gt = np.full((height, width), disparity, np.float32)
    gt[:4] = 0
    gt[5, 5], gt[6, 6] = np.nan, np.inf
    for frame in range(num_frames):
        write_pfm(sceneflow_disparity_path(str(root), HAND_FOLDER, frame, "l"), gt)
    split = root / "split"
    split.mkdir(parents=True, exist_ok=True)
    (split / "test_files.txt").write_text("".join(f"{HAND_FOLDER} {f} l\n" for f in range(num_frames)))
    return split


def test_evaluation_of_a_perturbed_prediction_by_hand(tmp_path):
    split = hand_tree(tmp_path)
    fx = 1050.0 * 32 / 960  # the ground truth is 32 px wide
    # frame 0: 12 px on the left half, 10 px on the right; frame 1: the same at half resolution
    pred = np.full((10, 16), 10.0)
    pred[:, :8] = 12.0
    full = cv2.resize(pred, (32, 20), interpolation=cv2.INTER_NEAREST)
    disps = [as_scaled_disp(full, fx), as_scaled_disp(pred, fx)]
    np.save(tmp_path / "d0.npy", np.stack(disps[:1]).astype(np.float32))
    np.save(tmp_path / "d1.npy", np.stack(disps[1:]).astype(np.float32))
    split1 = hand_tree(tmp_path / "one", num_frames=1)
    full_res = run(["--ext_disp_to_eval", tmp_path / "d0.npy", "--dataset", "sceneflow", "--data_path", tmp_path,
                    "--eval_split", split1, "--eval_stereo"])
    # valid: rows 4..19 without the NaN and the inf (both in the left half): 254 pixels of the
    # left half are 2 px off, 256 of the right half exact; gt depth fx/10, predicted fx/12 there
    w = (16 * 16 - 2) / (16 * 32 - 2)
    gt_depth, pred_depth = fx / 10, fx / 12
    expected = {"epe": 2 * w, "bad1": w, "bad3": 0.0,
                "abs_rel": w * (gt_depth - pred_depth) / gt_depth,
                "sq_rel": w * (gt_depth - pred_depth) ** 2 / gt_depth,
                "rmse": math.sqrt(w) * (gt_depth - pred_depth),
                "rmse_log": math.sqrt(w) * math.log(1.2), "a1": 1.0, "a2": 1.0, "a3": 1.0}
    for name, value in expected.items():
        assert full_res[name] == pytest.approx(value, rel=1e-5, abs=1e-9), name
    # a half-resolution prediction is resized bilinearly to the ground truth's 32x20 first
    half = run(["--ext_disp_to_eval", tmp_path / "d1.npy", "--dataset", "sceneflow", "--data_path",
                tmp_path / "one", "--eval_split", split1, "--eval_stereo"])
    blended = cv2.resize(pred.astype(np.float32), (32, 20), interpolation=cv2.INTER_LINEAR)[4:]
    errors = np.abs(blended - 10.0)
    errors = np.delete(errors.reshape(-1), [(5 - 4) * 32 + 5, (6 - 4) * 32 + 6])
    assert half["epe"] == pytest.approx(errors.mean(), rel=1e-5)
    assert half["bad1"] == pytest.approx((errors > 1).mean())


def test_evaluation_warnings_model_prediction_and_missing_split(world, tmp_path, monkeypatch):
    from depth_hints import splits

    root, split = world
    torch.manual_seed(0)
    encoder = networks.ResnetEncoder(18, False)
    stereo = tmp_path / "stereo"
    save_weights_folder(str(stereo), {"encoder": encoder, "depth": networks.DepthDecoder(encoder.num_ch_enc)},
                        64, 96, use_stereo=True)
    result = run(["--load_weights_folder", stereo, "--dataset", "sceneflow", "--data_path", root,
                  "--eval_split", split, "--eval_mono", "--num_workers", 0, "--batch_size", 4,
                  "--save_pred_disps", "--output_json", tmp_path / "m.json"])
    assert any("inflates" in w for w in result["warnings"])
    assert np.load(stereo / "disps_sceneflow_split.npy").shape == (FRAMES, 64, 96)
    for name in ev.METRIC_NAMES + ev.DISPARITY_METRIC_NAMES:
        assert np.isfinite(result[name]), name
    quiet = run(["--ext_disp_to_eval", stereo / "disps_sceneflow_split.npy", "--load_weights_folder", stereo,
                 "--dataset", "sceneflow", "--data_path", root, "--eval_split", split, "--eval_stereo"])
    assert quiet["warnings"] == [] and quiet["n"] == FRAMES
    with pytest.raises(ev.EvaluationError, match=r"3 predictions .* 4 lines"):
        np.save(tmp_path / "three.npy", np.load(stereo / "disps_sceneflow_split.npy")[:3])
        run(["--ext_disp_to_eval", tmp_path / "three.npy", "--dataset", "sceneflow", "--data_path", root,
             "--eval_split", split, "--eval_stereo"])
    monkeypatch.setattr(splits, "PROJECT_SPLITS_DIR", tmp_path / "no_splits")
    with pytest.raises(ev.EvaluationError, match=r"sceneflow/test_files\.txt.*make_sceneflow_splits\.py"):
        run(["--ext_disp_to_eval", tmp_path / "three.npy", "--eval_split", "sceneflow_test", "--eval_stereo"])


# ----------------------------------------------------------------------------- hints

def test_bank_disparities_follow_focal_length_and_width():
    from depth_hints import fused_sgm

    sceneflow_35mm = 1050.0 / 960.0
    assert fused_sgm.bank_disparities(960, sceneflow_35mm) == (128, 176, 240, 288)
    assert fused_sgm.bank_disparities(480, sceneflow_35mm) == (64, 96, 128, 144)
    assert fused_sgm.bank_disparities(RENDER_W, sceneflow_35mm) == (32, 48, 64, 80)
    assert fused_sgm.bank_disparities(1024, 0.58) == fused_sgm.NUM_DISPARITIES  # KITTI's own bank
    assert fused_sgm.bank_disparities(64, sceneflow_35mm) == (16, 32)  # at least 16, no duplicates
    assert fused_sgm.bank_disparities(64, 8.0) == (48,)  # at most the last multiple of 16 below W
    assert [m.name for m in fused_sgm.sgbm_bank((16, 32))] == [
        "bs1_nd16", "bs1_nd32", "bs2_nd16", "bs2_nd32", "bs3_nd16", "bs3_nd32"]


@pytest.fixture(scope="module")
def hint_run(world):
    """Hints of every train and test frame of the synthetic tree at its own size, with a report."""
    from depth_hints.precompute import precompute
    from depth_hints.options import parse_precompute

    root, split = world
    lines = root / "hint_lines.txt"
    lines.write_text((split / "train_files.txt").read_text() + (split / "test_files.txt").read_text())
    report = root / "hints_report.json"
    options = parse_precompute(["--dataset", "sceneflow", "--data_path", str(root), "--filenames", str(lines),
                                "--height", str(RENDER_H), "--width", str(RENDER_W), "--num_workers", "0",
                                "--report", str(report)])
    summary = precompute(options, progress=False, verbose=False)
    assert summary.ok and summary.computed == 8
    return options.save_path, json.loads(report.read_text())


def test_hints_on_synthetic_sceneflow_are_close_to_the_true_disparity(world, hint_run):
    from depth_hints.hint_files import hint_file_path, load_hint

    root, _ = world
    save_path, report = hint_run
    accuracy = report["accuracy_mean"]["hint"]
    assert accuracy["frames"] == 8 and accuracy["coverage"] > 0.7
    assert accuracy["epe"] < 1.5 and accuracy["bad3"] < 0.1
    assert {f["gt"] for f in report["frames"]} == {"sceneflow_pfm"}
    assert "bs1_nd80" in report["accuracy_mean"]["matchers"]  # the bank scaled to 256 px
    # nominal convention: hint depth x 10 is the ground-truth depth in scene units (here metres)
    hint = load_hint(hint_file_path(save_path, TEST, 2, "l"))
    gt_depth = SceneFlowDataset(str(root), [f"{TEST} 2 l"], 64, 128, (0,)).get_depth(TEST, 2, "l")
    both = (hint > 0) & (gt_depth > 0)
    relative = np.abs(hint[both] * SCENEFLOW_STEREO_SCALE_FACTOR - gt_depth[both]) / gt_depth[both]
    assert both.mean() > 0.6 and np.median(relative) < 0.03


def test_a_few_training_steps_with_sceneflow_hints(world, hint_run, tmp_path):
    from depth_hints.options import parse_train
    from depth_hints.trainer import Trainer

    root, split = world
    save_path, _ = hint_run
    train_split = tmp_path / "split"
    train_split.mkdir()
    for name in ("train_files.txt", "val_files.txt"):  # one TRAIN sequence: no val of its own
        (train_split / name).write_text((split / "train_files.txt").read_text())
    opt = parse_train(["--dataset", "sceneflow", "--data_path", str(root), "--split", str(train_split),
                       "--height", "64", "--width", "128", "--batch_size", "2", "--num_workers", "0",
                       "--weights_init", "scratch", "--no_val", "--num_epochs", "1", "--seed", "0",
                       "--log_dir", str(tmp_path / "logs"), "--model_name", "sf_hints",
                       "--log_frequency", "1000", "--frame_ids", "0", "--use_stereo", "--use_depth_hints",
                       "--depth_hint_path", save_path])
    trainer = Trainer(opt)
    batch = trainer.train_set[0]
    assert batch["depth_hint"].shape == (1, 64, 128) and batch["depth_hint_mask"].mean() > 0.5
    summary = trainer.train()
    assert summary["steps"] == 2 and np.isfinite(summary["losses"]).all()


def test_a_missing_ground_truth_disparity_is_named_before_predicting(world, tmp_path, monkeypatch):
    import shutil
    from datasets.registry import make_layout
    from depth_hints import evaluation_base
    from depth_hints.splits import read_split_file

    def refuse(*args, **kwargs):
        raise AssertionError("predicted before the inputs were checked")
    monkeypatch.setattr(evaluation_base, "predict_disparities", refuse)
    root, split = world
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    sample = read_split_file(split / "test_files.txt", require_side=False)[1]
    pfm = make_layout("sceneflow", str(copy)).gt_path(sample.folder, sample.frame_index, sample.side)
    os.remove(pfm)
    encoder = networks.ResnetEncoder(18, False)
    save_weights_folder(str(tmp_path / "w"), {"encoder": encoder, "depth": networks.DepthDecoder(encoder.num_ch_enc)},
                        64, 96, use_stereo=True)
    with pytest.raises(ev.EvaluationError, match=re.escape(pfm)):
        run(["--load_weights_folder", tmp_path / "w", "--dataset", "sceneflow", "--data_path", copy,
             "--eval_split", split, "--eval_stereo", "--num_workers", 0])
