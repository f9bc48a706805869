"""The torch Datasets of the KITTI layouts (raw, odometry, depth benchmark), monodepth2's names."""
from __future__ import annotations

from .kitti_odom import KittiOdomLayout
from .kitti_raw import KittiDepthLayout, KittiRawLayout
from .mono_dataset import MonoDataset


class KITTIRAWDataset(MonoDataset):
    """KITTI raw (``KittiRawLayout``): dense ground truth from proj_depth/groundtruth when present."""
    layout_class = KittiRawLayout


class KITTIOdomDataset(MonoDataset):
    """KITTI odometry (``KittiOdomLayout``): folder = sequence id."""
    layout_class = KittiOdomLayout


class KITTIDepthDataset(MonoDataset):
    """KITTI depth benchmark (``KittiDepthLayout``): ground truth required."""
    layout_class = KittiDepthLayout
