"""Your own rig (--dataset stereo) end to end on the embedded world written with a non-KITTI
camera (fx 0.9 W, cx 0.4 W, baseline 0.25 m): layout, hints in nominal units, a few training
steps (stereo, mono+stereo), flip consistency with cx != 0.5, the recorded metric factor in
test_simple / evaluation, mixed rigs, and every bad input's message."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

import test_simple
from datasets.layout import CalibrationError, DatasetError, LayoutError, rig_metric_scale
from datasets.mono_dataset import MonoDataset
from datasets.registry import make_layout
from datasets.stereo_rig import StereoRigLayout, make_stereo_splits
from depth_hints import geometry
from depth_hints.checkpoints import METRIC_SCALE_KEY, CheckpointError, metric_scale_factor
from depth_hints.hint_files import hint_file_path, load_hint
from depth_hints.options import parse_precompute, parse_train
from depth_hints.precompute import precompute
from depth_hints.splits import Sample, read_split_file
from depth_hints.synthetic.stereo_writer import frame_name, write_synthetic_stereo

W, H = 256, 128
FX, CX, BASELINE = 0.9 * W, 0.4 * W, 0.25

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """(root, split folder, hint folder) of a 2-sequence, 4-frame rig with hints."""
    root = tmp_path_factory.mktemp("rig") / "rig"
    write_synthetic_stereo(str(root), 2, 4, W, H, seed=0)
    split = root / "splits"
    counts = make_stereo_splits(str(root), str(split), "fraction", val_fraction=0.0, test_fraction=0.0,
                                frame_ids=(0, -1, 1))  # mono+stereo training below
    assert counts == {"train_files.txt": 8, "val_files.txt": 0, "test_files.txt": 0, "all_files.txt": 8}
    (split / "val_files.txt").write_text((split / "train_files.txt").read_text())
    report = root / "report.json"
    options = parse_precompute(["--dataset", "stereo", "--data_path", str(root), "--filenames",
                                str(split / "train_files.txt"), "--height", str(H), "--width", str(W),
                                "--num_workers", "0", "--report", str(report)])
    summary = precompute(options, progress=False, verbose=False)
    assert summary.ok and summary.computed == 8
    return root, split, options.save_path, json.loads(report.read_text())


# ----------------------------------------------------------------------------- layout

def test_layout_paths_camera_names_and_ground_truth(rig):
    root, split, _, _ = rig
    layout = make_layout("stereo", str(root))
    assert isinstance(layout, StereoRigLayout)
    name = frame_name(1)
    assert layout.image_path("seq_0", name, "l") == str(root / "seq_0" / "left" / f"{name}.png")
    assert layout.image_path("seq_0", name, "r") == str(root / "seq_0" / "right" / f"{name}.png")
    camera = layout.camera("seq_0")
    # normalised by the stored 256 x 128 image: fx 230.4 / 256, fy 230.4 / 128, cx 102.4 / 256
    assert camera.intrinsics == pytest.approx((0.9, 1.8, 0.4, 0.5))
    assert camera.baseline == BASELINE and camera.doffs == 0.0 and camera.metric_scale == pytest.approx(2.5)
    # neighbours are the previous / next names in sorted order
    sample = Sample("seq_0", name, "r")
    assert layout.neighbour(sample, -1) == Sample("seq_0", frame_name(0), "r")
    assert layout.neighbour(sample, 1) == Sample("seq_0", frame_name(2), "r")
    with pytest.raises(LayoutError, match="no frame -1"):
        layout.neighbour(Sample("seq_0", frame_name(0), "l"), -1)
    lines = read_split_file(split / "train_files.txt", named_frames=True)
    assert {(s.folder, s.frame_index) for s in lines} == {(f, frame_name(i)) for f in ("seq_0", "seq_1")
                                                         for i in (1, 2)}
    gt = layout.read_gt("seq_0", name, "l")
    assert gt.kind == "depth" and gt.values.shape == (H, W)
    np.testing.assert_array_equal(gt.values, np.load(root / "seq_0" / "depth" / f"{name}.npy"))
    assert layout.read_gt("seq_0", name, "r") is None  # left-view ground truth only


def test_split_maker_by_sequence_holds_whole_sequences_out(rig, tmp_path):
    root, _, _, _ = rig
    counts = make_stereo_splits(str(root), str(tmp_path), "sequence", val_fraction=0.0, test_fraction=0.5,
                                frame_ids=(0, -1, 1))
    assert counts == {"train_files.txt": 4, "val_files.txt": 0, "test_files.txt": 4, "all_files.txt": 4}
    test = read_split_file(tmp_path / "test_files.txt", named_frames=True)
    train = read_split_file(tmp_path / "train_files.txt", named_frames=True)
    assert len({s.folder for s in test}) == 1 and {s.side for s in test} == {"l"}
    assert {s.folder for s in test}.isdisjoint({s.folder for s in train})
    assert {s.frame_index for s in train} == {frame_name(1), frame_name(2)}  # both neighbours exist


# ----------------------------------------------------------------------------- hints

def test_hints_in_nominal_units_with_the_rigs_camera(rig):
    root, _, save_path, report = rig
    accuracy = report["accuracy_mean"]["hint"]
    assert accuracy["epe"] < 1.0 and accuracy["bad3"] < 0.08 and accuracy["coverage"] > 0.7
    # the bank scaled to the rig's focal length (0.9 x 256 px): 64 x 230.4 / (0.58 x 1024) -> 32
    assert "bs1_nd32" in report["accuracy_mean"]["matchers"]
    layout = StereoRigLayout(str(root))
    for folder in ("seq_0", "seq_1"):
        hint = load_hint(hint_file_path(save_path, folder, frame_name(1), "l"))
        gt = layout.gt_depth(folder, frame_name(1), "l")
        both = (hint > 0) & (gt > 0)
        # nominal units: baseline 0.1, so metres = hint x 0.25 / 0.1 = 2.5 hint. Disparities
        # are small here (median 4 px at 256 px), so 0.13 px of matching error is 3 % of depth:
        # no bias, and the median error within what SGBM resolves
        signed = (hint[both] * 2.5 - gt[both]) / gt[both]
        assert both.mean() > 0.6 and abs(np.median(signed)) < 0.01 and np.median(np.abs(signed)) < 0.05
        disparity = 0.1 * FX / hint[both]  # the hint's disparity in pixels at 256 px
        assert np.median(np.abs(disparity - FX * BASELINE / gt[both])) < 0.2
        # with KITTI's focal length or baseline the hints would be off by far more than that
        assert np.median(np.abs(hint[both] * 5.4 - gt[both]) / gt[both]) > 0.5
    # the named frame's hint file
    assert os.path.isfile(os.path.join(save_path, "seq_0", "image_02", f"{frame_name(1)}.npy"))


# ----------------------------------------------------------------------------- flip

def test_flip_mirrors_the_principal_point_and_keeps_reprojection_consistent(rig):
    root, _, _, _ = rig
    dataset = MonoDataset(str(root), [f"seq_0 {frame_name(1)} l"], 64, 128, (0, "s"), is_train=True,
                          layout=StereoRigLayout(str(root)))
    dataset.color_aug_probability = 0.0
    dataset.flip_probability = 0.0
    plain = dataset[0]
    dataset.flip_probability = 1.0
    flipped = dataset[0]
    w = 128
    assert plain[("K", 0)][0, 2] == pytest.approx(0.4 * w)
    assert flipped[("K", 0)][0, 2] == pytest.approx(0.6 * w)  # cx -> 1 - cx
    torch.testing.assert_close(flipped[("color", 0, 0)], plain[("color", 0, 0)].flip(-1))
    assert flipped["stereo_T"][0, 3] == -plain["stereo_T"][0, 3]

    # analytic: a pixel u at depth z reprojects into the other view at u_s; in the mirrored
    # sample the mirrored pixel W - u must land at W - u_s (continuous coordinates)
    def reproject(sample, u, v, z):
        K = sample[("K", 0)]
        point = torch.linalg.inv(K[:3, :3]) @ torch.tensor([u, v, 1.0]) * z
        moved = sample["stereo_T"][:3, :3] @ point + sample["stereo_T"][:3, 3]
        pixel = K[:3, :3] @ moved
        return (pixel[:2] / pixel[2]).tolist()

    for u, v, z in ((10.0, 20.0, 3.0), (90.5, 40.0, 7.5), (127.0, 5.0, 1.2)):
        u_s, v_s = reproject(plain, u, v, z)
        u_f, v_f = reproject(flipped, w - u, v, z)
        assert u_f == pytest.approx(w - u_s, abs=1e-4) and v_f == pytest.approx(v_s, abs=1e-4)
        # the shift is exactly f b / z with the nominal baseline
        assert u - u_s == pytest.approx(0.9 * w * 0.1 / z, rel=1e-5)
    # with the KITTI-era assumption (centred cx kept on flip) the mirror would be off
    K_wrong = plain[("K", 0)].clone()
    assert abs(float(K_wrong[0, 2]) - float(flipped[("K", 0)][0, 2])) == pytest.approx(0.2 * w)


# ----------------------------------------------------------------------------- training, metric factor

def _train(root, split, hints, tmp_path, frame_ids, name):
    from depth_hints.trainer import Trainer
    argv = ["--dataset", "stereo", "--data_path", str(root), "--split", str(split),
            "--height", "64", "--width", "128", "--batch_size", "2", "--num_workers", "0",
            "--weights_init", "scratch", "--no_val", "--num_epochs", "1", "--num_steps", "2",
            "--seed", "0", "--log_dir", str(tmp_path), "--model_name", name, "--log_frequency", "1000",
            "--frame_ids", *frame_ids, "--use_stereo"]
    if hints:
        argv += ["--use_depth_hints", "--depth_hint_path", hints]
    trainer = Trainer(parse_train(argv))
    summary = trainer.train()
    assert summary["steps"] == 2 and all(np.isfinite(summary["losses"]))
    return trainer


def test_a_few_training_steps_stereo_and_mono_stereo_record_the_rigs_factor(rig, tmp_path, capsys):
    root, split, hints, _ = rig
    stereo = _train(root, split, hints, tmp_path, ["0"], "stereo")
    batch = stereo.train_set[0]
    assert batch[("K", 0)][0, 0] == pytest.approx(0.9 * 128)
    assert batch["depth_hint_mask"].mean() > 0.5
    weights = os.path.join(stereo.models_dir, "weights_0")
    for path in (os.path.join(stereo.models_dir, "opt.json"), os.path.join(weights, "opt.json")):
        assert json.load(open(path))[METRIC_SCALE_KEY] == pytest.approx(2.5)
    assert metric_scale_factor(weights) == pytest.approx(2.5)
    assert metric_scale_factor(weights, 3.0) == 3.0  # the flag overrides
    mono_stereo = _train(root, split, hints, tmp_path, ["0", "-1", "1"], "mono_stereo")
    assert mono_stereo.metric_scale == pytest.approx(2.5)

    # test_simple --pred_metric_depth: 2.5 x the nominal depth, not 5.4
    image = root / "seq_0" / "left" / f"{frame_name(1)}.png"
    out = tmp_path / "pred"
    assert test_simple.main(["--image_path", str(image), "--model_path", weights, "--no_cuda",
                             "--output_dir", str(out)]) == 0
    scaled_disp = np.load(out / f"{frame_name(1)}_disp.npy")
    assert test_simple.main(["--image_path", str(image), "--model_path", weights, "--no_cuda",
                             "--output_dir", str(out), "--pred_metric_depth"]) == 0
    depth = np.load(out / f"{frame_name(1)}_depth.npy")
    np.testing.assert_allclose(depth * scaled_disp, 2.5, rtol=1e-5)
    assert "x 2.5" in capsys.readouterr().out


def test_mixed_rigs_record_no_factor_and_metric_output_asks_for_one(tmp_path, capsys):
    root = tmp_path / "mixed"
    write_synthetic_stereo(str(root), 2, 3, 128, 64, seed=1, baselines=[0.25, 0.5])
    split = tmp_path / "split"
    make_stereo_splits(str(root), str(split), "fraction", 0.0, 0.0)
    (split / "val_files.txt").write_text((split / "train_files.txt").read_text())
    from depth_hints.trainer import Trainer
    trainer = Trainer(parse_train([
        "--dataset", "stereo", "--data_path", str(root), "--split", str(split), "--height", "64",
        "--width", "128", "--batch_size", "2", "--num_workers", "0", "--weights_init", "scratch",
        "--no_val", "--num_epochs", "1", "--num_steps", "1", "--log_dir", str(tmp_path / "logs"),
        "--model_name", "mixed", "--frame_ids", "0", "--use_stereo"]))
    assert "mixes rigs (baselines 0.25 .. 0.5 m" in capsys.readouterr().out
    assert trainer.metric_scale is None
    trainer.train()
    capsys.readouterr()  # the progress bar
    weights = os.path.join(trainer.models_dir, "weights_0")
    assert json.load(open(os.path.join(weights, "opt.json")))[METRIC_SCALE_KEY] is None
    with pytest.raises(CheckpointError, match="pass --pred_depth_scale_factor"):
        metric_scale_factor(weights)
    image = root / "seq_0" / "left" / f"{frame_name(1)}.png"
    assert test_simple.main(["--image_path", str(image), "--model_path", weights, "--no_cuda",
                             "--output_dir", str(tmp_path / "p"), "--pred_metric_depth"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rigs of different baselines" in err[0] and weights in err[0]
    assert test_simple.main(["--image_path", str(image), "--model_path", weights, "--no_cuda",
                             "--output_dir", str(tmp_path / "p"), "--pred_metric_depth",
                             "--pred_depth_scale_factor", "2.5"]) == 0
    # released weights and older runs record nothing: KITTI's 5.4
    assert metric_scale_factor(str(tmp_path)) == pytest.approx(geometry.STEREO_SCALE_FACTOR)


def test_rig_metric_scale():
    from datasets.layout import Camera
    assert rig_metric_scale([Camera((1, 1, .5, .5), 0.54)] * 3) == pytest.approx(5.4)
    assert rig_metric_scale([Camera((1, 1, .5, .5), 0.25), Camera((2, 2, .4, .5), 0.25)]) == pytest.approx(2.5)
    assert rig_metric_scale([Camera((1, 1, .5, .5), 0.25), Camera((1, 1, .5, .5), 0.30)]) is None


# ----------------------------------------------------------------------------- bad inputs

@pytest.fixture
def small_rig(tmp_path):
    root = tmp_path / "small"
    write_synthetic_stereo(str(root), 1, 3, 64, 32, seed=2)
    return root


def test_calibration_errors_name_the_file_and_key(small_rig):
    calib = small_rig / "seq_0" / "calib.json"
    values = json.loads(calib.read_text())
    name = frame_name(1)

    def camera_error():
        with pytest.raises(CalibrationError) as info:
            StereoRigLayout(str(small_rig)).camera("seq_0", name)
        message = str(info.value)
        assert "\n" not in message and str(calib) in message
        return message

    calib.unlink()
    assert "does not exist" in camera_error()
    calib.write_text("{ not json")
    assert "not valid JSON" in camera_error()
    calib.write_text(json.dumps({k: v for k, v in values.items() if k != "baseline"}))
    assert "no key 'baseline'" in camera_error()
    calib.write_text(json.dumps({**values, "fx": "wide"}))
    assert "'fx' is 'wide', not a number" in camera_error()
    calib.write_text(json.dumps({**values, "baseline": -1}))
    assert "'baseline' is -1" in camera_error()


def test_pair_and_ground_truth_errors_name_the_files(small_rig, tmp_path):
    from PIL import Image
    name = frame_name(1)
    layout = StereoRigLayout(str(small_rig))
    sample = Sample("seq_0", name, "l")
    left, right = layout.stereo_image_paths(sample)
    assert layout.check_pair(sample) == (64, 32)
    Image.new("RGB", (48, 32)).save(right)
    with pytest.raises(DatasetError, match="differ in size") as info:
        layout.check_pair(sample)
    assert left in str(info.value) and right in str(info.value)
    loader = MonoDataset(str(small_rig), [f"seq_0 {name} l"], 32, 64, (0, "s"), layout=layout)
    with pytest.raises(DatasetError, match="differ in size") as info:
        loader[0]  # the training loader names the pair too
    assert left in str(info.value) and right in str(info.value)
    os.remove(right)
    with pytest.raises(DatasetError, match="second image does not exist") as info:
        layout.check_pair(sample)
    assert left in str(info.value) and right in str(info.value)
    assert loader.missing_files() == [right]  # checked before training starts
    # the precompute names the pair of a frame with a missing right image
    lines = tmp_path / "lines.txt"
    lines.write_text(f"seq_0 {name} l\n")
    summary = precompute(parse_precompute(["--dataset", "stereo", "--data_path", str(small_rig),
                                           "--filenames", str(lines), "--height", "32", "--width", "64",
                                           "--num_workers", "0"]), progress=False, verbose=False)
    assert summary.missing_images == [right]
    # ground truth of the wrong size
    depth = small_rig / "seq_0" / "depth" / f"{name}.npy"
    np.save(depth, np.ones((16, 64), np.float32))
    with pytest.raises(DatasetError, match="is 64x16 but its image is 64x32") as info:
        layout.read_gt("seq_0", name, "l")
    assert str(depth) in str(info.value)


def test_evaluation_on_the_rigs_ground_truth_uses_the_recorded_factor(rig, tmp_path):
    from depth_hints import evaluation as ev
    from depth_hints.options import parse_evaluate
    root, _, _, _ = rig
    split = tmp_path / "split"
    split.mkdir()
    (split / "test_files.txt").write_text(f"seq_0 {frame_name(1)} l\nseq_1 {frame_name(2)} l\n")
    layout = StereoRigLayout(str(root))
    gts = [layout.gt_depth("seq_0", frame_name(1), "l"), layout.gt_depth("seq_1", frame_name(2), "l")]
    # the scaled disparity a perfect stereo model of this rig predicts: 2.5 / metric depth
    np.save(tmp_path / "disps.npy", np.stack([np.where(g > 0, 2.5 / np.where(g > 0, g, 1), 1.0) for g in gts]
                                             ).astype(np.float32))
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "opt.json").write_text(json.dumps({METRIC_SCALE_KEY: 2.5, "use_stereo": True}))
    base = ["--dataset", "stereo", "--data_path", str(root), "--eval_split", str(split),
            "--ext_disp_to_eval", str(tmp_path / "disps.npy"), "--eval_stereo"]
    recorded = ev.evaluate(parse_evaluate(base + ["--load_weights_folder", str(weights)]))
    assert recorded["n"] == 2 and recorded["abs_rel"] == pytest.approx(0.0, abs=1e-5)
    assert recorded["pred_depth_scale_factor"] == 2.5 and recorded["a1"] == 1.0
    # without a recorded factor (released weights): KITTI's 5.4, 2.16 x too far (clipped at 80 m)
    default = ev.evaluate(parse_evaluate(base))
    expected = np.mean([np.mean(np.abs(np.minimum(g[(g > 1e-3) & (g < 80)] * 5.4 / 2.5, 80)
                                       - g[(g > 1e-3) & (g < 80)]) / g[(g > 1e-3) & (g < 80)]) for g in gts])
    assert default["abs_rel"] == pytest.approx(expected, rel=1e-4) and expected > 1.0
    (weights / "opt.json").write_text(json.dumps({METRIC_SCALE_KEY: None}))
    with pytest.raises(CheckpointError, match="pass --pred_depth_scale_factor"):
        ev.evaluate(parse_evaluate(base + ["--load_weights_folder", str(weights)]))
    explicit = ev.evaluate(parse_evaluate(base + ["--load_weights_folder", str(weights),
                                                  "--pred_depth_scale_factor", "2.5"]))
    assert explicit["abs_rel"] == pytest.approx(0.0, abs=1e-5)


# ----------------------------------------------------------------------------- doffs in the warp

@pytest.mark.parametrize("side", ["l", "r"])
@pytest.mark.parametrize("flip", [False, True])
def test_the_true_depth_warps_the_other_view_exactly_on_a_rig_with_doffs(tmp_path, side, flip):
    """Principal points doffs px apart (cx_right = cx_left + doffs): a plane whose stored
    disparity is d px has fx * B / Z = d + doffs. Its nominal depth warps the other view onto
    the target exactly, whichever side is the target and whether the pair is mirrored."""
    from PIL import Image
    width, height, fx_px, doffs_px, d = 64, 32, 40.0, 6, 5
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (height, width + d, 3), dtype=np.uint8)
    left, right = wide[:, :width], wide[:, d:]  # right[x] = left[x + d]: x_right = x_left - d
    for folder, image in (("left", left), ("right", right)):
        (tmp_path / "seq" / folder).mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / "seq" / folder / "000.png")
    (tmp_path / "seq" / "calib.json").write_text(json.dumps(
        {"fx": fx_px, "fy": fx_px, "cx": 30.0, "cy": 16.0, "baseline": 0.2, "doffs": doffs_px}))
    layout = StereoRigLayout(str(tmp_path))
    loader = MonoDataset(str(tmp_path), [f"seq 000 {side}"], height, width, (0, "s"), is_train=True,
                         layout=layout)
    loader.flip_probability, loader.color_aug_probability = float(flip), 0.0
    inputs = loader[0]
    # nominal units (baseline 0.1): fx_px * 0.1 / Z = d + doffs
    depth = torch.full((1, 1, height, width), fx_px * 0.1 / (d + doffs_px))
    warped = geometry.warp(inputs[("color", "s", 0)][None], depth, inputs[("K", 0)][None],
                           inputs[("inv_K", 0)][None], inputs["stereo_T"][None])[0]
    target = inputs[("color", 0, 0)]
    inner = slice(d, width - d)  # columns whose source pixel is inside the other image
    torch.testing.assert_close(warped[..., inner], target[..., inner], atol=1e-4, rtol=0)


def test_stereo_transform_without_doffs_is_unchanged():
    for side in ("l", "r"):
        for flipped in (False, True):
            expected = torch.eye(4)
            expected[0, 3] = (-0.1 if side == "l" else 0.1) * (-1 if flipped else 1)
            assert torch.equal(geometry.stereo_transform(side, flipped), expected)
            assert torch.equal(geometry.stereo_transform(side, flipped, principal_offset=0.0), expected)


def test_a_test_frame_without_ground_truth_is_named_before_predicting(small_rig, tmp_path, monkeypatch):
    import networks
    from depth_hints import evaluation as ev
    from depth_hints import evaluation_base
    from depth_hints.checkpoints import save_weights_folder
    from depth_hints.options import parse_evaluate

    def refuse(*args, **kwargs):
        raise AssertionError("predicted before the inputs were checked")
    monkeypatch.setattr(evaluation_base, "predict_disparities", refuse)
    encoder = networks.ResnetEncoder(18, False)
    save_weights_folder(str(tmp_path / "w"), {"encoder": encoder, "depth": networks.DepthDecoder(encoder.num_ch_enc)},
                        32, 64, True)
    split = tmp_path / "split"
    split.mkdir()
    (split / "test_files.txt").write_text(f"seq_0 {frame_name(1)} l\nseq_0 {frame_name(2)} l\n")
    for folder in ("depth", "disparity"):
        for path in (small_rig / "seq_0" / folder).glob(f"{frame_name(2)}*"):
            path.unlink()
    with pytest.raises(ev.EvaluationError, match=f"seq_0 {frame_name(2)} l.*no ground truth") as info:
        ev.evaluate(parse_evaluate(["--dataset", "stereo", "--data_path", str(small_rig), "--eval_split",
                                    str(split), "--load_weights_folder", str(tmp_path / "w"), "--eval_stereo",
                                    "--num_workers", "0"]))
    assert "export_gt_depth" not in str(info.value) and "depth/" in str(info.value)


def test_calibration_of_another_image_size_is_refused(small_rig):
    """Calibrated at twice the stored size: the optional width / height say so; without them a
    principal point outside the stored image does."""
    calib = small_rig / "seq_0" / "calib.json"
    values = json.loads(calib.read_text())  # pixels of the stored 64 x 32 images

    def camera(data):
        calib.write_text(json.dumps(data))
        return StereoRigLayout(str(small_rig)).camera("seq_0")

    assert camera({**values, "width": 64, "height": 32}).intrinsics == camera(values).intrinsics
    for data, expected in (({**values, "width": 128, "height": 64}, "width x height 128x64"),
                           ({**values, "width": 64, "height": 48}, "width x height 64x48"),
                           ({**values, "cx": 2 * values["cx"] + 64}, "'cx'"),
                           ({**values, "cy": -1.0}, "'cy'"),
                           ({**values, "width": "wide"}, "'width' is 'wide'")):
        with pytest.raises(CalibrationError) as info:
            camera(data)
        message = str(info.value)
        assert expected in message and str(calib) in message and "\n" not in message
        assert "64x32" in message or "not a number" in message


# ----------------------------------------------------------------------------- split maker (issue 20)

def _blank_rig(root, frames_per_sequence: dict):
    """A rig of grey 64 x 32 pairs: {sequence: number of pairs}."""
    from PIL import Image
    for folder, count in frames_per_sequence.items():
        for side in ("left", "right"):
            (root / folder / side).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (64, 32), (90, 90, 90)).save(root / folder / side / f"{i:04d}.png")
        (root / folder / "calib.json").write_text(json.dumps(
            {"fx": 58.0, "fy": 58.0, "cx": 32.0, "cy": 16.0, "baseline": 0.12}))
    return root


def _split_names(out, name):
    path = out / f"{name}_files.txt"
    if not path.is_file():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines()]


def _make_splits_script(argv):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "make_stereo_splits_script", os.path.join(os.path.dirname(__file__), os.pardir, "scripts",
                                                  "make_stereo_splits.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main([str(a) for a in argv])


@pytest.mark.parametrize("by", ["sequence", "fraction"])
def test_one_sequence_of_ten_pairs_gives_train_val_and_test(tmp_path, by):
    root = _blank_rig(tmp_path / "rig", {"walk": 10})
    out = tmp_path / "split"
    assert _make_splits_script(["--data_path", root, "--out_dir", out, "--by", by]) == 0
    lists = {name: _split_names(out, name) for name in ("train", "val", "test")}
    assert all(lists.values()), {k: len(v) for k, v in lists.items()}
    frames = {name: {line[1] for line in lines} for name, lines in lists.items()}
    assert len(frames["test"]) == 1 and len(frames["val"]) == 1 and len(frames["train"]) == 8
    assert not (frames["test"] & frames["train"]) and not (frames["val"] & (frames["train"] | frames["test"]))
    # stereo-only training (the README's walkthrough) reads both lists
    loader = MonoDataset(str(root), [" ".join(line) for line in lists["val"]], 32, 64, (0, "s"),
                         layout=StereoRigLayout(str(root)))
    assert loader.missing_files() == [] and loader[0][("color", "s", 0)].shape == (3, 32, 64)


@pytest.mark.parametrize("by", ["sequence", "fraction"])
def test_a_folder_of_single_pairs_gives_train_val_and_test(tmp_path, by):
    root = _blank_rig(tmp_path / "rig", {f"pair_{i:02d}": 1 for i in range(10)})
    out = tmp_path / "split"
    assert _make_splits_script(["--data_path", root, "--out_dir", out, "--by", by]) == 0
    counts = {name: len(_split_names(out, name)) for name in ("train", "val", "test", "all")}
    assert counts == {"train": 16, "val": 2, "test": 1, "all": 18}
    # mono training asks for neighbours that single pairs do not have: no line qualifies
    with pytest.raises(LayoutError, match="--frame_ids"):
        make_stereo_splits(str(root), str(tmp_path / "mono"), by, frame_ids=(0, -1, 1))


def test_by_fraction_test_frames_are_no_training_neighbours(tmp_path):
    root = _blank_rig(tmp_path / "rig", {"a": 12, "b": 9})
    for seed in range(4):
        out = tmp_path / f"split{seed}"
        assert _make_splits_script(["--data_path", root, "--out_dir", out, "--by", "fraction",
                                    "--frame_ids", 0, -1, 1, "--test_fraction", 0.2, "--seed", seed]) == 0
        test = {(line[0], int(line[1])) for line in _split_names(out, "test")}
        assert test and _split_names(out, "val")
        for name in ("train", "val"):
            for folder, frame, _ in _split_names(out, name):
                frame = int(frame)
                assert (folder, frame) not in test
                assert {(folder, frame - 1), (folder, frame + 1)}.isdisjoint(test), (name, folder, frame)
                assert frame - 1 >= 0 and frame + 1 < {"a": 12, "b": 9}[folder]


def test_training_names_a_line_without_the_neighbours_its_frame_ids_need(tmp_path):
    root = _blank_rig(tmp_path / "rig", {"walk": 4})
    lines = ["walk 0000 l", "walk 0001 l"]
    stereo = MonoDataset(str(root), lines, 32, 64, (0, "s"), layout=StereoRigLayout(str(root)))
    assert stereo.missing_files() == []
    mono = MonoDataset(str(root), lines, 32, 64, (0, -1, 1, "s"), layout=StereoRigLayout(str(root)))
    with pytest.raises(LayoutError, match="walk 0+ l.*no frame -1.*--frame_ids 0 -1 1"):
        mono.missing_files()
