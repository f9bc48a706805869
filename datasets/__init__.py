"""Datasets: one layout module per dataset (paths, camera, ground truth; see datasets/README.md
and datasets/layout.py) and the torch Dataset built on any layout (mono_dataset.py)."""
from .kitti_dataset import KITTIDepthDataset, KITTIOdomDataset, KITTIRAWDataset
from .layout import Camera, DatasetError, DatasetLayout, GroundTruth, LayoutError
from .mono_dataset import MonoDataset
from .registry import LAYOUTS, layout_class, make_layout
from .sceneflow_dataset import SceneFlowDataset

__all__ = ["dataset_class", "MonoDataset", "DatasetError", "KITTIRAWDataset", "KITTIOdomDataset",
           "KITTIDepthDataset", "SceneFlowDataset", "Camera", "DatasetLayout", "GroundTruth",
           "LayoutError", "LAYOUTS", "layout_class", "make_layout"]

# --dataset name -> torch Dataset class (its layout: registry.LAYOUTS[name])
_DATASETS = {"kitti": KITTIRAWDataset, "kitti_odom": KITTIOdomDataset, "kitti_depth": KITTIDepthDataset,
             "kitti_test": KITTIRAWDataset, "sceneflow": SceneFlowDataset}


def dataset_class(name: str):
    """--dataset name -> loader class (a MonoDataset bound to the name's layout where the
    dataset needs no class of its own: stereo, middlebury, cityscapes)."""
    if name in _DATASETS:
        return _DATASETS[name]
    if name in LAYOUTS:
        return type(f"{LAYOUTS[name].__name__.replace('Layout', '')}Dataset", (MonoDataset,),
                    {"layout_class": LAYOUTS[name], "__module__": __name__})
    raise ValueError(f"--dataset {name!r}: available loaders are {', '.join(sorted(LAYOUTS))}")
