"""Writes the synthetic world in the KITTI raw layout (paths from ``datasets.kitti_raw``):
stereo PNGs, velodyne sweeps, dense ground-truth depth PNGs (``depth_hints.kitti``'s one
quantisation), thin-structure masks, calibration and timestamps, Eigen-style split lists."""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Dict

import numpy as np

from datasets.kitti_raw import KittiRawLayout
from depth_hints.atomic import atomic_write
from depth_hints.errors import DepthHintsError
from depth_hints.kitti import camera_folder, depth_to_png_array

from .lidar import lidar_sweep
from .renderer import render_stereo_frame
from .scene import (CAMERA_X, DATE, WORLD_VERSION, MAX_GT_DEPTH, VELO_TO_CAM_R, VELO_TO_CAM_T, drive_name,
                    intrinsics, make_world, projection_matrix, velo_to_world)


# ----------------------------------------------------------------------------
# KITTI text files
# ----------------------------------------------------------------------------

def _fmt(values) -> str:
    return " ".join("%.9e" % (float(x) + 0.0) for x in np.asarray(values, np.float64).ravel())


def cam_to_cam_text(width: int, height: int) -> str:
    """``calib_cam_to_cam.txt`` of the rig at the given image size."""
    K = intrinsics(width, height)
    lines = ["calib_time: 01-Jan-2030 00:00:00", "corner_dist: %s" % _fmt([0.0995])]
    for cam in range(4):
        lines += [
            "S_%02d: %s" % (cam, _fmt([width, height])),
            "K_%02d: %s" % (cam, _fmt(K)),
            "D_%02d: %s" % (cam, _fmt(np.zeros(5))),
            "R_%02d: %s" % (cam, _fmt(np.eye(3))),
            "T_%02d: %s" % (cam, _fmt([-CAMERA_X[cam], 0.0, 0.0])),
            "S_rect_%02d: %s" % (cam, _fmt([width, height])),
            "R_rect_%02d: %s" % (cam, _fmt(np.eye(3))),
            "P_rect_%02d: %s" % (cam, _fmt(projection_matrix(cam, width, height))),
        ]
    return "\n".join(lines) + "\n"


def velo_to_cam_text() -> str:
    """``calib_velo_to_cam.txt`` (x_cam0 = R x_velo + T)."""
    return "\n".join([
        "calib_time: 01-Jan-2030 00:00:00",
        "R: %s" % _fmt(VELO_TO_CAM_R),
        "T: %s" % _fmt(VELO_TO_CAM_T),
        "delta_f: %s" % _fmt([0.0, 0.0]),
        "delta_c: %s" % _fmt([0.0, 0.0]),
    ]) + "\n"


def _timestamps_text(num_frames: int, offset_s: float = 0.0) -> str:
    lines = []
    for k in range(num_frames):
        ns = int(round((k * 0.1 + offset_s) * 1e9))
        sec, frac = divmod(ns, 10 ** 9)
        mins, sec = divmod(sec, 60)
        lines.append("2030-01-01 12:%02d:%02d.%09d" % (mins, sec, frac))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# Writer
# ----------------------------------------------------------------------------

def _atomic_write_bytes(path: str, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def _write_text_if_changed(path: str, text: str, overwrite: bool) -> bool:
    if not overwrite and os.path.isfile(path):
        with open(path, "r") as f:
            if f.read() == text:
                return False
    _atomic_write_bytes(path, text.encode())
    return True


def _png_bytes(img: np.ndarray) -> bytes:
    import cv2
    if img.ndim == 3:
        img = img[..., ::-1]                # RGB -> BGR for OpenCV
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:                              # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def thin_mask_path(out_dir: str, folder: str, frame: int, side: str) -> str:
    """The thin-structure label of a view: <out_dir>/<folder>/thin_mask/image_0{2,3}/<frame:010d>.png."""
    return os.path.join(out_dir, folder, "thin_mask", camera_folder(side), "%010d.png" % frame)


def _frame_paths(out_dir: str, drive: str, frame: int) -> Dict[str, str]:
    """Every file of one frame: the layout's (``KittiRawLayout``) and the thin-structure masks."""
    layout = KittiRawLayout(out_dir, img_ext=".png")
    folder = DATE + "/" + drive
    return {
        "image_02": layout.image_path(folder, frame, "l"),
        "image_03": layout.image_path(folder, frame, "r"),
        "velodyne": layout.velodyne_path(folder, frame),
        "gt_02": layout.gt_path(folder, frame, "l"),
        "gt_03": layout.gt_path(folder, frame, "r"),
        "thin_02": thin_mask_path(out_dir, folder, frame, "l"),
        "thin_03": thin_mask_path(out_dir, folder, frame, "r"),
    }


def _gt_png(depth: np.ndarray) -> np.ndarray:
    """Ground-truth depth -> KITTI's uint16 PNG values (``kitti.depth_to_png_array``): depths
    beyond MAX_GT_DEPTH (255 m, what 16 bits hold) have no ground truth (0)."""
    return depth_to_png_array(depth, MAX_GT_DEPTH, beyond="invalid")


def _split_lines(num_drives: int, frames_per_drive: int, seed: int):
    drives = [DATE + "/" + drive_name(d) for d in range(num_drives)]
    test_drive = drives[-1]
    train_drives = drives[:-1] if num_drives > 1 else drives
    inner = range(1, frames_per_drive - 1)
    pool = [(d, f, s) for d in train_drives for f in inner for s in "lr"]
    rng = np.random.default_rng([int(seed), 4242])
    order = rng.permutation(len(pool))
    n_val = max(1, len(pool) // 10) if len(pool) >= 2 else 0
    val = sorted(pool[i] for i in order[:n_val])
    train = sorted(pool[i] for i in order[n_val:])
    test = [(test_drive, f, "l") for f in inner]
    fmt = lambda rows: "".join("%s %d %s\n" % r for r in rows)
    return {"train": fmt(train), "val": fmt(val), "test": fmt(test)}, \
        {"train": len(train), "val": len(val), "test": len(test)}


class SyntheticWorldError(DepthHintsError, ValueError):
    """A bad argument to a world writer, or a folder holding a world of other parameters."""


def _check_world_arguments(count_name: str, count: int, frames_name: str, frames: int,
                           width: int, height: int, seed: int) -> None:
    """The checks the writers make; SyntheticWorldError naming the argument (the KITTI and
    SceneFlow writers name the flags of scripts/make_synthetic_kitti.py)."""
    if count < 1:
        raise SyntheticWorldError(f"{count_name} {count}: must be >= 1.")
    if frames < 3:
        raise SyntheticWorldError(f"{frames_name} {frames}: must be >= 3 "
                                  f"(mono training needs a previous and a next frame).")
    if width < 8 or height < 8:
        raise SyntheticWorldError(f"--width {width} --height {height}: the image is too small "
                                  f"(8 pixels at least).")
    if seed < 0:
        raise SyntheticWorldError(f"--seed {seed}: must be non-negative.")


def _refuse_other_parameters(out_dir: str, cfg_path: str, config: dict) -> None:
    """A folder whose recorded config (``cfg_path``) differs from ``config`` is not added to."""
    if not os.path.isfile(cfg_path):
        return
    with open(cfg_path) as f:
        old = json.load(f)
    if any(old.get(k) != v for k, v in config.items()):
        raise SyntheticWorldError("%s was generated with %s; pass overwrite=True (--overwrite) "
                                  "to regenerate it with %s" % (out_dir, old, config))


def write_synthetic_kitti(out_dir: str = "data/synthetic_kitti", num_drives: int = 4,
                          frames_per_drive: int = 50, width: int = 1242, height: int = 375,
                          seed: int = 0, split_name: str = "synthetic", overwrite: bool = False,
                          show_progress: bool = False) -> Dict[str, object]:
    """Write the synthetic dataset in the KITTI raw layout and return a summary.

    Files that already exist are kept (each file is written to a temporary
    name and renamed, so an existing file is always complete) unless
    ``overwrite``.  Returns a dict with the output paths, counts of written and
    skipped files, the split sizes and the mean render time per view.
    """
    _check_world_arguments("--num_drives", num_drives, "--frames_per_drive", frames_per_drive,
                           width, height, seed)
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    config = {"format": "depth-hints synthetic KITTI raw", "version": WORLD_VERSION, "seed": int(seed),
              "width": int(width), "height": int(height),
              "frames_per_drive": int(frames_per_drive)}
    cfg_path = os.path.join(out_dir, "synthetic_kitti.json")
    if not overwrite:
        _refuse_other_parameters(out_dir, cfg_path, config)
    written = 0
    skipped = 0
    written += _write_text_if_changed(cfg_path, json.dumps(config, indent=1, sort_keys=True) + "\n",
                                      overwrite)
    date_dir = os.path.join(out_dir, DATE)
    written += _write_text_if_changed(os.path.join(date_dir, "calib_cam_to_cam.txt"),
                                      cam_to_cam_text(width, height), overwrite)
    written += _write_text_if_changed(os.path.join(date_dir, "calib_velo_to_cam.txt"),
                                      velo_to_cam_text(), overwrite)

    bar = None
    total = num_drives * frames_per_drive
    if show_progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=total, unit="frame", desc="synthetic KITTI", dynamic_ncols=True)
        except ImportError:         # pragma: no cover
            bar = None
    render_s = 0.0
    views = 0
    lidar_s = 0.0
    sweeps = 0
    done = 0
    for d in range(num_drives):
        drive = drive_name(d)
        drive_dir = os.path.join(date_dir, drive)
        ts = _timestamps_text(frames_per_drive)
        for sub in ("image_02", "image_03", "velodyne_points"):
            written += _write_text_if_changed(os.path.join(drive_dir, sub, "timestamps.txt"), ts,
                                              overwrite)
        world = None
        for frame in range(frames_per_drive):
            paths = _frame_paths(out_dir, drive, frame)
            todo = {k for k, p in paths.items() if overwrite or not os.path.isfile(p)}
            skipped += len(paths) - len(todo)
            if todo:
                if world is None:
                    world = make_world(seed, d, frames_per_drive)
                for cam in (2, 3):
                    keys = {"image_%02d" % cam, "gt_%02d" % cam, "thin_%02d" % cam}
                    if not keys & todo:
                        continue
                    t0 = time.perf_counter()
                    rgb, depth, thin = render_stereo_frame(world, frame, width, height, (cam,))[cam]
                    render_s += time.perf_counter() - t0
                    views += 1
                    blobs = {"image_%02d" % cam: lambda: _png_bytes(rgb),
                             "gt_%02d" % cam: lambda: _png_bytes(_gt_png(depth)),
                             "thin_%02d" % cam: lambda: _png_bytes(thin.astype(np.uint8))}
                    for key in sorted(keys & todo):
                        _atomic_write_bytes(paths[key], blobs[key]())
                        written += 1
                if "velodyne" in todo:
                    t0 = time.perf_counter()
                    rng = np.random.default_rng([int(seed), d, frame, 64])
                    pts = lidar_sweep(world, velo_to_world(world, frame), range_noise_std=0.01,
                                      rng=rng)
                    lidar_s += time.perf_counter() - t0
                    sweeps += 1
                    _atomic_write_bytes(paths["velodyne"], pts.astype("<f4").tobytes())
                    written += 1
            done += 1
            if bar is not None:
                bar.update(1)
            elif show_progress and (done % 10 == 0 or done == total):
                print("synthetic KITTI: %d/%d frames" % (done, total), file=sys.stderr)
    if bar is not None:
        bar.close()

    split_dir = os.path.join(out_dir, "splits", split_name)
    texts, counts = _split_lines(num_drives, frames_per_drive, seed)
    for name, text in texts.items():
        written += _write_text_if_changed(os.path.join(split_dir, "%s_files.txt" % name), text,
                                          overwrite)
    readme = (
        "Synthetic KITTI-raw stereo driving data written by scripts/make_synthetic_kitti.py\n"
        "(depth_hints.synthetic).  Procedurally generated; contains no KITTI data.\n\n"
        "seed: %d\nimage size: %d x %d (W x H)\ndrives: %d x %d frames\n"
        "date folder: %s\n\n"
        "Lines are '<date>/<drive> <frame_index> <l|r>' (Eigen format).  train/val use the\n"
        "left and right views of drives 1..%d without their first and last frame (a random\n"
        "tenth of them is val); test holds the left views of the last drive\n"
        "(%s), again without its first and last frame.\n"
        "Counts: train %d, val %d, test %d.\n\n"
        "Per drive: image_02/ and image_03/ (rectified RGB PNG, baseline 0.54 m),\n"
        "velodyne_points/ (float32 x y z reflectance), proj_depth/groundtruth/image_0{2,3}/\n"
        "(uint16 PNG, depth in metres * 256, 0 = sky or beyond %g m) and\n"
        "thin_mask/image_0{2,3}/ (uint8 PNG, 1 where the visible surface is a thin structure).\n"
        "Pixel convention as KITTI: 0-based pixel (col, row) sees image point (col + 1, row + 1)\n"
        "of P_rect, i.e. velodyne points project to pixel round(u) - 1, round(v) - 1.\n"
        % (seed, width, height, num_drives, frames_per_drive, DATE, max(1, num_drives - 1),
           drive_name(num_drives - 1), counts["train"], counts["val"], counts["test"],
           MAX_GT_DEPTH))
    written += _write_text_if_changed(os.path.join(split_dir, "README"), readme, overwrite)

    return {
        "out_dir": out_dir,
        "date_dir": date_dir,
        "drives": [DATE + "/" + drive_name(d) for d in range(num_drives)],
        "split_dir": split_dir,
        "split_counts": counts,
        "num_frames": total,
        "files_written": int(written),
        "files_skipped": int(skipped),
        "views_rendered": views,
        "seconds_per_view": (render_s / views) if views else None,
        "seconds_per_sweep": (lidar_s / sweeps) if sweeps else None,
    }
