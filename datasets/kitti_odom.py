"""KITTI odometry: the layout.

  <data_path>/sequences/<seq:02d>/image_{2,3}/<frame:06d>.{jpg,png}   images (folder = sequence id)
  <data_path>/poses/<seq:02d>.txt                                     ground-truth poses

Camera as KITTI raw's (normalised intrinsics 0.58, 1.92, 0.5, 0.5; 0.54 m baseline). No depth
ground truth.
"""
from __future__ import annotations

import os

from .kitti_raw import KITTI_CAMERA, SIDE_TO_CAMERA_INDEX
from .layout import DatasetLayout


class KittiOdomLayout(DatasetLayout):
    """KITTI odometry sequences; folder = the sequence number."""

    name = "kitti_odom"
    scaled_matcher_bank = False  # the paper's bank, as for KITTI raw

    def image_path(self, folder, frame_index, side):
        """<data_path>/sequences/<seq:02d>/image_{2,3}/<frame:06d><img_ext>."""
        return os.path.join(self.data_path, "sequences", f"{int(folder):02d}",
                            f"image_{SIDE_TO_CAMERA_INDEX[side]}", f"{frame_index:06d}{self.img_ext}")

    def camera(self, folder, frame_index=None):
        return KITTI_CAMERA

    def poses_path(self, sequence: int) -> str:
        """<data_path>/poses/<seq:02d>.txt (12 numbers per line, a row-major 3x4 per frame)."""
        return os.path.join(self.data_path, "poses", f"{int(sequence):02d}.txt")
