"""KITTI file formats: calibration files, velodyne sweeps, projected and annotated depth PNGs.

Where the files are is datasets/kitti_raw.py's (the layout); this module only reads and writes.

The projection follows the Eigen-split protocol used by monodepth/monodepth2, so that
``gt_depths.npz`` exported here scores predictions exactly like theirs:

* image size (H, W) from ``S_rect_02`` of ``calib_cam_to_cam.txt`` (stored as W H);
* velodyne -> camera 0 from ``R``/``T`` of ``calib_velo_to_cam.txt``, then ``R_rect_00``
  (padded to 4x4), then ``P_rect_0{cam}``;
* points with velodyne x < 0 (behind the sensor) are dropped;
* pixel = round(u) - 1, round(v) - 1 (KITTI's MATLAB-style offset), kept inside the image;
* when several points land on one pixel the nearest one wins; negative depths become 0.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from depth_hints.atomic import atomic_write
from depth_hints.errors import DepthHintsError

#: the stereo side of a split line -> KITTI's camera number (the one side -> camera mapping)
SIDE_TO_CAMERA_INDEX = {"l": 2, "r": 3}


def camera_folder(side: str) -> str:
    """'l' -> 'image_02', 'r' -> 'image_03': KITTI raw's (and the hint files') camera folders."""
    if side not in SIDE_TO_CAMERA_INDEX:
        raise ValueError(f"stereo side must be 'l' or 'r', got {side!r}")
    return f"image_0{SIDE_TO_CAMERA_INDEX[side]}"


class KittiDataError(DepthHintsError, FileNotFoundError):
    """A KITTI file that is missing or malformed; the message names it."""


def _require_file(path: str | os.PathLike, what: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise KittiDataError(f"{what} {path} does not exist.")
    return path


def read_calib_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """KITTI calibration text (``KEY: v1 v2 ...`` lines) -> {key: float64 1-D array}.

    Lines whose values are not all numbers (e.g. ``calib_time: 09-Jan-2012 13:57:47``) are
    skipped."""
    path = _require_file(path, "Calibration file")
    calib: dict[str, np.ndarray] = {}
    with open(path) as f:
        for line in f:
            key, sep, values = line.partition(":")
            if not sep:
                continue
            try:
                calib[key.strip()] = np.array([float(v) for v in values.split()], dtype=np.float64)
            except ValueError:
                continue
    return calib


def _calib_entry(calib: dict, key: str, size: int, path: str) -> np.ndarray:
    if key not in calib or calib[key].size != size:
        found = "missing" if key not in calib else f"has {calib[key].size} values"
        raise KittiDataError(f"{path}: entry {key!r} {found}; expected {size} numbers.")
    return calib[key]


def load_velodyne_points(path: str | os.PathLike) -> np.ndarray:
    """Velodyne sweep ``.bin`` (float32 x, y, z, reflectance) -> [N,4] float32 homogeneous
    points (x, y, z, 1) in the velodyne frame, metres."""
    path = _require_file(path, "Velodyne file")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 4:
        raise KittiDataError(f"Velodyne file {path} holds {raw.size} floats, not a multiple of 4.")
    points = raw.reshape(-1, 4).copy()
    points[:, 3] = 1.0
    return points


def velodyne_to_image_matrix(calib_dir: str | os.PathLike, cam: int = 2):
    """Calibration folder -> (P [4,4] velodyne -> image-plane homogeneous, (H, W) image size)."""
    calib_dir = os.fspath(calib_dir)
    cam_file = os.path.join(calib_dir, "calib_cam_to_cam.txt")
    velo_file = os.path.join(calib_dir, "calib_velo_to_cam.txt")
    cam2cam = read_calib_file(cam_file)
    velo2cam = read_calib_file(velo_file)

    cam0_T_velo = np.eye(4)
    cam0_T_velo[:3, :3] = _calib_entry(velo2cam, "R", 9, velo_file).reshape(3, 3)
    cam0_T_velo[:3, 3] = _calib_entry(velo2cam, "T", 3, velo_file)
    rect_T_cam0 = np.eye(4)
    rect_T_cam0[:3, :3] = _calib_entry(cam2cam, "R_rect_00", 9, cam_file).reshape(3, 3)
    P_rect = np.eye(4)
    P_rect[:3, :] = _calib_entry(cam2cam, f"P_rect_0{cam}", 12, cam_file).reshape(3, 4)
    # The protocol takes the image size of camera 2 whichever camera is projected.
    width, height = _calib_entry(cam2cam, "S_rect_02", 2, cam_file).astype(np.int32)
    return P_rect @ rect_T_cam0 @ cam0_T_velo, (int(height), int(width))


def project_points_to_depth(points_velo: np.ndarray, P_velo2im: np.ndarray, image_shape,
                            vel_depth: bool = False) -> np.ndarray:
    """Velodyne points [N,4] (homogeneous) -> sparse depth [H,W] float64, 0 = no point.

    Depth is the projected camera z, or the velodyne x with ``vel_depth``; pixel =
    round(u) - 1, round(v) - 1; the smallest depth wins on a pixel; negatives become 0."""
    height, width = image_shape
    points_velo = points_velo[points_velo[:, 0] >= 0]
    projected = points_velo @ P_velo2im[:3].T  # [N,3]: u*z, v*z, z
    with np.errstate(divide="ignore", invalid="ignore"):
        u = projected[:, 0] / projected[:, 2]
        v = projected[:, 1] / projected[:, 2]
    depth = points_velo[:, 0] if vel_depth else projected[:, 2]
    # np.round rounds halves to even, as the reference implementation does.
    px = np.round(u) - 1
    py = np.round(v) - 1
    inside = (px >= 0) & (py >= 0) & (px < width) & (py < height)
    px, py, depth = px[inside].astype(np.int64), py[inside].astype(np.int64), depth[inside]

    depth_map = np.full((height, width), np.inf)
    np.minimum.at(depth_map, (py, px), depth)
    depth_map[np.isinf(depth_map)] = 0.0
    depth_map[depth_map < 0] = 0.0
    return depth_map


def generate_depth_map(calib_dir: str | os.PathLike, velo_filename: str | os.PathLike, cam: int = 2,
                       vel_depth: bool = False) -> np.ndarray:
    """KITTI calibration folder (``<data_path>/<date>``) and a velodyne ``.bin`` -> sparse
    depth [H,W] float64 in metres for camera ``cam`` (2 left, 3 right), 0 = no measurement."""
    P_velo2im, image_shape = velodyne_to_image_matrix(calib_dir, cam)
    return project_points_to_depth(load_velodyne_points(velo_filename), P_velo2im, image_shape,
                                   vel_depth)


def load_depth_png(path: str | os.PathLike) -> np.ndarray:
    """KITTI annotated / projected depth PNG (uint16, depth x 256) -> [H,W] float32 metres,
    0 = invalid."""
    path = _require_file(path, "Depth PNG")
    with Image.open(path) as image:
        raw = np.array(image)
    if raw.dtype == np.uint8:
        raise KittiDataError(f"Depth PNG {path} is 8-bit; KITTI depth PNGs are 16-bit (depth x 256).")
    return raw.astype(np.float32) / 256.0


def depth_to_png_array(depth: np.ndarray, max_depth: float = 80.0, beyond: str = "clip") -> np.ndarray:
    """Depth [H,W] metres -> uint16 array as KITTI stores it (the project's one quantisation,
    read back by ``load_depth_png``): round(depth x 256), 0 = none. Depths beyond
    ``max_depth`` (<= 255.99 m, what 16 bits hold): ``beyond`` 'clip' -> max_depth (predicted
    depth for the benchmark), 'invalid' -> 0 (ground truth); NaN and depth <= 0 -> 0."""
    depth = np.asarray(depth, dtype=np.float64)
    if beyond == "clip":
        depth = np.clip(np.nan_to_num(depth, nan=0.0, posinf=max_depth), 0.0, max_depth)
    elif beyond == "invalid":
        depth = np.where((depth > 0) & (depth <= max_depth), depth, 0.0)
    else:
        raise ValueError(f"beyond must be 'clip' or 'invalid', got {beyond!r}")
    return np.rint(depth * 256.0).astype(np.uint16)


def save_depth_png(path: str | os.PathLike, depth: np.ndarray, max_depth: float = 80.0,
                   beyond: str = "clip") -> None:
    """Write depth [H,W] metres as a KITTI 16-bit PNG (``depth_to_png_array``), atomically."""
    image = Image.fromarray(depth_to_png_array(depth, max_depth, beyond))
    with atomic_write(path, "wb") as f:
        image.save(f, format="PNG")


# ----------------------------------------------------------------------------- export

def save_gt_depths(path: str | os.PathLike, depths) -> None:
    """Write per-frame depths as ``np.savez_compressed(data=<object array>)``, atomically
    (``datasets.kitti_raw.export_gt_depths`` makes them from a split)."""
    data = np.empty(len(depths), dtype=object)
    for i, depth in enumerate(depths):
        data[i] = np.asarray(depth, dtype=np.float32)
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, data=data)
