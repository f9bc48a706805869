"""Hint files and their units: where a hint lives, how it is read and written, and the
disparity <-> hint depth conversion. A leaf: no dataset, no matcher, no run.

Layout: ``<depth_hint_path>/<folder>/image_0{2,3}/<frame:010d>.npy`` (image_02 for side 'l',
image_03 for 'r', whatever the dataset; ``<name>.npy`` for frames named by file name) holding
depth in the training's nominal units (baseline 0.1, the dataset's normalised intrinsics),
shape (H, W) or (1, H, W), float32 or float16; 0 means no hint. Written as (1, H, W) like the
original release. A rig whose principal points differ (Middlebury's doffs, pixels at the hint
width) converts with depth = fx * 0.1 / (d + doffs).
"""
from __future__ import annotations

import os
import re
import time

import numpy as np

from depth_hints import geometry
from depth_hints.atomic import atomic_write
from depth_hints.errors import DepthHintsError
from depth_hints.kitti import camera_folder


class HintFileError(DepthHintsError, ValueError):
    """A missing, corrupt or wrongly shaped hint file; the message names the file."""


# ----------------------------------------------------------------------------- hint file I/O

#: leftovers of ``atomic_write`` of a hint: ``<frame:010d>.npy.tmp<random>`` (or ``<name>...``)
_TEMP_PATTERN = re.compile(r"^.+\.npy\.tmp\w+$")


def hint_file_path(root: str, folder: str, frame_index: int, side: str) -> str:
    """Where the hint of one frame lives: ``<frame:010d>.npy``, or ``<name>.npy`` for a frame
    named by its file name (``--dataset stereo``)."""
    leaf = f"{frame_index:010d}" if isinstance(frame_index, int) else str(frame_index)
    return os.path.join(root, folder, camera_folder(side), f"{leaf}.npy")


def load_hint(path: str) -> np.ndarray:
    """Read a hint file -> float32 [H, W] depth, 0 = no hint. Raises HintFileError naming the
    file when it is missing, unreadable, not 2-D / (1,H,W), not float, or not finite."""
    if not os.path.isfile(path):
        raise HintFileError(f"Depth hint {path} does not exist. Run precompute_depth_hints.py "
                            f"for this split, or point --depth_hint_path at the hints.")
    try:
        hint = np.load(path, allow_pickle=False)
    except Exception as e:  # truncated or not an .npy at all
        raise HintFileError(f"Depth hint {path} is corrupt ({type(e).__name__}: {e}). Delete it "
                            f"and re-run precompute_depth_hints.py (it recomputes missing files).") from None
    if hint.ndim == 3 and hint.shape[0] == 1:
        hint = hint[0]
    if hint.ndim != 2 or hint.dtype.kind != "f":
        raise HintFileError(f"Depth hint {path} has shape {hint.shape} and dtype {hint.dtype}; "
                            f"expected float (H, W) or (1, H, W). Re-run precompute_depth_hints.py.")
    hint = hint.astype(np.float32, copy=False)
    if not np.isfinite(hint).all() or (hint < 0).any():
        raise HintFileError(f"Depth hint {path} holds negative or non-finite depths. "
                            f"Re-run precompute_depth_hints.py --overwrite_saved_depths.")
    return hint


def save_hint(path: str, depth: np.ndarray, dtype: str = "float32") -> None:
    """Write a hint atomically (``atomic.atomic_write``) as (1, H, W), like the original release.

    The temporary name (``<frame>.npy.tmp<random>``) never ends in .npy, so a run killed
    mid-write leaves no file that a reader could take for a hint."""
    array = np.asarray(depth, dtype=dtype).reshape(1, *np.shape(depth)[-2:])
    with atomic_write(path, "wb") as f:
        np.save(f, array)


def remove_stale_temporaries(directories, min_age_s: float = 60.0) -> int:
    """Delete ``<frame>.npy.tmp<random>`` leftovers of killed runs older than ``min_age_s`` in the
    given directories (younger ones may belong to a run still writing). Returns the count."""
    removed = 0
    now = time.time()
    for directory in directories:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if not _TEMP_PATTERN.match(name):
                continue
            path = os.path.join(directory, name)
            try:
                if now - os.path.getmtime(path) >= min_age_s:
                    os.remove(path)
                    removed += 1
            except OSError:
                pass
    return removed


# ----------------------------------------------------------------------------- units

KITTI_FX_NORMALISED = geometry.KITTI_NORMALISED_INTRINSICS[0]


def hint_fx(width: int, fx_normalised: float = KITTI_FX_NORMALISED) -> float:
    """Focal length in pixels at ``width`` of the training's normalised intrinsics (KITTI's
    0.58 by default; SceneFlow passes its sequence's fx / W)."""
    return fx_normalised * width


def disparity_to_hint_depth(disparity_px, width: int, fx_normalised: float = KITTI_FX_NORMALISED,
                            doffs: float = 0.0):
    """Disparity in pixels at image width ``width`` -> hint depth (nominal baseline 0.1 units):
    depth = fx_normalised * width * 0.1 / (d + doffs * width) (0.58 on KITTI, doffs 0), 0
    where d <= 0. ``doffs``: the views' principal-point x difference / W. numpy or torch."""
    if doffs:
        disparity_px = (disparity_px + doffs * width) * (disparity_px > 0)
    return geometry.disparity_to_depth(disparity_px, hint_fx(width, fx_normalised),
                                       geometry.NOMINAL_BASELINE)


def hint_depth_to_disparity(depth, width: int, fx_normalised: float = KITTI_FX_NORMALISED,
                            doffs: float = 0.0):
    """Hint depth -> disparity in pixels at image width ``width`` (the inverse of
    ``disparity_to_hint_depth``); 0 where depth <= 0."""
    disparity = geometry.depth_to_disparity(depth, hint_fx(width, fx_normalised),
                                            geometry.NOMINAL_BASELINE)
    if doffs:
        disparity = (disparity - doffs * width) * (disparity > 0)
    return disparity


def hint_coverage(depth: np.ndarray) -> float:
    """Fraction of pixels with a hint (> 0)."""
    return float((np.asarray(depth) > 0).mean())
