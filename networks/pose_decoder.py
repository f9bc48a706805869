"""Pose head that regresses relative camera motion from ResNet encoder features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class PoseDecoder(nn.Module):
    """Map encoder features to axis-angle and translation, each [B,F,1,3]."""

    def __init__(
        self,
        num_ch_enc: Sequence[int],
        num_input_features: int,
        num_frames_to_predict_for: int | None = None,
        stride: int = 1,
    ) -> None:
        super().__init__()
        self.num_ch_enc = [int(c) for c in num_ch_enc]
        self.num_input_features = num_input_features
        if num_frames_to_predict_for is None:
            num_frames_to_predict_for = num_input_features - 1
        if num_frames_to_predict_for < 1:
            raise ValueError(
                "num_frames_to_predict_for must be >= 1; pass it explicitly when "
                f"num_input_features={num_input_features}"
            )
        self.num_frames_to_predict_for = num_frames_to_predict_for

        # Indices fix the state-dict keys net.0 ... net.3 (squeeze, pose 0, pose 1, pose 2).
        self.net = nn.ModuleList(
            [
                nn.Conv2d(self.num_ch_enc[-1], 256, kernel_size=1),
                nn.Conv2d(num_input_features * 256, 256, kernel_size=3, stride=stride, padding=1),
                nn.Conv2d(256, 256, kernel_size=3, stride=stride, padding=1),
                nn.Conv2d(256, 6 * num_frames_to_predict_for, kernel_size=1),
            ]
        )

    def forward(
        self, input_features: Sequence[Sequence[torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """List of per-input feature lists (last is [B,C,h,w]) -> (axisangle, translation) [B,F,1,3]."""
        squeeze, pose0, pose1, pose2 = self.net
        last = [F.relu(squeeze(features[-1])) for features in input_features]
        x = torch.cat(last, dim=1)
        x = F.relu(pose0(x))
        x = F.relu(pose1(x))
        x = pose2(x)
        pose = 0.01 * x.mean(dim=(2, 3))
        pose = pose.view(-1, self.num_frames_to_predict_for, 1, 6)
        return pose[..., :3], pose[..., 3:]
