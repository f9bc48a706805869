"""Tests for depth_hints.evaluation (metrics, crop, scaling, post-processing, the evaluate
loop), evaluate_depth.py, and depth_hints.pose_evaluation."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import evaluate_depth
import networks
from depth_hints import evaluation as ev
from depth_hints import pose_evaluation as pe
from depth_hints.checkpoints import save_weights_folder
from depth_hints.options import parse_evaluate, parse_evaluate_pose

FEED_H, FEED_W = 64, 96


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------- helpers

def save_model(folder: Path, use_stereo: bool, pose: bool = False) -> Path:
    torch.manual_seed(0)
    encoder = networks.ResnetEncoder(18, False)
    models = {"encoder": encoder, "depth": networks.DepthDecoder(encoder.num_ch_enc)}
    if pose:
        pose_encoder = networks.ResnetEncoder(18, False, num_input_images=2)
        models["pose_encoder"] = pose_encoder
        models["pose"] = networks.PoseDecoder(pose_encoder.num_ch_enc, 1, 2)
    save_weights_folder(str(folder), models, FEED_H, FEED_W, use_stereo)
    return folder


@pytest.fixture(scope="module")
def stereo_model(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("models") / "stereo", use_stereo=True)


def save_gt(path: Path, depths, plain: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if plain:
        data = np.stack(depths).astype(np.float32)
    else:
        data = np.empty(len(depths), dtype=object)
        for i, d in enumerate(depths):
            data[i] = np.asarray(d, np.float32)
    np.savez_compressed(path, data=data)
    return path


def run(argv) -> dict:
    return ev.evaluate(parse_evaluate([str(a) for a in argv]))


# ----------------------------------------------------------------------------- metrics

def test_errors_of_a_perfect_prediction():
    gt = np.array([1.0, 2.0, 4.0, 50.0])
    errors = ev.compute_errors(gt, gt.copy())
    assert errors == pytest.approx((0, 0, 0, 0, 1, 1, 1))
    assert ev.METRIC_NAMES == ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")


def test_errors_of_a_doubled_prediction():
    gt = np.array([1.0, 2.0, 4.0])
    abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3 = ev.compute_errors(gt, 2 * gt)
    assert abs_rel == pytest.approx(1.0)
    assert sq_rel == pytest.approx(7 / 3)  # mean(gt^2 / gt)
    assert rmse == pytest.approx(np.sqrt(21 / 3))
    assert rmse_log == pytest.approx(np.log(2))
    assert (a1, a2, a3) == (0, 0, 0)  # 2 > 1.25^3 = 1.953125


def test_errors_thresholds_by_hand():
    gt = np.full(4, 10.0)
    pred = np.array([10.0, 12.0, 14.0, 20.0])  # ratios 1, 1.2, 1.4, 2
    abs_rel, sq_rel, rmse, _, a1, a2, a3 = ev.compute_errors(gt, pred)
    assert abs_rel == pytest.approx(0.4)
    assert sq_rel == pytest.approx((4 + 16 + 100) / 10 / 4)
    assert rmse == pytest.approx(np.sqrt(30))
    assert (a1, a2, a3) == pytest.approx((0.5, 0.75, 0.75))


# ----------------------------------------------------------------------------- crop and masks

def test_garg_crop_extents_on_a_kitti_image():
    mask = ev.garg_crop_mask(375, 1242)
    # int(0.40810811*375)=153, int(0.99189189*375)=371, int(0.03594771*1242)=44, int(0.96405229*1242)=1197
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)
    assert mask.sum() == (371 - 153) * (1197 - 44)


def test_valid_mask_caps_and_crop():
    gt = np.zeros((375, 1242))
    row, values = 300, [0.0, 1e-3, 0.5, 79.9, 80.0, 100.0]
    gt[row, 100:106] = values
    gt[10, 100] = 5.0  # above the crop
    eigen = ev.valid_gt_mask(gt, garg_crop=True)
    assert eigen[row, 100:106].tolist() == [False, False, True, True, False, False]
    assert not eigen[10, 100]
    other = ev.valid_gt_mask(gt, garg_crop=False)  # non-eigen splits: any gt > 0 counts
    assert other[row, 100:106].tolist() == [False, True, True, True, True, True]
    assert other[10, 100]


# ----------------------------------------------------------------------------- scaling

def _gt_frame(seed=0, shape=(60, 80)):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(2.0, 70.0, shape)
    gt[rng.random(shape) < 0.3] = 0.0  # sparse, like projected lidar
    return gt.astype(np.float32)


def test_stereo_scaling_recovers_gt_over_5_4():
    gt = _gt_frame()
    pred_disp = np.where(gt > 0, 5.4 / np.maximum(gt, 1e-6), 1.0)  # depth = gt / 5.4
    errors, ratio = ev.score_frame(gt, pred_disp, garg_crop=True, scale_factor=5.4)
    assert ratio is None
    assert errors == pytest.approx((0, 0, 0, 0, 1, 1, 1), abs=1e-5)
    unscaled, _ = ev.score_frame(gt, pred_disp, garg_crop=True, scale_factor=1.0)
    assert unscaled[0] > 0.5


def test_median_scaling_removes_any_global_scale():
    gt = _gt_frame(1)
    pred_disp = np.where(gt > 0, 1.0 / (0.037 * np.maximum(gt, 1e-6)), 1.0)
    errors, ratio = ev.score_frame(gt, pred_disp, garg_crop=False, use_median_scaling=True)
    assert ratio == pytest.approx(1 / 0.037, rel=1e-5)
    assert errors == pytest.approx((0, 0, 0, 0, 1, 1, 1), abs=1e-5)
    scaled, r = ev.median_scaling(np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0]))
    assert r == 2.0 and scaled.tolist() == [2.0, 4.0, 6.0]


def test_prediction_is_clipped_to_80m():
    gt = np.full((40, 40), 79.0, np.float32)
    errors, _ = ev.score_frame(gt, np.full((10, 10), 1 / 500.0), garg_crop=False)
    assert errors[0] == pytest.approx(1 / 79)  # predicted 500 m counts as 80 m


# ----------------------------------------------------------------------------- post-processing

def test_post_process_equals_input_when_flip_consistent():
    disp = np.random.default_rng(0).random((2, 8, 40))
    np.testing.assert_allclose(ev.batch_post_process_disparity(disp, disp.copy()), disp)


def test_post_process_is_mirror_symmetric_and_ramps():
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 6, 60)), rng.random((2, 6, 60))
    out = ev.batch_post_process_disparity(a, b)
    mirrored = ev.batch_post_process_disparity(b[:, :, ::-1], a[:, :, ::-1])
    np.testing.assert_allclose(out[:, :, ::-1], mirrored)
    np.testing.assert_allclose(out[:, :, 0], b[:, :, 0])     # left edge: the flipped prediction
    np.testing.assert_allclose(out[:, :, -1], a[:, :, -1])   # right edge: the original
    np.testing.assert_allclose(out[:, :, 30], 0.5 * (a + b)[:, :, 30])  # middle: the mean
    sym = np.concatenate([a, a[:, :, ::-1]], 2)  # a symmetric input stays symmetric
    sym_out = ev.batch_post_process_disparity(sym, sym[:, :, ::-1])
    np.testing.assert_allclose(sym_out, sym_out[:, :, ::-1])


def test_format_table():
    table = ev.format_table([0.1, 0.2, 3.0, 0.4, 0.5, 0.6, 0.7])
    header, values = table.splitlines()
    assert [h.strip() for h in header.split("|")][:7] == list(ev.METRIC_NAMES)
    assert values.startswith("&   0.100  &   0.200  &   3.000") and values.endswith("\\\\")


# ----------------------------------------------------------------------------- evaluate (files)

# Frame 0: gt 10 m, predicted 11 m; frame 1 (another size): gt 20 m, predicted 30 m.
GT_FRAMES = [np.full((40, 60), 10.0), np.full((30, 50), 20.0)]
EXPECTED = {"abs_rel": (0.1 + 0.5) / 2, "sq_rel": (0.1 + 5.0) / 2, "rmse": (1.0 + 10.0) / 2,
            "rmse_log": (np.log(1.1) + np.log(1.5)) / 2, "a1": 0.5, "a2": 1.0, "a3": 1.0}


def _pred_disps(path: Path, depths=(11.0, 30.0), scale=1.0) -> Path:
    disps = np.stack([np.full((8, 16), scale / d, np.float32) for d in depths])
    np.save(path, disps)
    return path


@pytest.mark.parametrize("plain", [False, True])
def test_evaluate_depth_end_to_end_with_external_disparities(tmp_path, capsys, plain):
    frames = GT_FRAMES if not plain else [np.full((40, 60), 10.0), np.full((40, 60), 20.0)]
    split = tmp_path / "my_split"
    save_gt(split / "gt_depths.npz", frames, plain=plain)
    out = tmp_path / "metrics.json"
    code = evaluate_depth.main(["--ext_disp_to_eval", str(_pred_disps(tmp_path / "d.npy")),
                                "--eval_split", str(split), "--eval_mono",
                                "--disable_median_scaling", "--output_json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    for name, value in EXPECTED.items():
        assert result[name] == pytest.approx(value, rel=1e-5), name
    assert result["n"] == 2 and result["scaling"] == "none" and result["garg_crop"] is False
    printed = capsys.readouterr().out
    assert "abs_rel |   sq_rel |     rmse | rmse_log |       a1 |       a2 |       a3 |" in printed
    assert "&   0.300  &   2.550  &   5.500" in printed


def test_evaluate_stereo_and_median(tmp_path):
    save_gt(tmp_path / "gt.npz", GT_FRAMES)
    stereo = run(["--ext_disp_to_eval", _pred_disps(tmp_path / "s.npy", scale=5.4),
                  "--gt_path", tmp_path / "gt.npz", "--eval_split", "eigen_benchmark", "--eval_stereo"])
    for name, value in EXPECTED.items():
        assert stereo[name] == pytest.approx(value, rel=1e-5), name
    assert stereo["scaling"] == "stereo" and stereo["pred_depth_scale_factor"] == 5.4
    median = run(["--ext_disp_to_eval", tmp_path / "s.npy", "--gt_path", tmp_path / "gt.npz",
                  "--eval_split", "eigen_benchmark", "--eval_mono"])
    assert median["abs_rel"] == pytest.approx(0, abs=1e-6) and median["a1"] == 1.0
    assert median["scaling"] == "median" and "median_ratio" in median


def test_eigen_split_uses_the_garg_crop(tmp_path):
    gt = np.full((100, 200), 10.0, np.float32)
    save_gt(tmp_path / "eigen" / "gt_depths.npz", [gt])
    disp = np.full((1, 100, 200), 0.1, np.float32)
    disp[0, :30] = 0.001  # wrong, but above the crop (rows < 40)
    np.save(tmp_path / "d.npy", disp)
    result = run(["--ext_disp_to_eval", tmp_path / "d.npy", "--eval_split", tmp_path / "eigen",
                  "--eval_mono", "--disable_median_scaling"])
    assert result["garg_crop"] is True and result["abs_rel"] == pytest.approx(0, abs=1e-6)


def test_prediction_count_mismatch_names_both(tmp_path):
    save_gt(tmp_path / "gt.npz", GT_FRAMES + [GT_FRAMES[0]])
    disps = _pred_disps(tmp_path / "d.npy")
    with pytest.raises(ev.EvaluationError, match=r"2 predictions .*d\.npy.* 3 ground-truth frames .*gt\.npz"):
        run(["--ext_disp_to_eval", disps, "--gt_path", tmp_path / "gt.npz", "--eval_stereo"])


def test_missing_gt_file_is_named(tmp_path, capsys):
    split = tmp_path / "empty_split"
    split.mkdir()
    with pytest.raises(ev.EvaluationError, match=r"empty_split/gt_depths\.npz.*export_gt_depth"):
        run(["--ext_disp_to_eval", _pred_disps(tmp_path / "d.npy"), "--eval_split", split, "--eval_stereo"])
    code = evaluate_depth.main(["--ext_disp_to_eval", str(tmp_path / "d.npy"), "--eval_split",
                                str(split), "--eval_stereo"])
    assert code == 2 and "gt_depths.npz" in capsys.readouterr().err


def test_stereo_checkpoint_with_eval_mono_warns(tmp_path, capsys, stereo_model):
    save_gt(tmp_path / "gt.npz", GT_FRAMES)
    out = tmp_path / "m.json"
    result = run(["--ext_disp_to_eval", _pred_disps(tmp_path / "d.npy"), "--gt_path", tmp_path / "gt.npz",
                  "--load_weights_folder", stereo_model, "--eval_mono", "--output_json", out])
    assert "inflates" in capsys.readouterr().err
    assert any("inflates" in w for w in result["warnings"])
    assert any("inflates" in w for w in json.loads(out.read_text())["warnings"])
    quiet = run(["--ext_disp_to_eval", tmp_path / "d.npy", "--gt_path", tmp_path / "gt.npz",
                 "--load_weights_folder", stereo_model, "--eval_stereo"])
    assert quiet["warnings"] == []


def test_save_pred_disps_and_no_eval(tmp_path):
    disps = _pred_disps(tmp_path / "d.npy")
    result = run(["--ext_disp_to_eval", disps, "--eval_split", "eigen", "--eval_stereo", "--save_pred_disps",
                  "--no_eval", "--eval_out_dir", tmp_path / "out"])
    saved = np.load(tmp_path / "out" / "disps_eigen_split.npy")
    np.testing.assert_array_equal(saved, np.load(disps))
    assert "abs_rel" not in result and result["n"] == 2


def test_eval_eigen_to_benchmark_selects_predictions(tmp_path, monkeypatch):
    from depth_hints import splits

    monkeypatch.setattr(splits, "PROJECT_SPLITS_DIR", tmp_path / "splits")
    (tmp_path / "splits" / "benchmark").mkdir(parents=True)
    np.save(tmp_path / "splits" / "benchmark" / "eigen_to_benchmark_ids.npy", np.array([0, 2]))
    save_gt(tmp_path / "splits" / "eigen_benchmark" / "gt_depths.npz", GT_FRAMES)
    _pred_disps(tmp_path / "d.npy", depths=(11.0, 99.0, 30.0))  # the middle one has no benchmark gt
    result = run(["--ext_disp_to_eval", tmp_path / "d.npy", "--eval_split", "eigen_benchmark",
                  "--eval_eigen_to_benchmark", "--eval_mono", "--disable_median_scaling"])
    assert result["n"] == 2
    for name, value in EXPECTED.items():
        assert result[name] == pytest.approx(value, rel=1e-5), name


# ----------------------------------------------------------------------------- benchmark PNGs

def test_benchmark_png_round_trip(tmp_path):
    from depth_hints.kitti import load_depth_png

    disps = np.stack([np.full((6, 20), 5.4 / 12.0, np.float32), np.full((6, 20), 5.4 / 200.0, np.float32)])
    paths = ev.write_benchmark_pngs(disps, str(tmp_path / "pngs"))
    assert [Path(p).name for p in paths] == ["0000000000.png", "0000000001.png"]
    raw = np.array(Image.open(paths[0]))
    assert raw.dtype == np.uint16 and raw.shape == ev.BENCHMARK_IMAGE_SIZE
    assert np.all(raw == int(12.0 * 256))
    assert load_depth_png(paths[1]).max() == pytest.approx(80.0)  # clipped


def test_benchmark_split_writes_pngs_and_no_metrics(tmp_path):
    split = tmp_path / "benchmark"
    split.mkdir()
    result = run(["--ext_disp_to_eval", _pred_disps(tmp_path / "d.npy", scale=5.4), "--eval_split", split,
                  "--eval_stereo", "--eval_out_dir", tmp_path / "out"])
    pngs = sorted((tmp_path / "out" / "benchmark_predictions").glob("*.png"))
    assert len(pngs) == 2 and "abs_rel" not in result
    assert np.array(Image.open(pngs[1]))[0, 0] == int(30.0 * 256)


# ----------------------------------------------------------------------------- with a model

def _tiny_kitti(root: Path, n: int = 3) -> list[str]:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        path = root / "2011_09_26" / "2011_09_26_drive_0001_sync" / "image_02" / "data" / f"{i:010d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (50, 160, 3), dtype=np.uint8)).save(path)
        lines.append(f"2011_09_26/2011_09_26_drive_0001_sync {i:010d} l\n")
    return lines


def test_evaluate_with_a_model_and_post_processing(tmp_path, stereo_model):
    data = tmp_path / "kitti"
    split = tmp_path / "mini"
    split.mkdir()
    (split / "test_files.txt").write_text("".join(_tiny_kitti(data)))
    save_gt(split / "gt_depths.npz", [np.full((50, 160), 10.0)] * 3)
    result = run(["--load_weights_folder", stereo_model, "--data_path", data, "--eval_split", split,
                  "--eval_stereo", "--post_process", "--save_pred_disps", "--num_workers", 0,
                  "--batch_size", 2, "--png"])
    assert result["n"] == 3 and result["post_process"] is True
    disps = np.load(stereo_model / "disps_mini_split.npy")
    assert disps.shape == (3, FEED_H, FEED_W)  # the checkpoint's feed size
    assert disps.min() >= 1 / 100.0 and disps.max() <= 1 / 0.1
    (split / "test_files.txt").write_text("".join(_tiny_kitti(data)) + "2011_09_26/2011_09_26_drive_0001_sync 9 l\n")
    with pytest.raises(ev.EvaluationError, match="0000000009"):
        run(["--load_weights_folder", stereo_model, "--data_path", data, "--eval_split", split,
             "--eval_stereo", "--num_workers", 0])


def test_model_prediction_matches_manual_forward(tmp_path, stereo_model):
    from depth_hints.checkpoints import load_depth_model
    from depth_hints.geometry import disp_to_depth

    image = np.random.default_rng(3).integers(0, 255, (50, 160, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    encoder, decoder, _ = load_depth_model(str(stereo_model))
    disps = ev.predict_disparities(encoder, decoder, [str(tmp_path / "a.png")], FEED_H, FEED_W)
    resized = np.asarray(Image.fromarray(image).resize((FEED_W, FEED_H), Image.LANCZOS), np.float32) / 255
    with torch.no_grad():
        sigmoid = decoder(encoder(torch.from_numpy(resized).permute(2, 0, 1)[None]))[("disp", 0)]
    expected = disp_to_depth(sigmoid, 0.1, 100.0)[0][0, 0].numpy()
    np.testing.assert_allclose(disps[0], expected, rtol=1e-5)


# ----------------------------------------------------------------------------- pose

def test_compute_ate_invariants():
    rng = np.random.default_rng(0)
    gt = np.cumsum(rng.normal(size=(5, 3)), 0)
    gt -= gt[0]
    assert pe.compute_ate(gt, gt) == pytest.approx(0, abs=1e-12)
    assert pe.compute_ate(gt, 0.1 * gt) == pytest.approx(0, abs=1e-12)  # scale is aligned
    assert pe.compute_ate(gt, 3.0 * gt + 7.0) == pytest.approx(0, abs=1e-9)  # first frames aligned
    assert pe.compute_ate(gt, gt + rng.normal(size=gt.shape)) > 0


def _poses_along_x(n: int, step: float = 1.0) -> np.ndarray:
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, 2, 3] = np.arange(n) * step  # driving forward along z
    return poses


def test_relative_poses_and_snippets():
    global_poses = _poses_along_x(8)
    relative = pe.relative_gt_poses(global_poses)
    assert relative.shape == (7, 4, 4)
    np.testing.assert_allclose(relative[:, 2, 3], -1.0)  # maps frame t-1 points into frame t
    positions = pe.accumulate_positions(relative[:4])
    np.testing.assert_allclose(positions[:, 2], [0, -1, -2, -3, -4])
    assert np.allclose(pe.snippet_ates(relative, relative * [1, 1, 1, 1]), 0)
    scaled = relative.copy()
    scaled[:, :3, 3] *= 0.2
    assert np.allclose(pe.snippet_ates(relative, scaled), 0)


def test_evaluate_pose_end_to_end(tmp_path):
    weights = save_model(tmp_path / "w", use_stereo=False, pose=True)
    data = tmp_path / "odom"
    rng = np.random.default_rng(0)
    for frame in range(4):
        path = data / "sequences" / "09" / "image_2" / f"{frame:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 80, 3), dtype=np.uint8)).save(path)
    (data / "poses").mkdir()
    np.savetxt(data / "poses" / "09.txt", _poses_along_x(4)[:, :3, :].reshape(4, 12))
    split = tmp_path / "odom_split"
    split.mkdir()
    (split / "test_files_09.txt").write_text("".join(f"9 {f} l\n" for f in range(3)))
    options = parse_evaluate_pose(["--load_weights_folder", str(weights), "--data_path", str(data),
                                   "--height", "64", "--width", "64", "--num_workers", "0", "--png",
                                   "--output_json", str(tmp_path / "ate.json")])
    result = pe.evaluate_pose(options, split_folder=split)
    assert result["n"] == 3 and np.isfinite(result["ate_mean"])
    assert np.load(weights / "poses.npy").shape == (3, 4, 4)
    assert json.loads((tmp_path / "ate.json").read_text())["ate_mean"] == pytest.approx(result["ate_mean"])
    (data / "poses" / "09.txt").unlink()
    with pytest.raises(pe.PoseEvaluationError, match="09.txt"):
        pe.evaluate_pose(options, split_folder=split)


SHARED_SPLITS = Path("/work/shared/kitti_splits")


@pytest.mark.skipif(not (SHARED_SPLITS / "benchmark" / "eigen_to_benchmark_ids.npy").is_file(),
                    reason="KITTI split lists not present")
def test_eigen_to_benchmark_ids_pick_the_eigen_benchmark_lines():
    from depth_hints.splits import read_split_file

    eigen = read_split_file(SHARED_SPLITS / "eigen" / "test_files.txt")
    benchmark = read_split_file(SHARED_SPLITS / "eigen_benchmark" / "test_files.txt")
    ids = np.load(SHARED_SPLITS / "benchmark" / "eigen_to_benchmark_ids.npy")
    assert len(eigen) == 697 and len(ids) == len(benchmark) == 652
    assert [(eigen[i].folder, eigen[i].frame_index) for i in ids] == \
        [(s.folder, s.frame_index) for s in benchmark]


def test_benchmark_test_images_in_kittis_flat_layout(tmp_path):
    from depth_hints.splits import Sample

    flat = tmp_path / "test_depth_prediction_anonymous" / "image" / "0000000004.png"
    flat.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(flat)
    root = str(tmp_path / "test_depth_prediction_anonymous")
    assert ev.kitti_test_image_paths(root, [Sample("image", 4, "l")]) == [str(flat)]
    with pytest.raises(ev.EvaluationError, match="image_02/data/0000000005.jpg"):
        ev.kitti_test_image_paths(root, [Sample("image", 5, "l")])


# ----------------------------------------------------------------------------- issue 20 (evaluation)

def _mini_split(tmp_path: Path, gt: bool = True) -> tuple:
    data = tmp_path / "kitti"
    split = tmp_path / "mini"
    split.mkdir()
    (split / "test_files.txt").write_text("".join(_tiny_kitti(data, n=2)))
    if gt:
        save_gt(split / "gt_depths.npz", [np.full((50, 160), 10.0)] * 2)
    return data, split


def test_evaluation_uses_the_depth_range_recorded_in_opt_json(tmp_path):
    from depth_hints.splits import read_split_file
    torch.manual_seed(0)
    encoder = networks.ResnetEncoder(18, False)
    decoder = networks.DepthDecoder(encoder.num_ch_enc)
    weights = tmp_path / "w"
    save_weights_folder(str(weights), {"encoder": encoder, "depth": decoder}, FEED_H, FEED_W, True,
                        options={"min_depth": 1.0, "max_depth": 10.0, "use_stereo": True})
    data, split = _mini_split(tmp_path)
    base = ["--load_weights_folder", weights, "--data_path", data, "--eval_split", split, "--png",
            "--eval_stereo", "--num_workers", 0, "--save_pred_disps", "--no_eval"]
    paths = ev.kitti_test_image_paths(str(data), read_split_file(split / "test_files.txt"), png=True)
    encoder.eval(), decoder.eval()
    for flags, (lo, hi) in (([], (1.0, 10.0)), (["--min_depth", 0.1, "--max_depth", 100], (0.1, 100.0))):
        run(base + flags + ["--eval_out_dir", tmp_path / f"out{lo}"])
        disps = np.load(tmp_path / f"out{lo}" / "disps_mini_split.npy")
        expected = ev.predict_disparities(encoder, decoder, paths, FEED_H, FEED_W, min_depth=lo, max_depth=hi)
        np.testing.assert_allclose(disps, expected, rtol=1e-5)
    assert np.load(tmp_path / "out1.0" / "disps_mini_split.npy").min() >= 1 / 10.0


@pytest.mark.parametrize("kind", ["npy", "corrupt", "text"])
def test_a_ground_truth_file_that_is_not_an_npz_gives_one_line(tmp_path, capsys, kind):
    path = tmp_path / ("gt.npy" if kind == "npy" else "gt.npz")
    if kind == "npy":
        np.save(path, np.ones((2, 8, 16), np.float32))
    elif kind == "corrupt":
        save_gt(path, GT_FRAMES)
        path.write_bytes(path.read_bytes()[:40])
    else:
        path.write_text("not an archive\n")
    disps = _pred_disps(tmp_path / "d.npy")
    with pytest.raises(ev.EvaluationError, match="gt.np") as info:
        run(["--ext_disp_to_eval", disps, "--gt_path", path, "--eval_stereo"])
    assert "\n" not in str(info.value) and "npz" in str(info.value)
    code = evaluate_depth.main(["--ext_disp_to_eval", str(disps), "--gt_path", str(path), "--eval_stereo"])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "Traceback" not in err


def _no_prediction(monkeypatch):
    from depth_hints import evaluation_base

    def refuse(*args, **kwargs):
        raise AssertionError("predicted before the inputs were checked")
    monkeypatch.setattr(evaluation_base, "predict_disparities", refuse)


def test_missing_ground_truth_is_found_before_predicting(tmp_path, monkeypatch, stereo_model):
    data, split = _mini_split(tmp_path, gt=False)
    _no_prediction(monkeypatch)
    with pytest.raises(ev.EvaluationError, match=r"mini/gt_depths\.npz.*export_gt_depth"):
        run(["--load_weights_folder", stereo_model, "--data_path", data, "--eval_split", split, "--png",
             "--eval_stereo", "--num_workers", 0])
    with pytest.raises(ev.EvaluationError, match=r"nothing\.npz"):
        run(["--load_weights_folder", stereo_model, "--data_path", data, "--eval_split", split, "--png",
             "--eval_stereo", "--num_workers", 0, "--gt_path", tmp_path / "nothing.npz"])
    (split / "test_files.txt").write_text("2011_09_26/2011_09_26_drive_0001_sync 7 l\n")
    save_gt(split / "gt_depths.npz", [np.full((50, 160), 10.0)])
    with pytest.raises(ev.EvaluationError, match="0000000007"):
        run(["--load_weights_folder", stereo_model, "--data_path", data, "--eval_split", split, "--png",
             "--eval_stereo", "--num_workers", 0])


def test_evaluation_says_which_weights_it_loads(tmp_path, capsys, stereo_model):
    data, split = _mini_split(tmp_path)
    run(["--load_weights_folder", stereo_model, "--data_path", data, "--eval_split", split, "--png",
         "--eval_stereo", "--num_workers", 0])
    assert f"Loading weights from {stereo_model}" in capsys.readouterr().out


def _spy_loader_workers(monkeypatch) -> list:
    seen = []
    real = torch.utils.data.DataLoader

    class Spy(real):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs.get("num_workers", 0))
            super().__init__(*args, **kwargs)
    monkeypatch.setattr(torch.utils.data, "DataLoader", Spy)
    return seen


def test_evaluation_caps_num_workers_to_the_cores(tmp_path, monkeypatch, stereo_model):
    import warnings
    from depth_hints.options import usable_cores
    from depth_hints.trainer import loader_workers
    data, split = _mini_split(tmp_path)
    seen = _spy_loader_workers(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(["--load_weights_folder", stereo_model, "--data_path", data, "--eval_split", split, "--png",
             "--eval_stereo", "--num_workers", 512, "--batch_size", 1])
    assert seen == [loader_workers(512, usable_cores())] and 1 <= seen[0] < usable_cores() + 1
    assert not [w for w in caught if "worker processes" in str(w.message)]


def test_pose_evaluation_caps_num_workers_to_the_cores(tmp_path, monkeypatch):
    import warnings
    from depth_hints.options import usable_cores
    from depth_hints.trainer import loader_workers
    weights = save_model(tmp_path / "w", use_stereo=False, pose=True)
    data = tmp_path / "odom"
    rng = np.random.default_rng(0)
    for frame in range(3):
        path = data / "sequences" / "09" / "image_2" / f"{frame:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 80, 3), dtype=np.uint8)).save(path)
    (data / "poses").mkdir()
    np.savetxt(data / "poses" / "09.txt", _poses_along_x(3)[:, :3, :].reshape(3, 12))
    split = tmp_path / "odom_split"
    split.mkdir()
    (split / "test_files_09.txt").write_text("".join(f"9 {f} l\n" for f in range(2)))
    options = parse_evaluate_pose(["--load_weights_folder", str(weights), "--data_path", str(data),
                                   "--height", "64", "--width", "64", "--num_workers", "512", "--png"])
    seen = _spy_loader_workers(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pe.evaluate_pose(options, split_folder=split)
    assert seen == [loader_workers(512, usable_cores())]
    assert not [w for w in caught if "worker processes" in str(w.message)]
