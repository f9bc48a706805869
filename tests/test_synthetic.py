"""Tests of the procedural KITTI-layout world (depth_hints/synthetic/)."""
from __future__ import annotations

import glob
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from depth_hints import synthetic as S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W, H, DRIVES, FRAMES, SEED = 256, 80, 2, 3, 3
FRAME_KEYS = ("image_02", "image_03", "velodyne", "gt_02", "gt_03", "thin_02", "thin_03")


def _read_calib(path):
    """KEY: v1 v2 ... lines; keys with non-numeric values are skipped."""
    out = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            try:
                out[key.strip()] = np.array([float(x) for x in value.split()])
            except ValueError:
                pass
    return out


def _png(path):
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img[..., ::-1] if img.ndim == 3 else img


def _paths(root, drive_index, frame):
    return S._frame_paths(str(root), S.drive_name(drive_index), frame)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "kitti"
    summary = S.write_synthetic_kitti(str(root), num_drives=DRIVES, frames_per_drive=FRAMES,
                                      width=W, height=H, seed=SEED)
    return root, summary


def test_layout_dtypes_and_calibration(tiny):
    root, summary = tiny
    date = root / S.DATE
    assert summary["num_frames"] == DRIVES * FRAMES
    assert summary["files_written"] > 0 and summary["seconds_per_view"] > 0
    for d in range(DRIVES):
        for sub in ("image_02", "image_03", "velodyne_points"):
            with open(date / S.drive_name(d) / sub / "timestamps.txt") as f:
                assert len(f.read().splitlines()) == FRAMES
        for frame in range(FRAMES):
            p = _paths(root, d, frame)
            for key in FRAME_KEYS:
                assert os.path.isfile(p[key]), p[key]
            for cam in ("02", "03"):
                rgb = _png(p["image_" + cam])
                assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3)
                gt = _png(p["gt_" + cam])
                assert gt.dtype == np.uint16 and gt.shape == (H, W)
                assert 0.2 < (gt > 0).mean() <= 1.0
                thin = _png(p["thin_" + cam])
                assert thin.dtype == np.uint8 and thin.shape == (H, W)
                assert set(np.unique(thin).tolist()) <= {0, 1}
            raw = np.fromfile(p["velodyne"], dtype=np.float32)
            assert raw.size % 4 == 0
            pts = raw.reshape(-1, 4)
            assert pts.shape[0] > 50000
            rng_ = np.linalg.norm(pts[:, :3], axis=1)
            assert rng_.max() <= S.LIDAR_MAX_RANGE + 0.1 and rng_.min() > 1.0
            assert (pts[:, 3] >= 0).all() and (pts[:, 3] <= 1).all()
            assert (pts[:, 2] < 0).mean() > 0.3          # most beams point below the horizon
    # no temporary files left behind
    assert not [p for p in glob.glob(str(root / "**" / ".*"), recursive=True)]

    cam = _read_calib(date / "calib_cam_to_cam.txt")
    for i in range(4):
        for key in ("S", "K", "D", "R", "T", "S_rect", "R_rect", "P_rect"):
            assert "%s_%02d" % (key, i) in cam
    P2 = cam["P_rect_02"].reshape(3, 4)
    P3 = cam["P_rect_03"].reshape(3, 4)
    fx = P2[0, 0]
    np.testing.assert_allclose([fx, P2[1, 1], P2[0, 2], P2[1, 2]],
                               [0.58 * W, 1.92 * H, 0.5 * W, 0.5 * H], rtol=1e-7)
    np.testing.assert_allclose((P2[0, 3] - P3[0, 3]) / fx, 0.54, atol=1e-7)
    np.testing.assert_allclose(P2[0, 3] / fx, 0.06, atol=1e-7)
    np.testing.assert_allclose(cam["R_rect_00"].reshape(3, 3), np.eye(3))
    np.testing.assert_allclose(cam["S_rect_02"], [W, H])
    velo = _read_calib(date / "calib_velo_to_cam.txt")
    R = velo["R"].reshape(3, 3)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
    assert velo["T"].shape == (3,) and velo["delta_f"].shape == (2,)
    np.testing.assert_allclose(R @ [1, 0, 0], [0, 0, 1])          # velo forward = camera z


def test_splits_reference_frames_with_neighbours(tiny):
    root, summary = tiny
    split = root / "splits" / "synthetic"
    assert (split / "README").is_file()
    lines = {}
    for name in ("train", "val", "test"):
        with open(split / ("%s_files.txt" % name)) as f:
            lines[name] = f.read().splitlines()
        assert len(lines[name]) == summary["split_counts"][name] > 0
    assert not set(lines["train"]) & set(lines["val"])
    test_drive = "%s/%s" % (S.DATE, S.drive_name(DRIVES - 1))
    for name, rows in lines.items():
        for row in rows:
            folder, frame, side = row.split()
            frame = int(frame)
            assert side in "lr"
            if name == "test":
                assert folder == test_drive and side == "l"
            else:
                assert folder != test_drive
            cam = "image_02" if side == "l" else "image_03"
            for f in (frame - 1, frame, frame + 1):
                assert os.path.isfile(root / folder / cam / "data" / ("%010d.png" % f)), row


def _lidar_vs_dense_errors(root, offset):
    """|depth of each velodyne point - dense GT interpolated where it projects|, for
    pixel index = projected coordinate - offset, away from depth edges and sky."""
    date = root / S.DATE
    cam = _read_calib(date / "calib_cam_to_cam.txt")
    velo = _read_calib(date / "calib_velo_to_cam.txt")
    v2c = np.eye(4)
    v2c[:3, :3] = velo["R"].reshape(3, 3)
    v2c[:3, 3] = velo["T"]
    rect = np.eye(4)
    rect[:3, :3] = cam["R_rect_00"].reshape(3, 3)
    P = cam["P_rect_02"].reshape(3, 4) @ rect @ v2c
    errors = []
    for d in range(DRIVES):
        for frame in range(FRAMES):
            p = _paths(root, d, frame)
            pts = np.fromfile(p["velodyne"], dtype=np.float32).reshape(-1, 4).astype(np.float64)
            proj = np.c_[pts[:, :3], np.ones(len(pts))] @ P.T
            z = proj[:, 2]
            ok = z > 1.0
            u = proj[ok, 0] / z[ok] - offset
            v = proj[ok, 1] / z[ok] - offset
            z = z[ok]
            inside = (u >= 0) & (u < W - 1) & (v >= 0) & (v < H - 1)
            u, v, z = u[inside], v[inside], z[inside]
            gt = _png(p["gt_02"]).astype(np.float64) / 256.0
            u0 = np.floor(u).astype(int)
            v0 = np.floor(v).astype(int)
            nb = np.stack([gt[v0, u0], gt[v0, u0 + 1], gt[v0 + 1, u0], gt[v0 + 1, u0 + 1]], 1)
            # away from depth edges and sky: all four neighbours valid and alike
            smooth = (nb.min(1) > 0) & (nb.max(1) < 1.15 * nb.min(1))
            inv = 1.0 / np.where(nb > 0, nb, 1.0)        # inverse depth is affine on planes
            fu = (u - u0)[:, None]
            fv = (v - v0)[:, None]
            wts = np.concatenate([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv], 1)
            interp = 1.0 / (inv * wts).sum(1)
            errors.append(np.abs(interp - z)[smooth])
    return np.concatenate(errors)


def test_lidar_calibration_and_dense_depth_agree(tiny):
    root, _ = tiny
    # KITTI convention (devkit, monodepth2, depth_hints.kitti): pixel = round(u) - 1
    err = _lidar_vs_dense_errors(root, S.KITTI_PIXEL_OFFSET)
    assert err.size > 2000
    assert np.median(err) < 0.05
    assert (err < 0.1).mean() >= 0.9
    # a one-pixel misregistration is detected
    shifted = _lidar_vs_dense_errors(root, S.KITTI_PIXEL_OFFSET - 1.0)
    assert np.median(shifted) > 3 * np.median(err)


def _warp_error(left, right, depth_l, depth_r, fx, baseline):
    h, w = depth_l.shape
    disp = np.where(depth_l > 0, fx * baseline / np.maximum(depth_l, 1e-6), 0.0)
    xs = np.arange(w)[None, :] - disp
    x0 = np.floor(xs).astype(int)
    a = (xs - x0)[..., None]
    valid = (x0 >= 0) & (x0 + 1 < w)
    x0c = np.clip(x0, 0, w - 2)
    rows = np.arange(h)[:, None]
    warped = right[rows, x0c] * (1 - a) + right[rows, x0c + 1] * a
    # not occluded: the right view sees the same depth where the point lands
    dr = depth_r[rows, np.clip(np.rint(xs).astype(int), 0, w - 1)]
    same = np.where(depth_l > 0, np.abs(dr - depth_l) < 0.05 * depth_l + 0.05, dr == 0)
    valid &= same
    err = np.abs(warped - left).mean(-1)
    return err, valid


def test_stereo_pair_is_consistent_with_the_true_disparity(tiny):
    root, _ = tiny
    cam = _read_calib(root / S.DATE / "calib_cam_to_cam.txt")
    P2 = cam["P_rect_02"].reshape(3, 4)
    P3 = cam["P_rect_03"].reshape(3, 4)
    fx = P2[0, 0]
    baseline = (P2[0, 3] - P3[0, 3]) / fx
    assert abs(baseline - 0.54) < 1e-6
    for d in range(DRIVES):
        for frame in range(FRAMES):
            p = _paths(root, d, frame)
            left = _png(p["image_02"]).astype(np.float64)
            right = _png(p["image_03"]).astype(np.float64)
            dl = _png(p["gt_02"]) / 256.0
            dr = _png(p["gt_03"]) / 256.0
            err, valid = _warp_error(left, right, dl, dr, fx, baseline)
            assert valid.mean() >= 0.8
            e = err[valid]
            assert e.mean() < 6.0 and np.percentile(e, 90) < 12.0
            # the check has power: a wrong baseline is clearly worse
            bad, bad_valid = _warp_error(left, right, dl, dr, fx, 0.7 * baseline)
            assert bad[valid].mean() > 1.5 * e.mean()


def test_thin_mask_marks_thin_structures(tiny):
    root, _ = tiny
    nonempty = 0
    for d in range(DRIVES):
        for frame in range(FRAMES):
            p = _paths(root, d, frame)
            for cam in ("02", "03"):
                thin = _png(p["thin_" + cam]).astype(bool)
                gt = _png(p["gt_" + cam])
                nonempty += thin.sum() > 0
                assert thin.mean() < 0.3
                assert (gt[thin] > 0).all()
    assert nonempty >= 0.8 * DRIVES * FRAMES * 2
    # poles and railings are thin in the image: columns of thin pixels are narrow
    world = S.make_world(SEED, 0, FRAMES)
    rgb, depth, thin = S.render_view(world, S.camera_to_world(world, 1, 2),
                                     S.intrinsics(640, 192), 192, 640)
    assert thin.any()
    assert thin.mean() < 0.2 and (depth[thin] > 0).all()
    assert depth.dtype == np.float32 and rgb.dtype == np.uint8 and rgb.shape == (192, 640, 3)
    assert (depth == 0).any() and (depth > 0).mean() > 0.5


def test_determinism(tiny, tmp_path):
    root, _ = tiny
    # same seed, size and length: drive 1 is byte-identical to the fixture's
    S.write_synthetic_kitti(str(tmp_path / "same"), num_drives=1, frames_per_drive=FRAMES,
                            width=W, height=H, seed=SEED)
    for frame in range(FRAMES):
        a = _paths(root, 0, frame)
        b = _paths(tmp_path / "same", 0, frame)
        for key in FRAME_KEYS:
            with open(a[key], "rb") as fa, open(b[key], "rb") as fb:
                assert fa.read() == fb.read(), key
    for name in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt"):
        with open(root / S.DATE / name) as fa, open(tmp_path / "same" / S.DATE / name) as fb:
            assert fa.read() == fb.read()
    # a different seed gives a different world
    w1 = S.make_world(SEED, 0, FRAMES)
    w2 = S.make_world(SEED + 1, 0, FRAMES)
    K = S.intrinsics(W, H)
    a = S.render_view(w1, S.camera_to_world(w1, 1, 2), K, H, W)[0]
    b = S.render_view(w2, S.camera_to_world(w2, 1, 2), K, H, W)[0]
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5
    # drives differ from each other too
    img0 = _png(_paths(root, 0, 1)["image_02"]).astype(int)
    img1 = _png(_paths(root, 1, 1)["image_02"]).astype(int)
    assert np.abs(img0 - img1).mean() > 5


def test_rerun_skips_existing_files_and_overwrite_rewrites(tmp_path):
    out = tmp_path / "k"
    kw = dict(num_drives=1, frames_per_drive=3, width=64, height=24, seed=1)
    S.write_synthetic_kitti(str(out), **kw)
    files = sorted(p for p in glob.glob(str(out / "**" / "*"), recursive=True)
                   if os.path.isfile(p))
    assert len(files) >= 3 * len(FRAME_KEYS)
    old_ns = 1_000_000_000 * 10 ** 9
    for p in files:
        os.utime(p, ns=(old_ns, old_ns))
    # re-run through the command line: nothing is rewritten
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "make_synthetic_kitti.py"),
           "--out_dir", str(out), "--num_drives", "1", "--frames_per_drive", "3",
           "--width", "64", "--height", "24", "--seed", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert '"files_written": 0' in res.stdout
    assert all(os.stat(p).st_mtime_ns == old_ns for p in files)
    # a missing file is regenerated identically, the rest stay untouched
    victim = _paths(out, 0, 1)["image_03"]
    with open(victim, "rb") as f:
        before = f.read()
    os.remove(victim)
    summary = S.write_synthetic_kitti(str(out), **kw)
    assert summary["files_written"] == 1
    with open(victim, "rb") as f:
        assert f.read() == before
    assert all(os.stat(p).st_mtime_ns == old_ns for p in files if p != victim)
    # other parameters on the same folder are refused unless overwriting
    with pytest.raises(ValueError):
        S.write_synthetic_kitti(str(out), **dict(kw, width=96))
    S.write_synthetic_kitti(str(out), overwrite=True, **kw)
    assert all(os.stat(p).st_mtime_ns != old_ns for p in files)


def test_car_paint_is_mottled_and_a_bare_body_is_its_tint():
    """Car bodies carry a grey texture (generator version 2): across a body's side face the
    albedo varies by about PAINT_CONTRAST x the tint + PAINT_REFLECTION (the texture's spread is
    1); with no texture (tex -1) the same face is its flat tint, as in version 1."""
    from depth_hints.synthetic import renderer, scene
    world = S.make_world(0, 0, 5)
    bodies = np.flatnonzero(world.mat == scene._PAINT)
    assert bodies.size > 0
    assert (world.tex[bodies] >= 0).all() and np.allclose(world.contrast[bodies], scene.PAINT_CONTRAST)
    k = int(bodies[0])
    lo, hi = world.aabb[k][:3], world.aabb[k][3:]
    zs, ys = np.meshgrid(np.linspace(lo[2] + 0.5, hi[2] - 0.5, 40), np.linspace(lo[1] + 0.05, lo[1] + 0.3, 8))
    P = np.stack([np.full(zs.size, hi[0]), ys.ravel(), zs.ravel()], 1).astype(np.float32)  # side face, above the sills
    nrm = np.tile(np.float32([1, 0, 0]), (len(P), 1))
    fp = np.full(len(P), 1e-3, np.float32)
    ids = np.full(len(P), k)
    albedo = renderer._albedo(world, ids, P, nrm, fp)
    tint = world.tint[k]
    assert (albedo.std(0) > 0.02 * tint).all()  # mottled
    # the texture has unit spread: grime scales the tint by PAINT_CONTRAST, reflections add PAINT_REFLECTION
    assert (albedo.std(0) < 1.5 * (scene.PAINT_CONTRAST * tint + scene.PAINT_REFLECTION)).all()
    world.tex[k] = -1
    bare = renderer._albedo(world, ids, P, nrm, fp)
    np.testing.assert_allclose(bare, np.broadcast_to(np.clip(world.tint[k], 0, 1), bare.shape), rtol=1e-6)
