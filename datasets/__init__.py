"""Datasets: one layout module per dataset (paths, camera, ground truth; see datasets/README.md
and datasets/layout.py) and the torch Dataset built on any layout (mono_dataset.py)."""
from .kitti_dataset import KITTIDepthDataset, KITTIOdomDataset, KITTIRAWDataset
from .layout import Camera, DatasetError, DatasetLayout, GroundTruth, LayoutError
from .mono_dataset import MonoDataset
from .registry import LAYOUTS, layout_class, make_layout
from .cityscapes import CityscapesLayout
from .middlebury import MiddleburyLayout
from .sceneflow_dataset import SceneFlowDataset
from .stereo_rig import StereoRigLayout

__all__ = ["dataset_class", "MonoDataset", "DatasetError", "KITTIRAWDataset", "KITTIOdomDataset",
           "KITTIDepthDataset", "SceneFlowDataset", "StereoRigDataset", "MiddleburyDataset",
           "CityscapesDataset", "Camera", "DatasetLayout", "GroundTruth",
           "LayoutError", "LAYOUTS", "layout_class", "make_layout"]


class StereoRigDataset(MonoDataset):
    """Your own calibrated rig (``stereo_rig.StereoRigLayout``)."""
    layout_class = StereoRigLayout


class MiddleburyDataset(MonoDataset):
    """Middlebury 2014 scenes (``middlebury.MiddleburyLayout``)."""
    layout_class = MiddleburyLayout


class CityscapesDataset(MonoDataset):
    """Cityscapes, top 75 % of each image (``cityscapes.CityscapesLayout``)."""
    layout_class = CityscapesLayout


# --dataset name -> torch Dataset class (its layout: registry.LAYOUTS[name])
_DATASETS = {"kitti": KITTIRAWDataset, "kitti_odom": KITTIOdomDataset, "kitti_depth": KITTIDepthDataset,
             "kitti_test": KITTIRAWDataset, "sceneflow": SceneFlowDataset, "stereo": StereoRigDataset,
             "middlebury": MiddleburyDataset, "cityscapes": CityscapesDataset}


def dataset_class(name: str):
    """--dataset name -> loader class."""
    if name not in _DATASETS:
        raise ValueError(f"--dataset {name!r}: available loaders are {', '.join(sorted(_DATASETS))}")
    return _DATASETS[name]
