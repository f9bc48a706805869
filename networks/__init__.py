"""Depth and pose networks (monodepth2-compatible state dicts)."""

from .depth_decoder import DepthDecoder
from .pose_cnn import PoseCNN
from .pose_decoder import PoseDecoder
from .resnet_encoder import ResnetEncoder

__all__ = ["ResnetEncoder", "DepthDecoder", "PoseDecoder", "PoseCNN"]
