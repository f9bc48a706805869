"""Small building blocks shared by the depth and pose networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Conv3x3(nn.Module):
    """3x3 convolution with reflection (or zero) padding of one pixel: [B,Cin,H,W] -> [B,Cout,H,W]."""

    def __init__(self, in_channels: int, out_channels: int, use_refl: bool = True) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1) if use_refl else nn.ZeroPad2d(1)
        self.conv = nn.Conv2d(int(in_channels), int(out_channels), kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad then convolve: [B,Cin,H,W] -> [B,Cout,H,W]."""
        return self.conv(self.pad(x))


class ConvBlock(nn.Module):
    """Conv3x3 followed by an ELU: [B,Cin,H,W] -> [B,Cout,H,W]."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = Conv3x3(in_channels, out_channels)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve then apply ELU: [B,Cin,H,W] -> [B,Cout,H,W]."""
        return self.nonlin(self.conv(x))


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 upsampling: [B,C,H,W] -> [B,C,2H,2W]."""
    return F.interpolate(x, scale_factor=2, mode="nearest")
