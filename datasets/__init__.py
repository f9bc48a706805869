"""Dataset loaders: KITTI raw / odometry / depth (and SceneFlow), sharing MonoDataset."""
from .kitti_dataset import KITTIDepthDataset, KITTIOdomDataset, KITTIRAWDataset
from .mono_dataset import DatasetError, MonoDataset
from .sceneflow_dataset import SceneFlowDataset

__all__ = ["dataset_class", "MonoDataset", "DatasetError", "KITTIRAWDataset", "KITTIOdomDataset", "KITTIDepthDataset",
           "SceneFlowDataset"]

# kitti_test (a monodepth2 choice it never wired up): KITTI's raw layout, as for kitti.
_DATASETS = {"kitti": KITTIRAWDataset, "kitti_odom": KITTIOdomDataset, "kitti_depth": KITTIDepthDataset,
             "kitti_test": KITTIRAWDataset, "sceneflow": SceneFlowDataset}


def dataset_class(name: str):
    """--dataset name -> loader class."""
    if name not in _DATASETS:
        raise ValueError(f"--dataset {name!r}: available loaders are {', '.join(sorted(_DATASETS))}")
    return _DATASETS[name]
