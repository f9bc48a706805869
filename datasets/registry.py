"""``--dataset`` name -> layout class: the one list of datasets (one line each).

``make_layout(name, data_path, img_ext=..., sceneflow_pass=...)`` builds a layout; options a
layout does not take are ignored, so callers pass what they have."""
from __future__ import annotations

import inspect

from .cityscapes import CityscapesLayout
from .kitti_odom import KittiOdomLayout
from .kitti_raw import KittiDepthLayout, KittiRawLayout
from .layout import DatasetLayout, LayoutError
from .middlebury import MiddleburyLayout
from .sceneflow import SceneFlowLayout
from .stereo_rig import StereoRigLayout

# kitti_test (a monodepth2 choice it never wired up): KITTI's raw layout, as for kitti.
LAYOUTS = {
    "kitti": KittiRawLayout,
    "kitti_test": KittiRawLayout,
    "kitti_depth": KittiDepthLayout,
    "kitti_odom": KittiOdomLayout,
    "sceneflow": SceneFlowLayout,
    "stereo": StereoRigLayout,
    "middlebury": MiddleburyLayout,
    "cityscapes": CityscapesLayout,
}


def layout_class(name: str) -> type:
    """--dataset name -> its DatasetLayout subclass."""
    if name not in LAYOUTS:
        raise LayoutError(f"--dataset {name!r}: available datasets are {', '.join(sorted(LAYOUTS))}")
    return LAYOUTS[name]


def make_layout(name: str, data_path: str, **options) -> DatasetLayout:
    """--dataset name and --data_path (+ layout options such as img_ext, sceneflow_pass that
    the layout takes; others are ignored) -> a layout instance."""
    cls = layout_class(name)
    accepted = inspect.signature(cls.__init__).parameters
    return cls(data_path, **{k: v for k, v in options.items() if k in accepted})
