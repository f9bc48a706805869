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

import dataclasses
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import numpy as np
from tqdm import tqdm

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
                            f"Re-run precompute_depth_hints.py with the flags of the run that made "
                            f"it: it recomputes invalid files (--overwrite_saved_depths would "
                            f"recompute every file).")
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


# ----------------------------------------------------------------------------- verification

#: what ``check_hint_file`` finds, in the order the summary lists them
HINT_STATUSES = ("ok", "missing", "corrupt", "wrong size")


@dataclasses.dataclass(frozen=True)
class HintCheck:
    """One hint file as found: status (one of HINT_STATUSES), the problem's message naming the
    file ('' when ok), the hint's fraction of pixels with a hint (full checks of good files
    only), and (``keep_hint``) the loaded float32 [H, W] depth."""
    path: str
    status: str
    message: str = ""
    coverage: Optional[float] = None
    hint: Optional[np.ndarray] = None


def read_hint_header(path: str) -> tuple:
    """(height, width) of a hint file from its .npy header alone, without reading the depths.

    Raises HintFileError naming the file when it is missing, not an .npy file, not float,
    not (H, W) / (1, H, W), or shorter than its header promises (truncated)."""
    if not os.path.isfile(path):
        raise HintFileError(f"Depth hint {path} does not exist. Run precompute_depth_hints.py "
                            f"for this split, or point --depth_hint_path at the hints.")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            data_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            size = os.fstat(f.fileno()).st_size
            offset = f.tell()
    except Exception as e:  # not an .npy file, or a header cut short
        raise HintFileError(f"Depth hint {path} is corrupt ({type(e).__name__}: {e}). Delete it "
                            f"and re-run precompute_depth_hints.py (it recomputes missing files).") from None
    if size != offset + data_bytes:
        raise HintFileError(f"Depth hint {path} is corrupt ({size} bytes, its header promises "
                            f"{offset + data_bytes}). Re-run precompute_depth_hints.py (it "
                            f"recomputes corrupt files).")
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2 or dtype.kind != "f":
        raise HintFileError(f"Depth hint {path} has shape {shape} and dtype {dtype}; "
                            f"expected float (H, W) or (1, H, W). Re-run precompute_depth_hints.py.")
    return tuple(int(v) for v in shape)


def existing_hint_size(paths) -> Optional[tuple]:
    """(height, width) of the first of ``paths`` that is a readable hint file, else None."""
    for path in paths:
        if os.path.isfile(path):
            try:
                return tuple(read_hint_header(path))
            except HintFileError:
                continue
    return None


def check_hint_file(path: str, shape: Optional[tuple] = None, header_only: bool = False,
                    keep_hint: bool = False) -> HintCheck:
    """Check one hint file without raising -> HintCheck.

    Full check (default): it exists, loads (``load_hint``: float, (H, W) or (1, H, W), finite,
    non-negative) and, when ``shape`` (height, width) is given, has that size; coverage is the
    fraction of pixels with a hint. ``header_only``: existence, the .npy header, dtype, rank
    and file length only (``read_hint_header``): quick, as it reads no depths; values are then
    checked when the file is loaded."""
    if not os.path.exists(path):
        return HintCheck(path, "missing", f"{path} does not exist")
    hint = None
    try:
        if header_only:
            found = read_hint_header(path)
        else:
            hint = load_hint(path)
            found = hint.shape
    except HintFileError as e:
        return HintCheck(path, "corrupt", str(e))
    if shape is not None and tuple(found) != tuple(shape):
        return HintCheck(path, "wrong size", f"{path} is {found[1]}x{found[0]}, not "
                                             f"{shape[1]}x{shape[0]}")
    coverage = None if hint is None else hint_coverage(hint)
    return HintCheck(path, "ok", coverage=coverage, hint=hint if keep_hint else None)


@dataclasses.dataclass
class HintVerification:
    """The hint files of a split, checked: counts per status, the problems, mean coverage."""
    total: int
    counts: dict  # status -> number of files
    problems: list  # HintCheck of every file that is not ok, in split order
    mean_coverage: Optional[float]  # over the good files (full checks only)
    header_only: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self, limit: int = 20) -> str:
        """A human-readable summary: one line of counts, then up to ``limit`` problems."""
        counts = ", ".join(f"{status} {self.counts.get(status, 0)}" for status in HINT_STATUSES)
        coverage = (f"; mean coverage {self.mean_coverage:.4f}" if self.mean_coverage is not None
                    else "")
        checked = "headers of " if self.header_only else ""
        lines = [f"checked {checked}{self.total} hint files: {counts}{coverage}"]
        for check in self.problems[:limit]:
            lines.append(f"  {check.status}: {check.message}")
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more")
        return "\n".join(lines)


def verify_hint_files(paths: Sequence[str], shape: Optional[tuple] = None,
                      header_only: bool = False, threads: int = 1,
                      progress: bool = False) -> HintVerification:
    """``check_hint_file`` on every path (``threads`` at a time; numpy reads release the GIL)
    -> HintVerification. Reads only; nothing is written or recomputed. ``progress`` shows a
    tqdm bar."""
    paths = list(paths)
    counts = {status: 0 for status in HINT_STATUSES}
    problems, coverages = [], []

    def check(path):
        return check_hint_file(path, shape, header_only)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        for result in tqdm(pool.map(check, paths), total=len(paths), unit="file",
                           desc="verify hints", disable=not progress, dynamic_ncols=True):
            counts[result.status] += 1
            if result.status != "ok":
                problems.append(result)
            elif result.coverage is not None:
                coverages.append(result.coverage)
    mean = float(np.mean(coverages)) if coverages else None
    return HintVerification(len(paths), counts, problems, mean, header_only)


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
