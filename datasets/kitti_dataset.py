"""KITTI loaders (raw, odometry, depth benchmark) in their published folder layouts."""
from __future__ import annotations

import os

import cv2
import numpy as np

from .mono_dataset import MonoDataset

SIDE_TO_CAMERA_INDEX = {"l": 2, "r": 3}


def kitti_image_path(data_path: str, folder: str, frame_index: int, side: str, ext: str = ".jpg") -> str:
    """KITTI raw: <data_path>/<folder>/image_0{2,3}/data/<frame:010d><ext>."""
    return os.path.join(data_path, folder, f"image_0{SIDE_TO_CAMERA_INDEX[side]}", "data",
                        f"{frame_index:010d}{ext}")


def kitti_dense_depth_path(data_path: str, folder: str, frame_index: int, side: str) -> str:
    """KITTI depth benchmark ground truth merged into raw:
    <data_path>/<folder>/proj_depth/groundtruth/image_0{2,3}/<frame:010d>.png."""
    return os.path.join(data_path, folder, "proj_depth", "groundtruth",
                        f"image_0{SIDE_TO_CAMERA_INDEX[side]}", f"{frame_index:010d}.png")


def read_depth_png(path: str) -> np.ndarray:
    """16-bit depth PNG (metres x 256, 0 = none) -> float32 metres."""
    depth = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if depth is None:
        raise FileNotFoundError(f"Depth PNG {path} is missing or unreadable.")
    return depth.astype(np.float32) / 256.0


class KITTIRAWDataset(MonoDataset):
    """KITTI raw: <date>/<drive>_sync/image_0{2,3}/data/<frame:010d>.jpg; dense ground truth
    from proj_depth/groundtruth when present."""

    def image_path(self, folder, frame_index, side):
        return kitti_image_path(self.data_path, folder, frame_index, side, self.img_ext)

    def get_depth(self, folder, frame_index, side):
        path = kitti_dense_depth_path(self.data_path, folder, frame_index, side)
        return read_depth_png(path) if os.path.isfile(path) else None


class KITTIOdomDataset(MonoDataset):
    """KITTI odometry: sequences/<seq:02d>/image_{2,3}/<frame:06d>.jpg; folder = sequence id."""

    def image_path(self, folder, frame_index, side):
        return os.path.join(self.data_path, "sequences", f"{int(folder):02d}",
                            f"image_{SIDE_TO_CAMERA_INDEX[side]}", f"{frame_index:06d}{self.img_ext}")


class KITTIDepthDataset(MonoDataset):
    """KITTI depth benchmark layout: raw images plus proj_depth/groundtruth PNGs (required)."""

    def image_path(self, folder, frame_index, side):
        return kitti_image_path(self.data_path, folder, frame_index, side, self.img_ext)

    def get_depth(self, folder, frame_index, side):
        return read_depth_png(kitti_dense_depth_path(self.data_path, folder, frame_index, side))
