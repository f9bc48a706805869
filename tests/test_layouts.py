"""Dataset layouts (datasets/layout.py and one module per dataset): paths of both views, the
camera, ground truth, neighbours and the registry; plus the file helpers every layout and
writer shares (atomic writes, the one depth-PNG quantisation)."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

import datasets
from datasets.kitti_raw import KITTI_BASELINE_M, KittiDepthLayout, KittiRawLayout
from datasets.layout import Camera, DatasetError, LayoutError
from datasets.registry import LAYOUTS, make_layout
from datasets.sceneflow import SceneFlowError, SceneFlowLayout
from depth_hints import geometry, kitti
from depth_hints.atomic import atomic_write
from depth_hints.hint_files import hint_file_path, remove_stale_temporaries, save_hint
from depth_hints.pfm import write_pfm
from depth_hints.splits import Sample

FOLDER = "2011_09_26/2011_09_26_drive_0001_sync"
FT3D = "flyingthings3d/TRAIN/A/0001"


# ----------------------------------------------------------------------------- registry

def test_registry_covers_every_dataset_flag():
    from depth_hints.options import DATASETS
    assert set(LAYOUTS) == set(DATASETS)
    assert LAYOUTS["kitti_test"] is LAYOUTS["kitti"] is KittiRawLayout
    for name in DATASETS:
        assert datasets.dataset_class(name).layout_class is LAYOUTS[name]
    with pytest.raises(LayoutError, match="--dataset 'nyu'.*kitti"):
        make_layout("nyu", "x")


def test_make_layout_passes_only_the_options_a_layout_takes():
    kitti_layout = make_layout("kitti", "root", img_ext=".png", sceneflow_pass="final")
    assert kitti_layout.img_ext == ".png"
    sceneflow = make_layout("sceneflow", "root", img_ext=".jpg", sceneflow_pass="final")
    assert sceneflow.sceneflow_pass == "final" and sceneflow.img_ext == ".png"


# ----------------------------------------------------------------------------- paths

def test_kitti_raw_paths_of_both_views():
    layout = make_layout("kitti", "K", img_ext=".png")
    target, other = layout.stereo_image_paths(Sample(FOLDER, 7, "r"))
    assert target == os.path.join("K", FOLDER, "image_03", "data", "0000000007.png")
    assert other == os.path.join("K", FOLDER, "image_02", "data", "0000000007.png")
    assert layout.gt_path(FOLDER, 7, "l") == os.path.join(
        "K", FOLDER, "proj_depth", "groundtruth", "image_02", "0000000007.png")
    assert layout.velodyne_path(FOLDER, 7) == os.path.join(
        "K", FOLDER, "velodyne_points", "data", "0000000007.bin")
    assert layout.calib_dir(FOLDER) == os.path.join("K", "2011_09_26")
    assert layout.neighbour(Sample(FOLDER, 7, "r"), -1) == Sample(FOLDER, 6, "r")


def test_kitti_odometry_paths_and_poses():
    layout = make_layout("kitti_odom", "O")
    assert layout.image_path("9", 5, "r") == os.path.join("O", "sequences", "09", "image_3", "000005.jpg")
    assert layout.poses_path(9) == os.path.join("O", "poses", "09.txt")
    assert layout.gt_kind is None and layout.gt_depth("9", 5, "l") is None


def test_sceneflow_paths_and_line_checks():
    layout = make_layout("sceneflow", "S", sceneflow_pass="final")
    target, other = layout.stereo_image_paths(Sample(FT3D, 6, "l"))
    assert target == os.path.join("S", "flyingthings3d", "frames_finalpass", "TRAIN", "A", "0001",
                                  "left", "0006.png")
    assert other.endswith(os.path.join("0001", "right", "0006.png"))
    assert layout.gt_path(FT3D, 6, "r") == os.path.join(
        "S", "flyingthings3d", "disparity", "TRAIN", "A", "0001", "right", "0006.pfm")
    with pytest.raises(SceneFlowError, match="files.txt: .*unknown SceneFlow subset"):
        layout.check_sample(Sample(FOLDER, 0, "l"), "files.txt")
    with pytest.raises(SceneFlowError, match="negative"):
        layout.check_sample(Sample(FT3D, -1, "l"))


# ----------------------------------------------------------------------------- camera

def test_kitti_camera_is_the_nominal_rig_times_5_4():
    camera = make_layout("kitti", "K").camera(FOLDER)
    assert camera.intrinsics == geometry.KITTI_NORMALISED_INTRINSICS
    assert camera.baseline == KITTI_BASELINE_M == 0.54
    assert camera.metric_scale == pytest.approx(geometry.STEREO_SCALE_FACTOR)
    assert torch.equal(camera.K(), geometry.normalised_intrinsics(0.58, 1.92, 0.5, 0.5))
    # 0.58 * 1000 px * 0.54 m / 29 px = 10.8 m
    assert camera.disparity_to_depth(np.float64(29.0), 1000) == pytest.approx(10.8)


def test_sceneflow_camera_holds_the_training_float32_intrinsics():
    camera = make_layout("sceneflow", "S").camera(FT3D)
    assert camera.fx_normalised == float(np.float32(1050 / 960))
    assert camera.baseline == 1.0 and camera.metric_scale == pytest.approx(10.0)
    driving = make_layout("sceneflow", "S").camera("driving/15mm_focallength/scene_forwards/fast")
    assert driving.fx_normalised == float(np.float32(450 / 960))


def test_camera_with_off_centre_principal_point_and_doffs():
    # Middlebury-like: f = 3000 px, doffs = 120 px, baseline 0.2 m at W = 3000:
    # depth = 3000 * 0.2 / (d + 120); d = 480 px -> 1.0 m, and back.
    camera = Camera((1.0, 1.5, 0.47, 0.52), 0.2, doffs=120 / 3000)
    assert camera.disparity_to_depth(np.array([480.0, 0.0]), 3000) == pytest.approx([1.0, 0.0])
    assert camera.depth_to_disparity(np.array([1.0, 0.0]), 3000) == pytest.approx([480.0, 0.0])
    K = camera.K()
    assert (K[0, 2].item(), K[1, 2].item()) == pytest.approx((0.47, 0.52))
    # the same scene at half width: disparities and doffs halve, depth stays
    assert camera.disparity_to_depth(np.float64(240.0), 1500) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- ground truth

def test_kitti_ground_truth_optional_for_raw_required_for_depth(tmp_path):
    depth = np.array([[0.0, 1.5], [80.0, 300.0]], np.float32)
    kitti.save_depth_png(make_layout("kitti", str(tmp_path)).gt_path(FOLDER, 3, "l"), depth,
                         max_depth=255.0, beyond="invalid")
    raw = make_layout("kitti", str(tmp_path))
    gt = raw.read_gt(FOLDER, 3, "l")
    assert gt.kind == "depth" and gt.path.endswith("0000000003.png")
    np.testing.assert_array_equal(gt.values, [[0.0, 1.5], [80.0, 0.0]])  # > 255 m: none
    assert raw.read_gt(FOLDER, 4, "l") is None
    with pytest.raises(kitti.KittiDataError, match="0000000004.png"):
        KittiDepthLayout(str(tmp_path)).read_gt(FOLDER, 4, "l")


def test_sceneflow_ground_truth_disparity_becomes_depth(tmp_path):
    layout = make_layout("sceneflow", str(tmp_path))
    disparity = np.array([[8.0, 0.0], [np.inf, 16.0]], np.float32)
    write_pfm(layout.gt_path(FT3D, 2, "l"), disparity)
    gt = layout.read_gt(FT3D, 2, "l")
    assert gt.kind == "disparity"
    np.testing.assert_array_equal(gt.values, disparity)
    # fx = float32(1050/960) * 2 px wide, baseline 1: depth = fx * 1 / d, 0 where not valid
    fx = float(np.float32(1050 / 960)) * 2
    np.testing.assert_allclose(layout.gt_depth(FT3D, 2, "l"), [[fx / 8, 0], [0, fx / 16]], rtol=1e-6)
    with pytest.raises(DatasetError, match="0003.pfm"):
        layout.read_gt(FT3D, 3, "l")


# ----------------------------------------------------------------------------- files

def test_depth_png_round_trip_is_within_half_a_step(tmp_path):
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.01, 79.99, size=(7, 9)).astype(np.float32)
    path = tmp_path / "d.png"
    kitti.save_depth_png(path, depth)
    back = kitti.load_depth_png(path)
    assert np.abs(back - depth).max() <= 0.5 / 256 + 1e-6
    # the exact codes: round(d * 256), 0 = none, clipped (prediction) or dropped (ground truth)
    values = np.array([1.0 / 512 - 1e-4, 1.0 / 512 + 1e-4, 81.0, np.nan, -2.0, np.inf])
    np.testing.assert_array_equal(kitti.depth_to_png_array(values), [0, 1, 20480, 0, 0, 20480])
    np.testing.assert_array_equal(kitti.depth_to_png_array(values, 80.0, beyond="invalid"),
                                  [0, 1, 0, 0, 0, 0])


def test_synthetic_ground_truth_uses_the_kitti_quantisation():
    from depth_hints.synthetic.kitti_writer import _gt_png
    depth = np.array([[10.0 + 1 / 512 + 1e-3, 254.0, 256.5, 0.0]], np.float32)
    np.testing.assert_array_equal(_gt_png(depth), kitti.depth_to_png_array(depth, 255.0, "invalid"))
    np.testing.assert_array_equal(_gt_png(depth), [[2561, 65024, 0, 0]])


def test_atomic_write_leaves_the_old_file_on_error_and_no_temporary(tmp_path):
    path = tmp_path / "sub" / "out.json"
    with atomic_write(path, "w") as f:
        f.write("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert sorted(os.listdir(path.parent)) == ["out.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_atomic_write_uses_a_fresh_temporary_per_writer(tmp_path):
    path = tmp_path / "x.npy"
    with atomic_write(path) as first, atomic_write(path) as second:
        temporaries = sorted(os.listdir(tmp_path))
        assert len(temporaries) == 2  # two writers, two files, both in the target's folder
        assert all(t.startswith("x.npy.tmp") and not t.endswith(".npy") for t in temporaries)
        first.write(b"1")
        second.write(b"2")
    assert path.read_bytes() == b"1"  # the last rename wins; both were complete files
    assert os.listdir(tmp_path) == ["x.npy"]


def test_stale_hint_temporaries_are_found_by_their_atomic_name(tmp_path):
    path = hint_file_path(str(tmp_path), FOLDER, 4, "l")
    save_hint(path, np.ones((2, 3), np.float32))
    folder = os.path.dirname(path)
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path):
            (leftover,) = [n for n in os.listdir(folder) if n != "0000000004.npy"]
            old = os.path.join(folder, leftover + "x")
            os.link(os.path.join(folder, leftover), old)  # what a killed run leaves behind
            raise KeyboardInterrupt
    os.utime(old, (0, 0))
    assert remove_stale_temporaries([folder]) == 1
    assert sorted(os.listdir(folder)) == ["0000000004.npy"]
