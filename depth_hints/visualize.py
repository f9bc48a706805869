"""Colour maps (the demo's figures and report: demo_report.py)."""
from __future__ import annotations

import numpy as np


def colorize_disparity(disp: np.ndarray, vmax_percentile: float = 95.0, cmap: str = "magma") -> np.ndarray:
    """Disparity [H,W] -> uint8 RGB [H,W,3] with a matplotlib colour map.

    Normalised to [min(disp), percentile(disp, vmax_percentile)]; values above the upper bound
    take the top colour."""
    import matplotlib

    disp = np.asarray(disp, dtype=np.float64)
    if disp.ndim != 2:
        raise ValueError(f"colorize_disparity expects an [H,W] array, got shape {disp.shape}")
    vmin = float(np.min(disp))
    vmax = float(np.percentile(disp, vmax_percentile))
    span = vmax - vmin
    normalised = np.clip((disp - vmin) / span, 0.0, 1.0) if span > 0 else np.zeros_like(disp)
    rgba = matplotlib.colormaps[cmap](normalised)
    return (rgba[..., :3] * 255).astype(np.uint8)


def colorize_error(error: np.ndarray, valid: np.ndarray, vmax: float = 0.5) -> np.ndarray:
    """Absolute relative error [H,W] -> uint8 RGB (black where ``valid`` is False), 0..vmax."""
    import matplotlib

    rgb = (matplotlib.colormaps["inferno"](np.clip(error / vmax, 0, 1))[..., :3] * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb
