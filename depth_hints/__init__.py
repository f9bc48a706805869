"""Depth Hints (Watson et al., ICCV 2019) on monodepth2 semantics.

``from depth_hints import DepthPredictor`` is resolved lazily, so importing a light module
(e.g. ``depth_hints.errors``) does not import torch.
"""
from __future__ import annotations

__all__ = ["DepthPredictor", "DepthPrediction"]


def __getattr__(name: str):
    if name in __all__:
        from depth_hints import predictor
        return getattr(predictor, name)
    raise AttributeError(f"module 'depth_hints' has no attribute {name!r}")
