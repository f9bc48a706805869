"""Fused-SGM depth hints: matchers, warp, pick, units, files, and small end-to-end runs.

The scenes are synthetic rectified pairs with known disparity: fronto-parallel textured planes
(skimage's gravel / grass / brick as colour channels) at integer disparities, the right view an
exact horizontal shift of each plane, so every test knows the true disparity of both views.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

import precompute_depth_hints
from datasets.kitti_raw import KITTI_BASELINE_M
from datasets.registry import make_layout
from depth_hints import fused_sgm, geometry, hint_files, precompute, splits
from depth_hints.options import parse_precompute

HEIGHT, WIDTH = 64, 256
FOLDER = "2011_09_26/2011_09_26_drive_0001_sync"
# (first row, last row + 1, first column, last column + 1 in left-view columns, disparity px)
PLANES = ((0, HEIGHT, 0, WIDTH + 64, 6), (8, 56, 60, 130, 18), (20, 60, 170, 230, 30))


def _texture(height, width, rng):
    channels = []
    for image in (skimage.data.gravel(), skimage.data.grass(), skimage.data.brick()):
        r = rng.integers(0, image.shape[0] - height)
        c = rng.integers(0, image.shape[1] - width)
        channels.append(image[r:r + height, c:c + width])
    return np.stack(channels, -1).astype(np.uint8)


def make_scene(seed=0, height=HEIGHT, width=WIDTH, planes=PLANES):
    """-> left, right uint8 [H,W,3], true disparity of the left and of the right view [H,W]
    (0 = none). Planes are painted back to front; the right view sees a left-view column x + d."""
    rng = np.random.default_rng(seed)
    left = np.zeros((height, width, 3), np.uint8)
    right = np.zeros_like(left)
    gt_left = np.zeros((height, width), np.float32)
    gt_right = np.zeros_like(gt_left)
    for row0, row1, col0, col1, d in planes:
        texture = _texture(height, width + 64, rng)
        for x in range(width):
            if col0 <= x < col1:
                left[row0:row1, x] = texture[row0:row1, x]
                gt_left[row0:row1, x] = d
            if col0 <= x + d < col1:
                right[row0:row1, x] = texture[row0:row1, x + d]
                gt_right[row0:row1, x] = d
    return left, right, gt_left, gt_right


@pytest.fixture(scope="module", autouse=True)
def one_library_thread():
    """Tiny tensors: one torch/OpenCV thread is fastest, and idle OpenMP threads spinning on a
    busy machine can make these calls many times slower."""
    saved = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    yield
    torch.set_num_threads(saved[0])
    cv2.setNumThreads(saved[1])


@pytest.fixture(scope="module")
def scene():
    return make_scene()


@pytest.fixture(scope="module")
def left_hint(scene):
    left, right, _, _ = scene
    return fused_sgm.compute_hint(left, right, "l")


# ----------------------------------------------------------------------------- matchers

def test_bank_is_the_papers_twelve_in_order():
    bank = fused_sgm.sgbm_bank()
    assert [(m.block_size, m.num_disparities) for m in bank] == [
        (b, n) for b in (1, 2, 3) for n in (64, 96, 128, 160)]
    assert fused_sgm.duplicate_sources(bank) == list(range(8)) + [4, 5, 6, 7]


def test_each_matcher_is_close_to_the_truth_where_valid(scene, left_hint):
    _, _, gt_left, _ = scene
    for spec, disparity in zip(fused_sgm.sgbm_bank(), left_hint.candidates):
        valid = (disparity > 0) & (gt_left > 0)
        assert valid.mean() > 0.3, spec.name
        error = np.abs(disparity[valid] - gt_left[valid])
        assert np.median(error) < 0.25, spec.name
        assert (error > 3).mean() < 0.05, spec.name
        # No disparity left of numDisparities: the matcher cannot look there.
        assert (disparity[:, :spec.num_disparities - 1] <= 0).all(), spec.name


def test_block_sizes_2_and_3_identical_so_skipping_them_changes_nothing(scene, left_hint):
    left, right, _, _ = scene
    assert fused_sgm.duplicate_block_sizes_identical()
    every = fused_sgm.run_matchers(left, right, skip_duplicates=False)
    np.testing.assert_array_equal(every[8:], every[4:8])
    np.testing.assert_array_equal(every, left_hint.candidates)
    full = fused_sgm.compute_hint(left, right, "l", skip_duplicates=False)
    np.testing.assert_array_equal(full.depth, left_hint.depth)
    np.testing.assert_array_equal(full.winner, left_hint.winner)


def test_threaded_matchers_equal_serial(scene):
    left, right, _, _ = scene
    np.testing.assert_array_equal(fused_sgm.run_matchers(left, right, threads=3),
                                  fused_sgm.run_matchers(left, right, threads=1))


# ----------------------------------------------------------------------------- the pick

def test_fused_hint_at_least_as_accurate_as_the_best_single_matcher(scene, left_hint):
    _, _, gt_left, _ = scene
    fused = left_hint.disparity
    good = lambda d: int(((d > 0) & (gt_left > 0) & (np.abs(d - gt_left) <= 1)).sum())
    best_single_good = max(good(c) for c in left_hint.candidates)
    assert good(fused) >= best_single_good
    for spec, single in zip(fused_sgm.sgbm_bank(), left_hint.candidates):
        both = (single > 0) & (fused > 0) & (gt_left > 0)  # compare on the same pixels
        fused_error = np.abs(fused[both] - gt_left[both])
        single_error = np.abs(single[both] - gt_left[both])
        assert fused_error.mean() <= single_error.mean(), spec.name
        assert (fused_error > 1).mean() <= (single_error > 1).mean(), spec.name
        assert (fused_error > 3).mean() <= (single_error > 3).mean(), spec.name
    # The winner's disparity is the hint, and the hint's depth is the training's.
    picked = np.take_along_axis(left_hint.candidates, left_hint.winner[None], 0)[0]
    np.testing.assert_array_equal(np.where(picked > 0, picked, 0), fused)
    expected_depth = hint_files.disparity_to_hint_depth(fused.astype(np.float64), WIDTH)
    np.testing.assert_allclose(left_hint.depth, expected_depth, rtol=1e-6)


def test_right_frame_gives_the_mirrored_result(scene):
    left, right, _, gt_right = scene
    right_hint = fused_sgm.compute_hint(right, left, "r")
    mirrored = fused_sgm.compute_hint(np.ascontiguousarray(right[:, ::-1]),
                                  np.ascontiguousarray(left[:, ::-1]), "l")
    np.testing.assert_array_equal(right_hint.candidates, mirrored.candidates[:, :, ::-1])
    # Same pick up to float rounding in near ties (bilinear weights from the other end).
    assert (right_hint.disparity == mirrored.disparity[:, ::-1]).mean() > 0.995
    valid = (right_hint.disparity > 0) & (gt_right > 0)
    assert valid.mean() > 0.5
    assert (np.abs(right_hint.disparity[valid] - gt_right[valid]) > 3).mean() < 0.03
    # A right view has no disparity at its right edge (its matches lie off the left image).
    assert (right_hint.candidates[:, :, -63:] <= 0).all()


def test_missing_disparity_competes_as_the_corner_pixel_by_default_strict_drops_it():
    rng = np.random.default_rng(3)
    other = rng.random((8, 20, 3)).astype(np.float32)
    for side, corner in (("l", other[0, 0]), ("r", other[0, -1])):
        target = np.broadcast_to(corner, other.shape).copy()  # looks like "the warp at infinity"
        candidates = np.stack([np.full((8, 20), -1.0), np.full((8, 20), 2.0)]).astype(np.float32)
        disparity, winner = fused_sgm.fuse_candidates(target, other, candidates, side)
        assert (winner == 0).all() and (disparity == 0).all()  # it wins: no hint
        disparity, winner = fused_sgm.fuse_candidates(target, other, candidates, side, strict=True)
        assert (winner == 1).all() and (disparity == 2).all()


def test_strict_candidates_cover_more_default_filters(scene, left_hint):
    left, right, gt_left, _ = scene
    strict = fused_sgm.compute_hint(left, right, "l", strict=True)
    any_valid = (strict.candidates > 0).any(0)
    assert (strict.disparity[any_valid] > 0).all()
    assert (strict.disparity[~any_valid] == 0).all()
    assert hint_files.hint_coverage(strict.depth) >= hint_files.hint_coverage(left_hint.depth)


@pytest.mark.parametrize("side,strict", [("l", False), ("r", False), ("l", True)])
def test_tiled_fusion_skipping_tied_candidates_equals_whole_image(scene, side, strict):
    left, right, _, _ = scene
    target, other = (left, right) if side == "l" else (right, left)
    candidates = fused_sgm.match_view(target, other, side)[:8]
    whole = fused_sgm.fuse_candidates(target / 255.0, other / 255.0, candidates, side, strict,
                                  tile=None)
    for tile in (fused_sgm.CPU_TILE, (7, 50), (64, 33)):  # ragged tiles too
        tiled = fused_sgm.fuse_candidates(target / 255.0, other / 255.0, candidates, side, strict,
                                      tile=tile)
        np.testing.assert_array_equal(tiled[1], whole[1])
        np.testing.assert_array_equal(tiled[0], whole[0])


def test_relevant_candidates_marks_differences_and_their_neighbourhood():
    base = np.arange(6 * 7, dtype=np.float32).reshape(6, 7)
    changed = base.copy()
    changed[2, 3] = -1
    relevant = fused_sgm.relevant_candidates(np.stack([base, base, changed]))
    assert relevant[0].all() and not relevant[1].any()
    expected = np.zeros((6, 7), bool)
    expected[1:4, 2:5] = True
    np.testing.assert_array_equal(relevant[2], expected)


# ----------------------------------------------------------------------------- geometry and units

def test_depth_disparity_round_trip_with_training_intrinsics():
    disparity = np.array([[-1.0, 0.0, 0.0625, 1.0, 17.5, 160.0]])
    depth = hint_files.disparity_to_hint_depth(disparity, 1024)
    fx = geometry.KITTI_NORMALISED_INTRINSICS[0] * 1024
    np.testing.assert_allclose(depth[0, 2:], fx * geometry.NOMINAL_BASELINE / disparity[0, 2:])
    assert (depth[0, :2] == 0).all()
    np.testing.assert_allclose(hint_files.hint_depth_to_disparity(depth, 1024), np.maximum(disparity, 0))
    # The trainer's camera: a hint of depth z shifts a pixel by exactly d through the stereo pose.
    height, width = 6, 32
    K = geometry.kitti_intrinsics(width, height)[None]
    d = 5.25
    hint_value = float(hint_files.disparity_to_hint_depth(np.array(d), width))
    hint_depth = torch.full((1, 1, height, width), hint_value)
    grid = geometry.project(geometry.backproject(hint_depth, torch.linalg.inv(K)), K,
                            geometry.stereo_transform("l")[None], height, width)
    x_px = (grid[..., 0] + 1) / 2 * (width - 1)
    expected_x = np.arange(width)[None].repeat(height, 0) - d
    np.testing.assert_allclose(x_px[0].numpy(), expected_x, atol=1e-3)


@pytest.mark.parametrize("side", ["l", "r"])
def test_horizontal_warp_equals_backproject_project_grid_sample(side):
    torch.manual_seed(0)
    height, width, n = 12, 40, 4
    other = torch.rand(1, 3, height, width)
    disparity = torch.rand(n, height, width) * 14 - 2  # includes no-disparity (<= 0) pixels
    disparity[0, :3] = 0
    depth = hint_files.disparity_to_hint_depth(disparity, width)[:, None]
    K = geometry.kitti_intrinsics(width, height)[None].repeat(n, 1, 1)
    T = geometry.stereo_transform(side)[None].repeat(n, 1, 1)
    reference = geometry.warp(other.expand(n, -1, -1, -1), depth, K, torch.linalg.inv(K), T)
    warped = fused_sgm.warp_horizontal(other, disparity, side)
    torch.testing.assert_close(warped, reference, atol=1e-4, rtol=0)
    corner = other[0, :, 0, 0] if side == "l" else other[0, :, 0, -1]
    torch.testing.assert_close(warped[0, :, 0], corner[:, None].expand(3, width))


def test_the_pick_uses_the_trainers_photometric_error(scene, monkeypatch):
    from depth_hints import losses
    assert fused_sgm.photometric_error is losses.photometric_error
    left, right, _, _ = scene
    candidates = fused_sgm.match_view(left, right, "l")[:8]
    calls = []
    def counting(pred, target):
        calls.append(pred.shape)
        return losses.photometric_error(pred, target)

    monkeypatch.setattr(fused_sgm, "photometric_error", counting)
    fused_sgm.fuse_candidates(left / 255.0, right / 255.0, candidates, "l")
    assert calls


# ----------------------------------------------------------------------------- files

def test_float16_hint_loads_as_float32_of_the_right_shape(tmp_path, left_hint):
    path = hint_files.hint_file_path(str(tmp_path), FOLDER, 7, "l")
    hint_files.save_hint(path, left_hint.depth, "float16")
    raw = np.load(path)
    assert raw.dtype == np.float16 and raw.shape == (1, HEIGHT, WIDTH)
    loaded = hint_files.load_hint(path)
    assert loaded.dtype == np.float32 and loaded.shape == (HEIGHT, WIDTH)
    np.testing.assert_allclose(loaded, left_hint.depth, rtol=1e-3)
    assert ((loaded > 0) == (left_hint.depth > 0)).all()


def test_stale_temporaries_are_removed_only_when_old(tmp_path):
    old, young = tmp_path / "0000000001.npy.tmp123", tmp_path / "0000000002.npy.tmp456"
    keep = tmp_path / "notes.tmp1"
    for p in (old, young, keep):
        p.write_bytes(b"x")
    os.utime(old, (time.time() - 3600,) * 2)
    os.utime(keep, (time.time() - 3600,) * 2)
    assert hint_files.remove_stale_temporaries([str(tmp_path)]) == 1
    assert not old.exists() and young.exists() and keep.exists()


def test_gt_disparity_folder_is_rescaled_to_hint_width(tmp_path):
    gt = np.zeros((32, 512), np.float32)
    gt[:, 100:] = 20.0
    path = hint_files.hint_file_path(str(tmp_path), FOLDER, 3, "r")
    os.makedirs(os.path.dirname(path))
    np.save(path, gt)
    loaded, source = precompute.load_gt_disparity(make_layout("kitti", "unused"), str(tmp_path), FOLDER, 3, "r", 16, 256)
    assert source == "gt_disparity" and loaded.shape == (16, 256)
    assert set(np.unique(loaded)) == {0.0, 10.0}


# ----------------------------------------------------------------------------- end to end

FRAMES = ((0, "l"), (1, "l"), (2, "r"))


def write_kitti(root: Path, frames=FRAMES, gt=True, skip_images=()):
    """A KITTI-raw-layout folder with synthetic pairs (+ the synthetic world's depth PNGs) and
    a split file; returns the split file path."""
    fx_img = 0.58 * WIDTH
    for frame, side in frames:
        left, right, gt_left, gt_right = make_scene(seed=frame)
        for cam, image, gt_disp in (("image_02", left, gt_left), ("image_03", right, gt_right)):
            image_path = root / FOLDER / cam / "data" / f"{frame:010d}.png"
            image_path.parent.mkdir(parents=True, exist_ok=True)
            if (frame, cam) not in skip_images:
                cv2.imwrite(str(image_path), image[..., ::-1])  # RGB -> BGR for OpenCV
            if gt:
                safe = np.maximum(gt_disp, 1e-6)
                depth_m = np.where(gt_disp > 0, fx_img * KITTI_BASELINE_M / safe, 0)
                side = "l" if cam == "image_02" else "r"
                gt_path = Path(make_layout("kitti", str(root)).gt_path(FOLDER, frame, side))
                gt_path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(gt_path), np.round(depth_m * 256).astype(np.uint16))
    split = root / "files.txt"
    split.write_text("".join(f"{FOLDER} {frame} {side}\n" for frame, side in frames))
    return split


def options_for(root: Path, split: Path, save: Path, *extra):
    return parse_precompute(["--data_path", str(root), "--filenames", str(split), "--png",
                             "--height", str(HEIGHT), "--width", str(WIDTH), "--num_workers", "0",
                             "--save_path", str(save), "--no_cuda", *extra])


def hint_paths(save: Path, frames=FRAMES):
    return [Path(hint_files.hint_file_path(str(save), FOLDER, f, s)) for f, s in frames]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """One clean in-process run: (data root, split file, hint folder, summary, report)."""
    root = tmp_path_factory.mktemp("kitti")
    split = write_kitti(root)
    save = root / "hints_clean"
    report = root / "report.json"
    summary = precompute.precompute(options_for(root, split, save, "--report", str(report)),
                               progress=False, verbose=False)
    return root, split, save, summary, json.loads(report.read_text())


def test_precompute_writes_the_layout_and_a_report(clean_run, left_hint):
    root, split, save, summary, report = clean_run
    assert summary.ok and summary.computed == 3 and summary.skipped == 0
    for path in hint_paths(save):
        raw = np.load(path)
        assert raw.dtype == np.float32 and raw.shape == (1, HEIGHT, WIDTH)
    # Frame 0 is the scene of the fixtures: the file holds exactly compute_hint's depth.
    np.testing.assert_array_equal(hint_files.load_hint(str(hint_paths(save)[0])), left_hint.depth)
    assert 0.5 < summary.mean_coverage < 1
    names = [m.name for m in fused_sgm.sgbm_bank()]
    assert [f["status"] for f in report["frames"]] == ["computed"] * 3
    for frame in report["frames"]:
        assert frame["gt"] == "synthetic"
        assert 0.5 < frame["coverage"] < 1
        assert sorted(frame["matchers"]) == sorted(names)
        assert frame["hint"]["bad3"] < 0.05 and frame["hint"]["epe"] < 1
    assert report["accuracy_mean"]["hint"]["frames"] == 3
    assert report["summary"]["skipped_duplicate_matchers"] is True


def test_rerun_skips_valid_files_and_recomputes_corrupt_ones(tmp_path, clean_run):
    root, split, clean, _, _ = clean_run
    save = tmp_path / "hints"
    precompute.precompute(options_for(root, split, save), progress=False, verbose=False)
    paths = hint_paths(save)
    paths[0].write_bytes(paths[0].read_bytes()[:100])  # truncated
    paths[1].write_bytes(b"not a numpy file")  # garbage
    before = paths[2].stat().st_mtime_ns
    summary = precompute.precompute(options_for(root, split, save, "--report", str(tmp_path / "r.json")),
                               progress=False, verbose=False)
    assert (summary.computed, summary.replaced, summary.skipped) == (2, 2, 1)
    assert paths[2].stat().st_mtime_ns == before
    for path, reference in zip(paths, hint_paths(clean)):
        assert path.read_bytes() == reference.read_bytes()
    frames = json.loads((tmp_path / "r.json").read_text())["frames"]
    assert frames[2]["status"] == "skipped" and frames[2]["hint"]["epe"] is not None


def test_interrupted_run_leaves_only_complete_files_and_rerun_matches_clean(tmp_path, clean_run,
                                                                           monkeypatch):
    root, split, clean, _, _ = clean_run
    save = tmp_path / "hints"
    real_save = np.save
    calls = {"n": 0}

    def dying_save(file, array, *args, **kwargs):  # dies half-way through the second file
        calls["n"] += 1
        if calls["n"] == 2:
            file.write(b"\x93NUMPY partial")
            raise KeyboardInterrupt
        return real_save(file, array, *args, **kwargs)

    monkeypatch.setattr(hint_files.np, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        precompute.precompute(options_for(root, split, save), progress=False, verbose=False,
                         threads=1)
    monkeypatch.setattr(hint_files.np, "save", real_save)
    present = sorted(save.rglob("*.npy"))
    assert present and not hint_paths(save)[1].exists()  # the frame that died has no file
    for path in present:
        hint_files.load_hint(str(path))
    assert not list(save.rglob("*.tmp*"))  # the half-written temporary was removed
    summary = precompute.precompute(options_for(root, split, save), progress=False, verbose=False)
    assert summary.computed == 3 - len(present) and summary.skipped == len(present)
    for path, reference in zip(hint_paths(save), hint_paths(clean)):
        assert path.read_bytes() == reference.read_bytes()


def test_killed_process_then_worker_pool_rerun_matches_clean_run(tmp_path, clean_run):
    root, split, clean, _, _ = clean_run
    # The three scenes under four frame numbers each, both sides: enough frames for the
    # process to be killed mid-run. Frame n + 100 r holds the images of frame n.
    lines, expected = [], []
    for repeat in range(4):
        for frame in range(3):
            index = frame + 100 * repeat
            for cam in ("image_02", "image_03"):
                dst = root / FOLDER / cam / "data" / f"{index:010d}.png"
                if not dst.exists():
                    src = root / FOLDER / cam / "data" / f"{frame:010d}.png"
                    dst.write_bytes(src.read_bytes())
            for side in "lr":
                lines.append(f"{FOLDER} {index} {side}\n")
                expected.append((index, side, frame))
    split_many = root / "many.txt"
    split_many.write_text("".join(lines))
    save = tmp_path / "hints"
    argv = ["--data_path", str(root), "--filenames", str(split_many), "--png", "--height",
            str(HEIGHT), "--width", str(WIDTH), "--save_path", str(save), "--no_cuda"]
    process = subprocess.Popen([sys.executable, precompute_depth_hints.__file__, *argv,
                                "--num_workers", "0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None and not list(save.rglob("*.npy")):
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = list(save.rglob("*.npy"))
    for path in written:  # every hint-named file is complete
        hint_files.load_hint(str(path))
    # Finish with two worker processes; every file equals the clean in-process one.
    summary = precompute.precompute(parse_precompute([*argv, "--num_workers", "2"]),
                               progress=False, verbose=False)
    assert summary.ok and summary.replaced == 0
    assert (summary.skipped, summary.computed) == (len(written), len(expected) - len(written))
    for index, side, frame in expected:
        made = Path(hint_files.hint_file_path(str(save), FOLDER, index, side))
        first = Path(hint_files.hint_file_path(str(save), FOLDER, frame, side))
        assert made.read_bytes() == first.read_bytes()
        if (frame, side) in FRAMES:
            assert made.read_bytes() == \
                Path(hint_files.hint_file_path(str(clean), FOLDER, frame, side)).read_bytes()


def test_float16_run_and_missing_images_give_exit_code_1(tmp_path, capsys):
    root = tmp_path / "kitti"
    split = write_kitti(root, frames=((0, "l"), (1, "r")), gt=False, skip_images={(1, "image_02")})
    save = tmp_path / "hints"
    code = precompute_depth_hints.main(["--data_path", str(root), "--filenames", str(split),
                                        "--png", "--height", str(HEIGHT), "--width", str(WIDTH),
                                        "--num_workers", "0", "--save_path", str(save),
                                        "--dtype", "float16"])
    out = capsys.readouterr().out
    assert code == 1
    missing = str(root / FOLDER / "image_02" / "data" / f"{1:010d}.png")
    assert missing in out and "missing input images (1," in out
    done = hint_files.hint_file_path(str(save), FOLDER, 0, "l")
    assert np.load(done).dtype == np.float16
    assert hint_files.load_hint(done).dtype == np.float32
    assert not os.path.exists(hint_files.hint_file_path(str(save), FOLDER, 1, "r"))


def test_matching_in_workers_and_fusing_in_the_main_process_is_identical(clean_run):
    # The CUDA layout (workers match, the main process fuses), exercised on the CPU.
    root, split, clean, _, _ = clean_run
    job = precompute.FrameJob(layout=make_layout("kitti", str(root), img_ext=".png"),
                              save_path=str(root / "hints_main_fused"),
                              height=HEIGHT, width=WIDTH, dtype="float32", strict=False,
                         overwrite=True, report=False, gt_disparity=None, skip_duplicates=True,
                         fuse=False)
    sample = splits.read_split_file(split)[2]
    matched = precompute.process_frame(job, 2, sample)
    assert isinstance(matched, precompute._Matched)
    precompute._finish_frame(job, sample, 2, matched.target, matched.other, matched.candidates,
                        matched.replaced, device="cpu")
    assert Path(hint_files.hint_file_path(job.save_path, FOLDER, 2, "r")).read_bytes() == \
        hint_paths(clean)[2].read_bytes()


def test_missing_default_split_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(splits, "PROJECT_SPLITS_DIR", tmp_path / "no_splits")
    code = precompute_depth_hints.main(["--data_path", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "fetch_kitti_splits.py" in err and "--filenames" in err


def test_sceneflow_refuses_kitti_lines_naming_the_subsets(tmp_path, capsys):
    split = tmp_path / "s.txt"
    split.write_text(f"{FOLDER} 0 l\n")
    code = precompute_depth_hints.main(["--data_path", str(tmp_path), "--filenames", str(split),
                                        "--dataset", "sceneflow"])
    err = capsys.readouterr().err
    assert code == 2 and "flyingthings3d" in err and "--dataset sceneflow" in err


# ----------------------------------------------------------------------------- shards

@pytest.mark.parametrize("flag,environ,expected", [
    (None, {}, (0, 1)),
    ("2/3", {}, (2, 3)),
    (" 0 / 1 ", {}, (0, 1)),
    # an array --array=0-3: tasks 0..3 are shards 0..3 (other arrays need --num_shards:
    # tests/test_precompute_faults.py)
    (None, {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4",
            "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "3"}, (2, 4)),
    (None, {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, (1, 2)),
    # the SLURM array before torchrun (whose ranks split the array's shard), the flag before both
    (None, {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2", "RANK": "1",
            "WORLD_SIZE": "4"}, (0, 2)),
    ("1/5", {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"}, (1, 5)),
])
def test_shard_from_the_flag_then_slurm_then_torchrun(flag, environ, expected):
    shard = precompute.resolve_shard(flag, environ)
    assert (shard.index, shard.count) == expected


@pytest.mark.parametrize("flag,environ,named", [
    ("3/3", {}, "--shard"), ("1", {}, "--shard"), ("-1/2", {}, "--shard"), ("0/0", {}, "--shard"),
    (None, {"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"}, "SLURM_ARRAY_TASK_ID"),
    (None, {"SLURM_ARRAY_TASK_ID": "1"}, "SLURM_ARRAY_TASK_COUNT"),
    (None, {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "2"}, "SLURM array task 5"),
    (None, {"SLURM_ARRAY_TASK_ID": "11", "SLURM_ARRAY_TASK_COUNT": "4",
            "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_STEP": "2"}, "--num_shards"),
    (None, {"WORLD_SIZE": "2"}, "RANK"),
    (None, {"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2"),
])
def test_bad_shard_names_the_flag_or_variable(flag, environ, named):
    with pytest.raises(precompute.PrecomputeError, match=named):
        precompute.resolve_shard(flag, environ)


def test_shards_deal_the_sorted_frames_round_robin():
    def sample(folder, frame, side):
        return splits.Sample(folder, frame, side)
    # split order scrambled; sorted: (a,1,l) (a,1,r) (a,2,l) (a,10,l) (b,0,l)
    samples = [sample("b", 0, "l"), sample("a", 10, "l"), sample("a", 1, "r"), sample("a", 2, "l"),
               sample("a", 1, "l")]
    shard = lambda i, n: precompute.shard_samples(samples, precompute.Shard(i, n))
    assert shard(0, 2) == [sample("b", 0, "l"), sample("a", 2, "l"), sample("a", 1, "l")]
    assert shard(1, 2) == [sample("a", 10, "l"), sample("a", 1, "r")]
    assert shard(0, 3) == [sample("a", 10, "l"), sample("a", 1, "l")]
    assert shard(2, 3) == [sample("a", 2, "l")]
    assert shard(1, 7) == [sample("a", 1, "r")] and shard(6, 7) == []
    assert shard(0, 1) == samples


def _hint_files(save: Path) -> dict:
    return {str(p.relative_to(save)): p.read_bytes() for p in sorted(save.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("count", [2, 3])
def test_union_of_shards_is_byte_identical_to_one_run(tmp_path, clean_run, count, monkeypatch):
    """N = 2 with --shard, N = 3 as a SLURM array --array=0-2 with --num_shards 3."""
    root, split, clean, _, _ = clean_run
    save = tmp_path / "hints"
    computed = []
    for index in range(count):
        if count == 2:
            options = options_for(root, split, save, "--shard", f"{index}/{count}")
        else:
            for name, value in (("SLURM_ARRAY_TASK_ID", index), ("SLURM_ARRAY_TASK_COUNT", 3),
                                ("SLURM_ARRAY_TASK_MIN", 0), ("SLURM_ARRAY_TASK_MAX", 2)):
                monkeypatch.setenv(name, str(value))
            options = options_for(root, split, save, "--num_shards", "3")
        before = set(_hint_files(save)) if save.exists() else set()
        summary = precompute.precompute(options, progress=False, verbose=False)
        assert summary.ok and summary.skipped == 0
        computed.append(summary.computed)
        after = set(_hint_files(save))
        assert before < after and len(after - before) == summary.computed  # only its own frames
        # Run again: the shard finds all of its own frames and nothing else.
        again = precompute.precompute(options, progress=False, verbose=False)
        assert (again.computed, again.skipped) == (0, summary.computed)
    # frames of the 3-line split sorted: (0 l) (1 l) (2 r): shard i gets frames i, i + N, ...
    assert computed == ([2, 1] if count == 2 else [1, 1, 1])
    assert _hint_files(save) == _hint_files(clean)


def test_bad_shard_is_a_one_line_error(clean_run, capsys):
    root, split, _, _, _ = clean_run
    code = precompute_depth_hints.main(["--data_path", str(root), "--filenames", str(split),
                                        "--png", "--shard", "2/2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "--shard '2/2'" in err


# ----------------------------------------------------------------------------- verification

def test_check_hint_file_tells_each_problem_apart(tmp_path):
    def write(name, array):
        path = tmp_path / name
        np.save(path, array)
        return str(path)
    good = np.zeros((4, 8), np.float32)
    good[:, :5] = 2.0  # 20 of 32 pixels have a hint
    ok = hint_files.check_hint_file(write("ok.npy", good[None]), (4, 8))
    assert (ok.status, ok.coverage, ok.message) == ("ok", 20 / 32, "")
    nan, negative = good.copy(), good.copy()
    nan[0, 0], negative[1, 1] = np.nan, -1
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(Path(write("full.npy", good)).read_bytes()[:-4])
    cases = {"missing": (str(tmp_path / "none.npy"), "missing"),
             "truncated": (str(truncated), "corrupt"),
             "garbage": (str(tmp_path / "garbage.npy"), "corrupt"),
             "nan": (write("nan.npy", nan), "corrupt"),
             "negative": (write("negative.npy", negative), "corrupt"),
             "integer": (write("integer.npy", good.astype(np.int32)), "corrupt"),
             "rank 3": (write("rank3.npy", np.stack([good, good])), "corrupt"),
             "wrong size": (write("small.npy", good[:, :6]), "wrong size")}
    (tmp_path / "garbage.npy").write_bytes(b"\x93NUMPY garbage")
    for name, (path, status) in cases.items():
        check = hint_files.check_hint_file(path, (4, 8))
        assert check.status == status, name
        assert path in check.message and check.coverage is None, name
    # Header only (training's start-up check): structure and length, not the depths.
    for name, expected in (("truncated", "corrupt"), ("garbage", "corrupt"),
                           ("integer", "corrupt"), ("rank 3", "corrupt"), ("missing", "missing"),
                           ("nan", "ok"), ("negative", "ok"), ("wrong size", "ok")):
        assert hint_files.check_hint_file(cases[name][0], header_only=True).status == expected, name
    assert hint_files.read_hint_header(cases["wrong size"][0]) == (4, 6)
    assert hint_files.check_hint_file(cases["wrong size"][0], (4, 8), header_only=True).status \
        == "wrong size"


def test_verify_passes_a_good_folder_and_lists_every_problem_of_a_damaged_one(
        tmp_path, clean_run, capsys):
    root, split, clean, _, _ = clean_run
    argv = ["--data_path", str(root), "--filenames", str(split), "--png", "--height",
            str(HEIGHT), "--width", str(WIDTH), "--num_workers", "0", "--no_cuda", "--verify"]
    code = precompute_depth_hints.main([*argv, "--save_path", str(clean)])
    out = capsys.readouterr().out
    coverages = [hint_files.hint_coverage(hint_files.load_hint(str(p))) for p in hint_paths(clean)]
    assert code == 0
    assert "3 hint files: ok 3, missing 0, corrupt 0, wrong size 0" in out
    assert f"mean coverage {np.mean(coverages):.4f}" in out
    # Damage a copy: frame 0 missing, frame 1 truncated, frame 2 of another size.
    save = tmp_path / "hints"
    for path, reference in zip(hint_paths(save), hint_paths(clean)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(reference.read_bytes())
    paths = hint_paths(save)
    paths[0].unlink()
    paths[1].write_bytes(paths[1].read_bytes()[:1000])
    hint_files.save_hint(str(paths[2]), np.ones((HEIGHT, WIDTH // 2), np.float32))
    damaged = _hint_files(save)
    code = precompute_depth_hints.main([*argv, "--save_path", str(save)])
    out = capsys.readouterr().out
    assert code == 1
    assert "3 hint files: ok 0, missing 1, corrupt 1, wrong size 1" in out
    for path in paths:
        assert str(path) in out
    assert f"is {WIDTH // 2}x{HEIGHT}, not {WIDTH}x{HEIGHT}" in out
    assert _hint_files(save) == damaged  # nothing recomputed or removed
    assert "--overwrite_saved_depths" in out  # what the file of another size needs
    # The same run without --verify stops at the valid hint of another size (never replaced
    # silently); with --overwrite_saved_depths it repairs everything; then --verify passes.
    argv.remove("--verify")
    assert precompute_depth_hints.main([*argv, "--save_path", str(save)]) == 2
    assert "--overwrite_saved_depths" in capsys.readouterr().err
    assert precompute_depth_hints.main([*argv, "--save_path", str(save),
                                        "--overwrite_saved_depths"]) == 0
    assert _hint_files(save) == _hint_files(clean)


# ----------------------------------------------------------------------------- the pick device

def test_device_tiles_scoring_every_candidate_equal_the_whole_image(scene):
    left, right, _, _ = scene
    candidates = fused_sgm.match_view(left, right, "l")[:8]
    whole = fused_sgm.fuse_candidates(left / 255.0, right / 255.0, candidates, "l", tile=None)
    for tile in (fused_sgm.DEVICE_TILE, (7, 50)):
        tiled = fused_sgm.fuse_candidates(left / 255.0, right / 255.0, candidates, "l",
                                          tile=tile, skip_tied=False)
        np.testing.assert_array_equal(tiled[1], whole[1])
        np.testing.assert_array_equal(tiled[0], whole[0])


@pytest.mark.parametrize("workers", [0, 2])
def test_one_picker_in_the_main_process_one_frame_at_a_time(tmp_path, clean_run, monkeypatch,
                                                            workers):
    """The GPU layout on the CPU: threads or worker processes match, the main thread alone
    picks, never two frames at once; the files equal the per-worker CPU pick's."""
    import threading
    root, split, clean, _, _ = clean_run
    calls, active = [], {"now": 0, "most": 0}
    real_fuse = precompute.fuse_candidates

    def watched_fuse(*args, **kwargs):
        active["now"] += 1
        active["most"] = max(active["most"], active["now"])
        calls.append((threading.get_ident(), kwargs["tile"], kwargs["skip_tied"]))
        try:
            return real_fuse(*args, **kwargs)
        finally:
            active["now"] -= 1

    monkeypatch.setattr(precompute, "fuse_candidates", watched_fuse)
    save = tmp_path / "hints"
    options = options_for(root, split, save, "--num_workers", str(workers), "--pick_device", "cpu")
    summary = precompute.precompute(options, progress=False, verbose=False, threads=2,
                                    one_picker=True)
    assert summary.ok and summary.computed == 3
    assert "pick on cpu in the main process" in summary.parallelism
    assert calls == [(threading.main_thread().ident, fused_sgm.DEVICE_TILE, False)] * 3
    assert active["most"] == 1
    assert _hint_files(save) == _hint_files(clean)


def test_per_worker_pick_on_the_cpu_by_default(tmp_path, clean_run, monkeypatch):
    import threading
    root, split, _, _, _ = clean_run
    threads = []
    real_fuse = precompute.fuse_candidates

    def watched_fuse(*args, **kwargs):
        threads.append(threading.get_ident())
        return real_fuse(*args, **kwargs)

    monkeypatch.setattr(precompute, "fuse_candidates", watched_fuse)
    summary = precompute.precompute(options_for(root, split, tmp_path / "hints"), progress=False,
                                    verbose=False, threads=2)
    assert summary.ok and "pick on" not in summary.parallelism
    assert len(threads) == 3 and threading.main_thread().ident not in threads


def test_pick_device_cuda_without_a_gpu_and_with_no_cuda_are_one_line_errors(clean_run, capsys):
    root, split, _, _, _ = clean_run
    argv = ["--data_path", str(root), "--filenames", str(split), "--png", "--pick_device", "cuda"]
    code = precompute_depth_hints.main([*argv, "--no_cuda"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "--pick_device cuda and --no_cuda" in err
    if not torch.cuda.is_available():
        code = precompute_depth_hints.main(argv)
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err and "--pick_device cpu" in err


@pytest.mark.parametrize("extra, starts", [(["--num_workers", "2"], True),
                                           (["--num_workers", "0"], False),
                                           (["--num_workers", "2", "--verify"], False)])
def test_entry_point_starts_the_worker_fork_server_before_its_imports_only_for_a_pool(
        tmp_path, clean_run, monkeypatch, extra, starts):
    """Start-up: the fork server's imports run beside the main process's, and only when the
    run will use worker processes (a --verify or in-process run starts none)."""
    from depth_hints import worker_pool
    root, split, clean, _, _ = clean_run
    calls = []
    monkeypatch.setattr(worker_pool, "start_early", lambda: calls.append(1))
    save = tmp_path / "hints"
    shutil.copytree(clean, save)  # every hint exists: the run only checks them
    code = precompute_depth_hints.main(["--data_path", str(root), "--filenames", str(split), "--png",
                                        "--height", str(HEIGHT), "--width", str(WIDTH),
                                        "--save_path", str(save), "--no_cuda", *extra])
    assert code == 0
    assert calls == ([1] if starts else [])


def test_pool_context_preloads_the_precompute_in_a_fork_server():
    from depth_hints import worker_pool
    import multiprocessing
    context = worker_pool.pool_context()
    if "forkserver" in multiprocessing.get_all_start_methods():
        assert context.get_start_method() == "forkserver"
        assert worker_pool.PRELOAD == ["depth_hints.precompute"]
    else:
        assert context.get_start_method() == "spawn"
