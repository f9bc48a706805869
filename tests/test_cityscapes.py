"""Cityscapes (--dataset cityscapes, --eval_split cityscapes) on a synthetic tree with the
published file names and JSON fields: loader (top 75 %, per-image camera, snippet fallback),
hints, a training step, the evaluation's crop and scaling on hand-made ground truth, the
ManyDepth test list, and bad inputs."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from datasets.cityscapes import (CITYSCAPES_SPLIT_FILES, CityscapesLayout, disparity_png_array,
                                 fetch_cityscapes_split, read_camera_json, read_cityscapes_test_list,
                                 read_disparity_png)
from datasets.layout import CalibrationError, LayoutError
from datasets.mono_dataset import MonoDataset
from depth_hints import evaluation as ev
from depth_hints.hint_files import hint_file_path, load_hint
from depth_hints.options import parse_evaluate, parse_precompute, parse_train
from depth_hints.precompute import precompute
from depth_hints.splits import Sample, sha256_of
from depth_hints.synthetic.cityscapes_writer import CITYSCAPES_BASELINES, write_synthetic_cityscapes

W, H = 256, 128  # a 2:1 frame like 2048 x 1024; the loader keeps the top 96 rows
CROP_H = 96
AACHEN, BREMEN = "train/aachen/000000", "train/bremen/000000"
SHARED_LIST = Path(__file__).resolve().parents[2] / "shared" / "cityscapes_splits" / "cityscapes" / "test_files.txt"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes") / "cs"
    summary = write_synthetic_cityscapes(str(root), width=W, height=H)
    assert summary["folders"] == [AACHEN, BREMEN]
    split = root / "split"
    split.mkdir()
    lines = "".join(f"{folder} 19 {side}\n" for folder in (AACHEN, BREMEN) for side in "lr")
    for name in ("train_files.txt", "val_files.txt"):
        (split / name).write_text(lines)
    return root, split, summary


def test_layout_paths_per_image_camera_and_crop(tree):
    root, _, summary = tree
    layout = CityscapesLayout(str(root))
    assert layout.image_path(AACHEN, 19, "l") == str(
        root / "leftImg8bit_sequence" / "train" / "aachen" / "aachen_000000_000019_leftImg8bit.png")
    assert layout.image_path(AACHEN, 18, "r") == str(
        root / "rightImg8bit_sequence" / "train" / "aachen" / "aachen_000000_000018_rightImg8bit.png")
    K = summary["K"]
    camera = layout.camera(AACHEN, 19)
    # fy and cy normalised by the kept 96 rows (0.75 H), fx and cx by the width
    assert camera.intrinsics == pytest.approx((K[0, 0] / W, K[1, 1] / CROP_H, K[0, 2] / W, K[1, 2] / CROP_H))
    assert camera.baseline == CITYSCAPES_BASELINES[0]
    assert layout.camera(BREMEN, 19).baseline == CITYSCAPES_BASELINES[1]  # per camera
    # frame 18 has no camera file of its own: its snippet's
    assert layout.camera_path(AACHEN, 18).endswith("aachen_000000_000019_camera.json")
    assert layout.camera(AACHEN, 18) == camera
    # ground truth: the disparity PNG cropped to the top 75 %, depth = baseline fx / d
    gt = layout.read_gt(AACHEN, 19, "l")
    assert gt.kind == "disparity" and gt.values.shape == (CROP_H, W)
    full = read_disparity_png(layout.gt_path(AACHEN, 19, "l"))
    np.testing.assert_array_equal(gt.values, full[:CROP_H])
    depth = layout.gt_depth(AACHEN, 19, "l")
    valid = gt.values > 0
    np.testing.assert_allclose(depth[valid], CITYSCAPES_BASELINES[0] * K[0, 0] / gt.values[valid], rtol=1e-5)
    assert layout.read_gt(AACHEN, 19, "r") is None
    with pytest.raises(LayoutError, match="<split>/<city>/<sequence:06d>"):
        layout.check_sample(Sample("aachen", 19, "l"))


def test_disparity_png_round_trip():
    d = np.array([[0.0, 1.0, 37.25], [-3.0, np.inf, 0.00390625]])
    p = disparity_png_array(d)
    assert p.tolist() == [[0, 257, 9537], [0, 0, 2]]  # p = 256 d + 1, 0 = none


def test_loader_crops_and_normalises_by_the_kept_rows(tree):
    root, _, summary = tree
    dataset = MonoDataset(str(root), [f"{AACHEN} 19 l"], 64, 128, (0, -1, 1, "s"),
                          layout=CityscapesLayout(str(root)), load_depth_gt=True)
    sample = dataset[0]
    K = summary["K"]
    assert sample[("K", 0)][1, 1] == pytest.approx(K[1, 1] / CROP_H * 64)
    assert sample[("K", 0)][0, 2] == pytest.approx(K[0, 2] / W * 128)
    assert sample["depth_gt"].shape == (1, CROP_H, W)
    # the image is the top 96 rows resized: compare with a crop done by hand
    from PIL import Image
    image = Image.open(root / "leftImg8bit_sequence" / "train" / "aachen" /
                       "aachen_000000_000019_leftImg8bit.png").convert("RGB")
    by_hand = np.asarray(image.crop((0, 0, W, CROP_H)).resize((128, 64), Image.LANCZOS), np.float32) / 255
    np.testing.assert_allclose(sample[("color", 0, 0)].permute(1, 2, 0).numpy(), by_hand, atol=1e-6)


def test_hints_and_a_training_step(tree, tmp_path, capsys):
    from depth_hints.trainer import Trainer
    root, split, _ = tree
    hints = tmp_path / "hints"
    report = tmp_path / "report.json"
    summary = precompute(parse_precompute([
        "--dataset", "cityscapes", "--data_path", str(root), "--filenames", str(split / "train_files.txt"),
        "--height", str(CROP_H), "--width", str(W), "--num_workers", "0", "--save_path", str(hints),
        "--report", str(report)]), progress=False, verbose=False)
    assert summary.ok and summary.computed == 4
    accuracy = json.loads(report.read_text())["accuracy_mean"]["hint"]
    assert accuracy["frames"] == 2 and accuracy["epe"] < 1.0 and accuracy["coverage"] > 0.7
    layout = CityscapesLayout(str(root))
    hint = load_hint(hint_file_path(str(hints), AACHEN, 19, "l"))
    assert hint.shape == (CROP_H, W)
    gt = layout.gt_depth(AACHEN, 19, "l")
    both = (hint > 0) & (gt > 0)
    camera = layout.camera(AACHEN, 19)
    relative = (hint[both] * camera.metric_scale - gt[both]) / gt[both]
    # no bias in nominal units (x baseline / 0.1 = metres); disparities are 1..10 px at 256 px,
    # so the check of accuracy is in pixels: the usual fraction of a pixel
    assert both.mean() > 0.6 and abs(np.median(relative)) < 0.01
    fx_px = camera.fx_px(W)
    hint_disparity = fx_px * 0.1 / hint[both]
    assert np.median(np.abs(hint_disparity - fx_px * camera.baseline / gt[both])) < 0.25

    trainer = Trainer(parse_train([
        "--dataset", "cityscapes", "--data_path", str(root), "--split", str(split), "--height", "64",
        "--width", "128", "--batch_size", "2", "--num_workers", "0", "--weights_init", "scratch",
        "--no_val", "--num_epochs", "1", "--num_steps", "1", "--seed", "0", "--log_dir", str(tmp_path),
        "--model_name", "cs", "--frame_ids", "0", "-1", "1", "--use_stereo", "--use_depth_hints",
        "--depth_hint_path", str(hints)]))
    assert "mixes rigs (baselines 0.209313 .. 0.222126 m" in capsys.readouterr().out
    result = trainer.train()
    assert result["steps"] == 1 and np.isfinite(result["losses"]).all()
    assert json.load(open(os.path.join(trainer.models_dir, "weights_0", "opt.json")))["metric_scale_factor"] is None


# ----------------------------------------------------------------------------- evaluation

def test_eval_mask_is_rows_256_768_columns_192_1856_of_the_frame():
    gt = np.full((768, 2048), 10.0)
    mask = ev.cityscapes_eval_mask(gt)
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (256, 767, 192, 1855)
    gt[300, 300] = 90.0  # beyond 80 m
    gt[400, 400] = 0.0
    assert ev.cityscapes_eval_mask(gt).sum() == 512 * 1664 - 2


def _test_tree(root: Path, cities=("leverkusen", "munich")):
    """Test images (leftImg8bit/test) and cameras for two frames; ManyDepth's list format."""
    from depth_hints.synthetic.cityscapes_writer import cityscapes_intrinsics
    from PIL import Image
    K = cityscapes_intrinsics(W, H)
    lines = []
    for i, city in enumerate(cities):
        stem = f"{city}_0000{i}9_000019"
        image = root / "leftImg8bit" / "test" / city / f"{stem}_leftImg8bit.png"
        image.parent.mkdir(parents=True)
        Image.new("RGB", (W, H), (90, 90, 90)).save(image)
        camera = root / "camera" / "test" / city / f"{stem}_camera.json"
        camera.parent.mkdir(parents=True)
        camera.write_text(json.dumps({"extrinsic": {"baseline": CITYSCAPES_BASELINES[i]},
                                      "intrinsic": {"fx": K[0, 0], "fy": K[1, 1], "u0": K[0, 2], "v0": K[1, 2]}}))
        lines.append(f"{city} {stem}\n")
    split = root / "eval_split"
    split.mkdir()
    (split / "test_files.txt").write_text("".join(lines))
    return split


def test_evaluation_crop_and_scaling_on_hand_made_ground_truth(tmp_path):
    split = _test_tree(tmp_path)
    gt_dir = tmp_path / "gt_depths"
    gt_dir.mkdir()
    for i in range(2):
        gt = np.full((H, W), 10.0, np.float32)  # full frames, as ManyDepth publishes them
        gt[:32] = 5.0       # rows above the window (256 of 1024 -> 32 of 128): not counted
        gt[96:] = 1.0       # the ego car's rows, cropped away
        gt[32:96, :24] = 3.0  # columns left of the window (192 of 2048 -> 24 of 256)
        np.save(gt_dir / f"{i:03d}_depth.npy", gt)
    base = ["--dataset", "cityscapes", "--data_path", str(tmp_path), "--eval_split", str(split),
            "--gt_path", str(gt_dir)]
    # stereo without a recorded factor: each frame's camera (0.2093 / 0.1 and 0.2221 / 0.1);
    # predicted depth 12 m -> abs_rel 0.2, rmse 2 exactly, only if every counted pixel is 10 m
    disps = np.stack([np.full((48, 96), CITYSCAPES_BASELINES[i] / 0.1 / 12.0, np.float32) for i in range(2)])
    np.save(tmp_path / "disps.npy", disps)
    stereo = ev.evaluate(parse_evaluate(base + ["--ext_disp_to_eval", str(tmp_path / "disps.npy"),
                                                "--eval_stereo"]))
    assert stereo["n"] == 2 and stereo["abs_rel"] == pytest.approx(0.2, rel=1e-5)
    assert stereo["rmse"] == pytest.approx(2.0, rel=1e-5)
    assert stereo["a1"] == 1.0 and stereo["pred_depth_scale_factor"] == pytest.approx(
        np.mean(CITYSCAPES_BASELINES) / 0.1)
    # mono: median scaling makes any constant prediction exact
    np.save(tmp_path / "mono.npy", np.full((2, 48, 96), 0.37, np.float32))
    mono = ev.evaluate(parse_evaluate(base + ["--ext_disp_to_eval", str(tmp_path / "mono.npy"), "--eval_mono"]))
    assert mono["abs_rel"] == pytest.approx(0.0, abs=1e-6) and mono["median_ratio"] == pytest.approx(3.7, rel=1e-5)
    # an explicit factor overrides the cameras': depth = 2.0 / disparity
    override = ev.evaluate(parse_evaluate(base + ["--ext_disp_to_eval", str(tmp_path / "disps.npy"),
                                                  "--eval_stereo", "--pred_depth_scale_factor", "2.0"]))
    expected = np.mean([abs(10 - 2.0 / np.float32(b / 0.1 / 12.0)) / 10 for b in CITYSCAPES_BASELINES])
    assert override["abs_rel"] == pytest.approx(expected, rel=1e-5)


def test_ground_truth_from_the_layout_when_no_gt_path(tree, tmp_path):
    root, _, _ = tree
    split = tmp_path / "s"
    split.mkdir()
    (split / "test_files.txt").write_text(f"{AACHEN} 19 l\n")
    layout = CityscapesLayout(str(root))
    gt = layout.gt_depth(AACHEN, 19, "l")
    disp = np.where(gt > 0, layout.camera(AACHEN, 19).metric_scale / np.where(gt > 0, gt, 1), 0)
    np.save(tmp_path / "d.npy", disp[None].astype(np.float32))
    result = ev.evaluate(parse_evaluate(["--dataset", "cityscapes", "--data_path", str(root), "--eval_split",
                                         str(split), "--ext_disp_to_eval", str(tmp_path / "d.npy"),
                                         "--eval_stereo"]))
    assert result["abs_rel"] == pytest.approx(0.0, abs=1e-5)


# ----------------------------------------------------------------------------- test list

def test_manydepth_test_list_from_shared_and_its_fetch(tmp_path):
    if not SHARED_LIST.is_file():
        pytest.skip("../shared/cityscapes_splits not present")
    samples = read_cityscapes_test_list(SHARED_LIST)
    assert len(samples) == 1525
    assert samples[0] == Sample("test/leverkusen/000039", 19, "l")
    rel, (base, sha) = next(iter(CITYSCAPES_SPLIT_FILES.items()))
    assert sha256_of(SHARED_LIST) == sha and rel == "cityscapes/test_files.txt"
    assert "a36212bda725438c0b96ce0793a92f9c148914bf" in base

    def local(url, timeout):
        assert url == base + rel
        return io.BytesIO(SHARED_LIST.read_bytes())

    written = fetch_cityscapes_split(tmp_path, opener=local)
    assert written == [tmp_path / rel] and sha256_of(written[0]) == sha


def test_bad_camera_json_and_test_list_name_the_file(tmp_path):
    camera = tmp_path / "x_camera.json"
    good = {"extrinsic": {"baseline": 0.21}, "intrinsic": {"fx": 2262.5, "fy": 2265.3, "u0": 1096.9, "v0": 513.1}}
    for data, expected in (({**good, "extrinsic": {}}, "no key extrinsic.baseline"),
                           ({"extrinsic": good["extrinsic"], "intrinsic": {"fx": 1, "fy": 1, "u0": 1}},
                            "no key intrinsic.v0"),
                           ({**good, "intrinsic": {**good["intrinsic"], "fx": "x"}}, "intrinsic.fx is 'x'")):
        camera.write_text(json.dumps(data))
        with pytest.raises(CalibrationError, match=expected) as info:
            read_camera_json(str(camera), 2048, 1024)
        assert str(camera) in str(info.value)
    camera.write_text("{")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        read_camera_json(str(camera), 2048, 1024)
    with pytest.raises(CalibrationError, match="does not exist"):
        read_camera_json(str(tmp_path / "none.json"), 2048, 1024)
    bad = tmp_path / "test_files.txt"
    bad.write_text("leverkusen leverkusen_000039_000019\nmunich munich_12\n")
    from depth_hints.splits import SplitError
    with pytest.raises(SplitError, match=r"test_files.txt:2: malformed line 'munich munich_12'"):
        read_cityscapes_test_list(bad)


# ----------------------------------------------------------------------------- issue 20 (evaluation)

def _full_frame_gts():
    gts = []
    for _ in range(2):
        gt = np.full((H, W), 10.0, np.float32)
        gt[:32] = 5.0
        gt[96:] = 1.0  # the ego car's rows: cropped away in both forms
        gt[32:96, :24] = 3.0
        gts.append(gt)
    return gts


def test_an_npz_of_full_frames_is_cropped_like_the_folder_form(tmp_path):
    split = _test_tree(tmp_path)
    gt_dir = tmp_path / "gt_depths"
    gt_dir.mkdir()
    for i, gt in enumerate(_full_frame_gts()):
        np.save(gt_dir / f"{i:03d}_depth.npy", gt)
    np.savez_compressed(tmp_path / "gt.npz", data=np.stack(_full_frame_gts()))
    disps = np.stack([np.full((48, 96), CITYSCAPES_BASELINES[i] / 0.1 / 12.0, np.float32) for i in range(2)])
    np.save(tmp_path / "disps.npy", disps)
    base = ["--dataset", "cityscapes", "--data_path", str(tmp_path), "--eval_split", str(split),
            "--ext_disp_to_eval", str(tmp_path / "disps.npy"), "--eval_stereo"]
    folder = ev.evaluate(parse_evaluate(base + ["--gt_path", str(gt_dir)]))
    npz = ev.evaluate(parse_evaluate(base + ["--gt_path", str(tmp_path / "gt.npz")]))
    # predicted 12 m against 10 m on every counted pixel: exact only if the crops agree
    for result in (folder, npz):
        assert result["abs_rel"] == pytest.approx(0.2, rel=1e-5) and result["rmse"] == pytest.approx(2.0, rel=1e-5)


def _model(folder: Path) -> Path:
    import networks
    from depth_hints.checkpoints import save_weights_folder
    encoder = networks.ResnetEncoder(18, False)
    save_weights_folder(str(folder), {"encoder": encoder, "depth": networks.DepthDecoder(encoder.num_ch_enc)},
                        64, 128, True)
    return folder


def test_missing_cityscapes_ground_truth_gives_cityscapes_advice_before_predicting(tmp_path, monkeypatch):
    from depth_hints import evaluation_base

    def refuse(*args, **kwargs):
        raise AssertionError("predicted before the inputs were checked")
    monkeypatch.setattr(evaluation_base, "predict_disparities", refuse)
    split = _test_tree(tmp_path)
    weights = _model(tmp_path / "weights")
    base = ["--dataset", "cityscapes", "--data_path", str(tmp_path), "--eval_split", str(split),
            "--load_weights_folder", str(weights), "--eval_stereo", "--num_workers", "0"]
    for extra in (["--gt_path", str(tmp_path / "missing_gt")], []):
        with pytest.raises(ev.EvaluationError) as info:
            ev.evaluate(parse_evaluate(base + extra))
        message = str(info.value)
        assert "Cityscapes" in message and "ManyDepth" in message and "--gt_path" in message
        assert "export_gt_depth" not in message and "\n" not in message
    # a ground-truth folder short of a frame is named before predicting too
    gt_dir = tmp_path / "gt_depths"
    gt_dir.mkdir()
    np.save(gt_dir / "000_depth.npy", _full_frame_gts()[0])
    with pytest.raises(ev.EvaluationError, match="001_depth.npy"):
        ev.evaluate(parse_evaluate(base + ["--gt_path", str(gt_dir)]))
    (gt_dir / "001_depth.npy").write_text("not an array")
    with pytest.raises(ev.EvaluationError, match="001_depth.npy"):
        ev.evaluate(parse_evaluate(base + ["--gt_path", str(gt_dir)]))
