"""Stand-alone convolutional pose network operating directly on stacked frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_CHANNELS = (16, 32, 64, 128, 256, 256, 256)
_KERNELS = (7, 5, 3, 3, 3, 3, 3)


class PoseCNN(nn.Module):
    """Predict relative poses from N stacked frames: [B,3N,H,W] -> (axisangle, translation) [B,N-1,1,3]."""

    def __init__(self, num_input_frames: int) -> None:
        super().__init__()
        if num_input_frames < 2:
            raise ValueError(f"num_input_frames must be >= 2, got {num_input_frames!r}")
        self.num_input_frames = num_input_frames

        in_channels = [3 * num_input_frames, *_CHANNELS[:-1]]
        self.net = nn.ModuleList(
            nn.Conv2d(c_in, c_out, kernel_size=k, stride=2, padding=k // 2)
            for c_in, c_out, k in zip(in_channels, _CHANNELS, _KERNELS)
        )
        self.pose_conv = nn.Conv2d(_CHANNELS[-1], 6 * (num_input_frames - 1), kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B,3N,H,W] -> (axisangle, translation), each [B,N-1,1,3]."""
        for conv in self.net:
            x = F.relu(conv(x))
        pose = 0.01 * self.pose_conv(x).mean(dim=(2, 3))
        pose = pose.view(-1, self.num_input_frames - 1, 1, 6)
        return pose[..., :3], pose[..., 3:]
