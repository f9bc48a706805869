"""Tests for depth_hints.kitti: calibration parsing, velodyne projection (the Eigen protocol),
depth PNGs and the ground-truth export."""
from __future__ import annotations

import importlib.util
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets.kitti_raw import KittiRawLayout, export_gt_depths
from depth_hints import kitti

REPO = Path(__file__).resolve().parent.parent
DATE = "2011_09_26"
DRIVE = f"{DATE}/{DATE}_drive_0001_sync"

# A hand-checkable rig in KITTI's file format: velodyne (x forward, y left, z up) -> camera
# (x right, y down, z forward) by a pure axis permutation, identity rectification,
# P_rect_02 = [[f, 0, cx, tx], [0, f, cy, 0], [0, 0, 1, 0]], a 64 x 48 image.
F, CX, CY, TX = 100.0, 32.0, 24.0, 50.0
WIDTH, HEIGHT = 64, 48
VELO_R = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=float)


def _fmt(values) -> str:
    return " ".join(f"{v:.6e}" for v in np.asarray(values, dtype=float).ravel())


def write_calibration(calib_dir: Path, velo_T=(0.0, 0.0, 0.0), P2=None, R_rect=np.eye(3),
                      image_size=(WIDTH, HEIGHT)) -> Path:
    """calib_cam_to_cam.txt and calib_velo_to_cam.txt with every key real KITTI files hold."""
    calib_dir.mkdir(parents=True, exist_ok=True)
    if P2 is None:
        P2 = np.array([[F, 0, CX, TX], [0, F, CY, 0], [0, 0, 1, 0]])
    lines = ["calib_time: 09-Jan-2012 13:57:47", "corner_dist: 9.950000e-02"]
    for cam in range(4):
        P = P2 if cam == 2 else np.array([[F, 0, CX, 0], [0, F, CY, 0], [0, 0, 1, 0]])
        lines += [f"S_0{cam}: 1.392000e+03 5.120000e+02",
                  f"K_0{cam}: {_fmt(np.eye(3))}",
                  f"D_0{cam}: {_fmt(np.zeros(5))}",
                  f"R_0{cam}: {_fmt(np.eye(3))}",
                  f"T_0{cam}: {_fmt(np.zeros(3))}",
                  f"S_rect_0{cam}: {_fmt(image_size)}",
                  f"R_rect_0{cam}: {_fmt(R_rect if cam == 0 else np.eye(3))}",
                  f"P_rect_0{cam}: {_fmt(P)}"]
    (calib_dir / "calib_cam_to_cam.txt").write_text("\n".join(lines) + "\n")
    (calib_dir / "calib_velo_to_cam.txt").write_text(
        "calib_time: 15-Mar-2012 11:37:16\n"
        f"R: {_fmt(VELO_R)}\nT: {_fmt(velo_T)}\n"
        "delta_f: 0.000000e+00 0.000000e+00\ndelta_c: 0.000000e+00 0.000000e+00\n")
    return calib_dir


def write_velodyne(path: Path, xyz) -> Path:
    """A sweep of float32 (x, y, z, reflectance) with reflectance 0.7."""
    path.parent.mkdir(parents=True, exist_ok=True)
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    points = np.concatenate([xyz, np.full((len(xyz), 1), 0.7, np.float32)], 1)
    points.tofile(path)
    return path


# ----------------------------------------------------------------------------- calibration

def test_read_calib_file_parses_numbers_and_skips_text(tmp_path):
    write_calibration(tmp_path)
    calib = kitti.read_calib_file(tmp_path / "calib_cam_to_cam.txt")
    assert "calib_time" not in calib
    assert calib["corner_dist"] == pytest.approx([0.0995])
    np.testing.assert_allclose(calib["S_rect_02"], [WIDTH, HEIGHT])
    np.testing.assert_allclose(calib["P_rect_02"].reshape(3, 4)[0], [F, 0, CX, TX])
    velo = kitti.read_calib_file(tmp_path / "calib_velo_to_cam.txt")
    np.testing.assert_allclose(velo["R"].reshape(3, 3), VELO_R)
    assert velo["delta_f"].shape == (2,)


def test_missing_calibration_is_named(tmp_path):
    with pytest.raises(kitti.KittiDataError, match="calib_cam_to_cam.txt"):
        kitti.generate_depth_map(tmp_path, tmp_path / "x.bin")


def test_load_velodyne_points_is_homogeneous(tmp_path):
    path = write_velodyne(tmp_path / "v.bin", [[1, 2, 3], [4, 5, 6]])
    points = kitti.load_velodyne_points(path)
    assert points.dtype == np.float32 and points.shape == (2, 4)
    np.testing.assert_array_equal(points[:, 3], 1.0)
    np.testing.assert_array_equal(points[:, :3], [[1, 2, 3], [4, 5, 6]])


# ----------------------------------------------------------------------------- projection

def test_points_land_where_the_calibration_says(tmp_path):
    # Expected pixels by hand: camera point (xc, yc, zc) = (-y, -z, x);
    # u = (f xc + cx zc + tx) / zc, v = (f yc + cy zc) / zc; pixel = round(u) - 1, round(v) - 1.
    write_calibration(tmp_path)
    velo = write_velodyne(tmp_path / "v.bin", [
        [10, 0, 0],      # u = 37, v = 24       -> (row 23, col 36), depth 10
        [25, -3, 2],     # u = 46, v = 16       -> (15, 45), depth 25
        [12, -0.1, 0],   # u = 37.0, v = 24     -> (23, 36) again, farther: loses to 10
        [-10, 1, 0],     # behind (x < 0); would also hit (23, 36) with depth -10: dropped
        [10, 3.6, 0],    # u = 1.0              -> column 0 (the -1 convention)
        [10, 3.66, 0],   # u = 0.4 -> round 0   -> column -1: dropped
        [10, -2.7, 0],   # u = 64               -> column 63, the last one
        [10, -2.8, 0],   # u = 65               -> column 64: dropped
    ])
    depth = kitti.generate_depth_map(tmp_path, velo)
    assert depth.shape == (HEIGHT, WIDTH)
    expected = {(23, 36): 10.0, (15, 45): 25.0, (23, 0): 10.0, (23, 63): 10.0}
    for (row, col), value in expected.items():
        assert depth[row, col] == pytest.approx(value, rel=1e-6), (row, col)
    assert np.count_nonzero(depth) == len(expected)


def test_duplicates_keep_the_nearest_in_any_order(tmp_path):
    write_calibration(tmp_path)
    near_last = write_velodyne(tmp_path / "a.bin", [[12, -0.1, 0], [10, 0, 0]])
    near_first = write_velodyne(tmp_path / "b.bin", [[10, 0, 0], [12, -0.1, 0]])
    for velo in (near_last, near_first):
        assert kitti.generate_depth_map(tmp_path, velo)[23, 36] == pytest.approx(10.0)


def test_vel_depth_uses_the_velodyne_x(tmp_path):
    # The camera sits 1 m behind the velodyne: camera z = velodyne x + 1.
    write_calibration(tmp_path, velo_T=(0.0, 0.0, 1.0))
    velo = write_velodyne(tmp_path / "v.bin", [[9, 0, 0]])  # camera (0, 0, 10): u = 37, v = 24
    assert kitti.generate_depth_map(tmp_path, velo)[23, 36] == pytest.approx(10.0)
    assert kitti.generate_depth_map(tmp_path, velo, vel_depth=True)[23, 36] == pytest.approx(9.0)


def _reference_projection(points, P, height, width, vel_depth):
    """A per-point loop written straight from the protocol's description."""
    best = defaultdict(lambda: np.inf)
    for point in points:
        if point[0] < 0:
            continue
        image = P[:3] @ point
        u, v = image[0] / image[2], image[1] / image[2]
        col, row = int(np.round(u)) - 1, int(np.round(v)) - 1
        if 0 <= col < width and 0 <= row < height:
            d = point[0] if vel_depth else image[2]
            best[(row, col)] = min(best[(row, col)], d)
    depth = np.zeros((height, width))
    for (row, col), d in best.items():
        depth[row, col] = max(d, 0.0)
    return depth


@pytest.mark.parametrize("vel_depth", [False, True])
def test_matches_a_per_point_reference_on_a_kitti_like_rig(tmp_path, vel_depth):
    # KITTI 2011_09_26 style numbers: real rotation/translation, 1242 x 375 image.
    velo_R = np.array([7.533745e-03, -9.999714e-01, -6.166020e-04, 1.480249e-02, 7.280733e-04,
                       -9.998902e-01, 9.998621e-01, 7.523790e-03, 1.480755e-02]).reshape(3, 3)
    R_rect = np.array([9.999239e-01, 9.837760e-03, -7.445048e-03, -9.869795e-03, 9.999421e-01,
                       -4.278459e-03, 7.402527e-03, 4.351614e-03, 9.999631e-01]).reshape(3, 3)
    P2 = np.array([7.215377e+02, 0, 6.095593e+02, 4.485728e+01, 0, 7.215377e+02, 1.728540e+02,
                   2.163791e-01, 0, 0, 1, 2.745884e-03]).reshape(3, 4)
    write_calibration(tmp_path, velo_T=(-4.069766e-03, -7.631618e-02, -2.717806e-01), P2=P2,
                      R_rect=R_rect, image_size=(1242, 375))
    (tmp_path / "calib_velo_to_cam.txt").write_text(
        f"calib_time: x\nR: {_fmt(velo_R)}\nT: -4.069766e-03 -7.631618e-02 -2.717806e-01\n")
    rng = np.random.default_rng(0)
    xyz = np.stack([rng.uniform(-5, 60, 3000), rng.uniform(-20, 20, 3000), rng.uniform(-2, 1, 3000)], 1)
    xyz[:200] = xyz[200:400] * [[1.0005, 1.0, 1.0]]  # near-duplicates hitting the same pixels
    velo = write_velodyne(tmp_path / "v.bin", xyz)
    depth = kitti.generate_depth_map(tmp_path, velo, cam=2, vel_depth=vel_depth)

    P, shape = kitti.velodyne_to_image_matrix(tmp_path, 2)
    assert shape == (375, 1242)
    expected = _reference_projection(kitti.load_velodyne_points(velo).astype(np.float64), P,
                                     375, 1242, vel_depth)
    np.testing.assert_allclose(depth, expected, rtol=1e-6, atol=1e-6)
    assert np.count_nonzero(depth) > 500


# ----------------------------------------------------------------------------- depth PNGs

def test_depth_png_round_trip(tmp_path):
    depth = np.array([[0.0, 1.5, 10.0], [79.99, 100.0, 0.25]], dtype=np.float32)
    kitti.save_depth_png(tmp_path / "d.png", depth)
    raw = np.array(Image.open(tmp_path / "d.png"))
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, (np.clip(depth, 0, 80) * 256).astype(np.uint16))
    back = kitti.load_depth_png(tmp_path / "d.png")
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, np.clip(depth, 0, 80), atol=1 / 256)
    assert back[0, 0] == 0.0


def test_load_depth_png_names_missing_file(tmp_path):
    with pytest.raises(kitti.KittiDataError, match="nope.png"):
        kitti.load_depth_png(tmp_path / "nope.png")


# ----------------------------------------------------------------------------- export

def _export_script():
    spec = importlib.util.spec_from_file_location("export_gt_depth", REPO / "scripts" / "export_gt_depth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_raw_tree(root: Path, frames=(3, 7)):
    write_calibration(root / DATE)
    for i, frame in enumerate(frames):
        write_velodyne(root / DRIVE / "velodyne_points" / "data" / f"{frame:010d}.bin",
                       [[10 + i, 0, 0], [25, -3, 2]])
        gt = np.zeros((20 + i, 30), np.float32)
        gt[5, 5 + i] = 12.5 + i
        png = root / DRIVE / "proj_depth" / "groundtruth" / "image_02" / f"{frame:010d}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        kitti.save_depth_png(png, gt)


def _split(folder: Path, frames=(3, 7)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_files.txt").write_text("".join(f"{DRIVE} {f:010d} l\n" for f in frames))
    return folder


def test_export_velodyne_end_to_end(tmp_path, capsys):
    data = tmp_path / "raw"
    _tiny_raw_tree(data)
    split = _split(tmp_path / "eigen")  # named eigen: velodyne ground truth implied
    assert _export_script().main(["--data_path", str(data), "--split", str(split)]) == 0
    with np.load(split / "gt_depths.npz", allow_pickle=True) as npz:
        gt = npz["data"]
    assert gt.dtype == object and len(gt) == 2
    for i, frame in enumerate((3, 7)):
        assert gt[i].dtype == np.float32 and gt[i].shape == (HEIGHT, WIDTH)
        expected = kitti.generate_depth_map(data / DATE, data / DRIVE / "velodyne_points" / "data"
                                            / f"{frame:010d}.bin", 2, vel_depth=True)
        np.testing.assert_allclose(gt[i], expected)
        assert gt[i][23, 36] == pytest.approx(10 + i)
    assert "gt_depths.npz" in capsys.readouterr().out


def test_export_dense_mode_and_output_override(tmp_path):
    data = tmp_path / "raw"
    _tiny_raw_tree(data)
    split = _split(tmp_path / "my_split")
    out = tmp_path / "elsewhere" / "gt.npz"
    assert _export_script().main(["--data_path", str(data), "--split", str(split), "--mode", "dense",
                                  "--output", str(out)]) == 0
    assert not (split / "gt_depths.npz").exists()
    with np.load(out, allow_pickle=True) as npz:
        gt = npz["data"]
    assert [g.shape for g in gt] == [(20, 30), (21, 30)]  # sizes may differ: object array
    assert gt[1][5, 6] == pytest.approx(13.5)


def test_export_needs_a_mode_for_unknown_folders(tmp_path):
    split = _split(tmp_path / "my_split")
    with pytest.raises(kitti.KittiDataError, match="--mode"):
        export_gt_depths(str(tmp_path), str(split))


def test_export_names_the_missing_file(tmp_path, capsys):
    data = tmp_path / "raw"
    _tiny_raw_tree(data, frames=(3,))
    split = _split(tmp_path / "eigen", frames=(3, 4))
    assert _export_script().main(["--data_path", str(data), "--split", str(split)]) == 2
    assert "0000000004.bin" in capsys.readouterr().err
    assert not (split / "gt_depths.npz").exists()


@pytest.mark.skipif(not Path("/work/shared/kitti_splits/eigen/test_files.txt").is_file(),
                    reason="KITTI split lists not present")
def test_real_eigen_list_paths():
    from depth_hints.splits import read_split_file

    samples = read_split_file("/work/shared/kitti_splits/eigen/test_files.txt")
    assert len(samples) == 697
    first = samples[0]
    layout = KittiRawLayout("K")
    assert layout.velodyne_path(first.folder, first.frame_index) == os.path.join(
        "K", "2011_09_26/2011_09_26_drive_0002_sync", "velodyne_points", "data", "0000000069.bin")
    assert layout.calib_dir(first.folder) == os.path.join("K", "2011_09_26")
