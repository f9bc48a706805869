"""Writes the synthetic world in the generic calibrated-stereo layout (``--dataset stereo``,
paths from ``datasets.stereo_rig``) with a camera of your choosing: by default a non-KITTI
rig (fx = fy = 0.9 W, principal point (0.4 W, 0.5 H), baseline 0.25 m), PNG pairs,
calib.json and left-view ground-truth depth (.npy, metres)."""
from __future__ import annotations

import json
import os
from typing import Dict

import numpy as np

from datasets.stereo_rig import CALIB_FILE, StereoRigLayout
from depth_hints.atomic import atomic_write

from .kitti_writer import _atomic_write_bytes, _check_world_arguments, _png_bytes, _write_text_if_changed
from .renderer import render_view
from .scene import camera_to_world, make_world

#: the default rig: fx / W, cx / W, baseline (m); fy = fx in pixels, cy = H / 2
RIG_FX_FRACTION = 0.9
RIG_CX_FRACTION = 0.4
RIG_BASELINE = 0.25


def stereo_rig_intrinsics(width: int, height: int, fx_fraction: float = RIG_FX_FRACTION,
                          cx_fraction: float = RIG_CX_FRACTION) -> np.ndarray:
    """3x3 camera matrix of the synthetic rig at (width, height): fx = fy = fx_fraction W,
    principal point (cx_fraction W, H / 2); pixel index i sits at image coordinate i."""
    f = fx_fraction * width
    return np.array([[f, 0.0, cx_fraction * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]])


def frame_name(frame: int) -> str:
    """File name stem of frame ``frame`` (not a bare integer, as users' names often are not)."""
    return "img_%03d" % frame


def stereo_rig_views(world, frame: int, K: np.ndarray, width: int, height: int,
                     baseline: float) -> Dict[str, tuple]:
    """Left (where the KITTI rig's cam 2 is) and right (``baseline`` m along its x axis)
    noise-free views of one frame: {'l': (rgb uint8 [H,W,3], depth float32 [H,W] m), 'r': ...}."""
    left_to_world = camera_to_world(world, frame, 2)
    offset = np.eye(4)
    offset[0, 3] = baseline
    out = {}
    for side, pose in (("l", left_to_world), ("r", left_to_world @ offset)):
        rgb, depth, _ = render_view(world, pose, K, height, width,
                                    exposure=float(world.exposure[frame]), noise_std=0.0)
        out[side] = (rgb, depth)
    return out


def write_synthetic_stereo(out_dir: str = "data/synthetic_stereo", num_sequences: int = 2,
                           frames_per_sequence: int = 4, width: int = 256, height: int = 128,
                           seed: int = 0, fx_fraction: float = RIG_FX_FRACTION,
                           cx_fraction: float = RIG_CX_FRACTION, baseline: float = RIG_BASELINE,
                           baselines=None) -> Dict[str, object]:
    """Write the procedural world in the generic stereo layout; return a summary.

    ``<out_dir>/seq_<i>/{left,right}/img_<frame:03d>.png``, ``seq_<i>/calib.json`` and
    ``seq_<i>/depth/img_<frame:03d>.npy`` (left view, metres, 0 on the sky). Each sequence is
    its own street (``make_world(seed, i)``). ``baselines``: one baseline per sequence (a
    mixed-rig set), else ``baseline`` for all. Files are written atomically."""
    _check_world_arguments("num_sequences", num_sequences, "frames_per_sequence",
                           frames_per_sequence, width, height, seed)
    baselines = list(baselines) if baselines is not None else [baseline] * num_sequences
    if len(baselines) != num_sequences or min(baselines) <= 0:
        raise ValueError("baselines: one positive baseline per sequence")
    layout = StereoRigLayout(out_dir)
    K = stereo_rig_intrinsics(width, height, fx_fraction, cx_fraction)
    folders = []
    for index in range(num_sequences):
        folder = "seq_%d" % index
        folders.append(folder)
        calib = {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2],
                 "baseline": float(baselines[index])}
        _write_text_if_changed(os.path.join(layout.sequence_dir(folder), CALIB_FILE),
                               json.dumps(calib, indent=1) + "\n", overwrite=True)
        world = make_world(seed, index, frames_per_sequence)
        for frame in range(frames_per_sequence):
            views = stereo_rig_views(world, frame, K, width, height, float(baselines[index]))
            name = frame_name(frame)
            for side, (rgb, _) in views.items():
                path = os.path.join(layout.sequence_dir(folder), {"l": "left", "r": "right"}[side],
                                    name + ".png")
                _atomic_write_bytes(path, _png_bytes(rgb))
            with atomic_write(os.path.join(layout.sequence_dir(folder), "depth", name + ".npy"), "wb") as f:
                np.save(f, views["l"][1].astype(np.float32))
    return {"out_dir": os.path.abspath(out_dir), "folders": folders,
            "names": [frame_name(f) for f in range(frames_per_sequence)],
            "K": K, "baselines": baselines}
