"""The torch Dataset of the SceneFlow layout (datasets/sceneflow.py: folders, camera, splits)."""
from __future__ import annotations

import numpy as np
import torch

from .mono_dataset import MonoDataset
from .sceneflow import SceneFlowLayout


class SceneFlowDataset(MonoDataset):
    """SceneFlow frames of one render pass; per-sequence intrinsics, PFM ground truth.

    Extra keyword: ``sceneflow_pass`` ('clean' or 'final'). Lines are validated at construction."""
    layout_class = SceneFlowLayout

    def __init__(self, *args, sceneflow_pass: str = "clean", **kwargs):
        super().__init__(*args, sceneflow_pass=sceneflow_pass, **kwargs)
        self.sceneflow_pass = self.layout.sceneflow_pass

    def disparity_path(self, folder: str, frame_index: int, side: str) -> str:
        return self.layout.gt_path(folder, frame_index, side)

    def get_disparity(self, folder: str, frame_index: int, side: str) -> np.ndarray:
        """Ground-truth disparity, float32 [h, w] in pixels of the stored map (positive)."""
        return self.layout.read_gt(folder, frame_index, side).values

    def intrinsics_of_folder(self, folder: str) -> torch.Tensor:
        return self.layout.camera(folder).K()
