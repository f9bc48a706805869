"""KITTI raw (and the depth benchmark's ground truth merged into it): the layout.

  <data_path>/<date>/<date>_drive_<n>_sync/image_0{2,3}/data/<frame:010d>.{jpg,png}   images
  <data_path>/<date>/<date>_drive_<n>_sync/proj_depth/groundtruth/image_0{2,3}/<frame:010d>.png
                                                    dense ground truth (uint16 metres x 256)
  <data_path>/<date>/<date>_drive_<n>_sync/velodyne_points/data/<frame:010d>.bin      sweeps
  <data_path>/<date>/calib_{cam_to_cam,velo_to_cam}.txt                                calibration

Camera: KITTI's normalised intrinsics (0.58, 1.92, 0.5, 0.5) and a 0.54 m baseline (metric
factor 5.4). ``--dataset kitti`` / ``kitti_test``: ground truth optional; ``kitti_depth``:
required. The KITTI benchmark's test images are flat ``<folder>/<frame:010d>.<ext>``
(``benchmark_image_path``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depth_hints import geometry
from depth_hints.kitti import (SIDE_TO_CAMERA_INDEX, KittiDataError, camera_folder, generate_depth_map,
                               load_depth_png, save_gt_depths)

from .layout import Camera, DatasetLayout

#: KITTI's stereo baseline in metres (a stereo model's nominal 0.1 times 5.4)
KITTI_BASELINE_M = 0.54
KITTI_CAMERA = Camera(geometry.KITTI_NORMALISED_INTRINSICS, KITTI_BASELINE_M)
GT_MODES = ("velodyne", "dense")
#: named KITTI splits and the ground truth their protocol uses
SPLIT_GT_MODES = {"eigen": "velodyne", "eigen_benchmark": "dense"}


class KittiRawLayout(DatasetLayout):
    """KITTI raw drives; dense ground truth from proj_depth/groundtruth where present."""

    name = "kitti"
    gt_kind = "depth"
    scaled_matcher_bank = False  # the paper's bank (made for 1024 px) at any width

    def image_path(self, folder, frame_index, side):
        """<data_path>/<folder>/image_0{2,3}/data/<frame:010d><img_ext>."""
        return os.path.join(self.data_path, folder, camera_folder(side), "data",
                            f"{frame_index:010d}{self.img_ext}")

    def benchmark_image_path(self, folder: str, frame_index: int) -> str:
        """KITTI benchmark test images: <data_path>/<folder>/<frame:010d><img_ext>."""
        return os.path.join(self.data_path, folder, f"{frame_index:010d}{self.img_ext}")

    def camera(self, folder, frame_index=None):
        return KITTI_CAMERA

    def gt_path(self, folder, frame_index, side):
        """<data_path>/<folder>/proj_depth/groundtruth/image_0{2,3}/<frame:010d>.png."""
        return os.path.join(self.data_path, folder, "proj_depth", "groundtruth",
                            camera_folder(side), f"{frame_index:010d}.png")

    def _read_gt_file(self, path):
        return load_depth_png(path)

    def velodyne_path(self, folder: str, frame_index: int) -> str:
        """<data_path>/<folder>/velodyne_points/data/<frame:010d>.bin."""
        return os.path.join(self.data_path, folder, "velodyne_points", "data",
                            f"{frame_index:010d}.bin")

    def calib_dir(self, folder: str) -> str:
        """The calibration folder of a drive: <data_path>/<date>, date = the folder's first part."""
        return os.path.join(self.data_path, folder.split("/")[0])

    def sparse_gt_depth(self, folder: str, frame_index: int, side: str) -> np.ndarray:
        """The velodyne sweep projected into a view, velodyne x as depth (the Eigen protocol):
        float32 [H, W] metres, 0 = none."""
        return generate_depth_map(self.calib_dir(folder), self.velodyne_path(folder, frame_index),
                                  cam=SIDE_TO_CAMERA_INDEX[side], vel_depth=True).astype(np.float32)


class KittiDepthLayout(KittiRawLayout):
    """KITTI depth benchmark: raw images plus proj_depth/groundtruth PNGs (required)."""

    name = "kitti_depth"
    gt_required = True


def gt_depth_for_sample(data_path: str, folder: str, frame_index: int, side: str, mode: str) -> np.ndarray:
    """Ground-truth depth [H,W] float32 of one split line: ``velodyne`` projects the sweep
    (velodyne x as depth, as the Eigen protocol does), ``dense`` reads the annotated PNG."""
    layout = KittiRawLayout(data_path)
    if mode == "velodyne":
        return layout.sparse_gt_depth(folder, frame_index, side)
    if mode == "dense":
        return load_depth_png(layout.gt_path(folder, frame_index, side)).astype(np.float32)
    raise KittiDataError(f"ground-truth mode must be one of {GT_MODES}, got {mode!r}")


def export_gt_depths(data_path: str, split: str, mode: str | None = None,
                     output: str | None = None, progress: bool = True) -> Path:
    """Export ``<split>/gt_depths.npz`` (key ``data``: object array of [H,W] float32 metres)
    from ``<split>/test_files.txt``; returns the written path.

    ``split`` is ``eigen`` (velodyne), ``eigen_benchmark`` (dense annotated PNGs) or a split
    folder; for a folder of another name ``mode`` (velodyne|dense) must be given."""
    from depth_hints.splits import read_split_file, split_dir

    folder = split_dir(split)
    name = Path(split).name
    if mode is None:
        mode = SPLIT_GT_MODES.get(name) or SPLIT_GT_MODES.get(folder.name)
        if mode is None:
            raise KittiDataError(f"--split {split!r}: cannot tell which ground truth it uses; "
                                 f"add --mode velodyne or --mode dense.")
    if mode not in GT_MODES:
        raise KittiDataError(f"--mode must be one of {GT_MODES}, got {mode!r}")
    samples = read_split_file(folder / "test_files.txt")
    depths = []
    for sample in tqdm(samples, desc=f"gt depth ({mode})", unit="frame", disable=not progress):
        depths.append(gt_depth_for_sample(data_path, sample.folder, sample.frame_index,
                                          sample.side, mode))
    out = Path(output) if output else folder / "gt_depths.npz"
    save_gt_depths(out, depths)
    return out
