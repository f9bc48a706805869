"""Depth hints: the fused-SGM matcher bank, the per-pixel photometric pick, hint file I/O and
the precompute run.

Layout: ``<depth_hint_path>/<folder>/image_0{2,3}/<frame:010d>.npy`` holding depth in the
training's nominal units (baseline 0.1, normalised KITTI intrinsics), shape (H, W) or
(1, H, W), float32 or float16; 0 means no hint.

How a hint is made (Watson et al., ICCV 2019), for one target view and the other stereo view:
  1. a bank of 12 OpenCV StereoSGBM matchers (blockSize 1, 2, 3 x numDisparities 64, 96, 128,
     160) gives 12 candidate disparity maps in the target's frame; a right target is matched by
     mirroring both images (the mirrored right view plays the left one) and mirroring back;
  2. each candidate warps the other view into the target view. The views are rectified, so the
     warp is a horizontal resampling: a left target samples the right view at x - d, a right
     target the left view at x + d (bilinear, border clamp = grid_sample(padding_mode='border',
     align_corners=True) of backproject -> project with the stereo pose, see ``warp_horizontal``);
  3. per pixel the candidate with the lowest ``losses.photometric_error`` (the trainer's) wins,
     ties going to the earlier candidate, and its disparity becomes depth = 0.58 W * 0.1 / d.

A candidate without disparity (d <= 0) is not dropped by default: in the original its depth 0
projects to infinity on row 0, so its "warp" is the other view's top-left pixel (top-right for
a right target) everywhere. It still competes, and where it wins the pixel gets no hint (0).
On real pairs this filters ambiguous pixels. ``strict=True`` (--strict_candidates) gives those
pixels an infinite error instead.

Work skipped without changing a single hint:
  - OpenCV's SGBM uses a (2 * (blockSize // 2) + 1)^2 window, so blockSize 2 and 3 give
    identical maps: the blockSize 3 matchers are not run (``duplicate_block_sizes_identical``
    checks this once per process and falls back to all 12 if an OpenCV build disagrees);
  - a candidate whose 3x3 neighbourhood of disparities equals an earlier candidate's has the
    same error there and cannot win; on CPU the pick runs tile by tile on only the candidates
    that differ somewhere in the tile (``relevant_candidates``).

Images are read with PIL as RGB and resized with PIL's LANCZOS filter (the training loader's
resize); SGBM sees the resized uint8 images, the photometric pick the same images / 255.

SceneFlow (``--dataset sceneflow``): images from ``sceneflow_image_path`` (--sceneflow_pass),
the same fused SGM, hints in the same nominal convention with the sequence's own normalised
focal length: depth = fx_norm * W * 0.1 / d (fx_norm = 1050 / 960 for the 35 mm renders), the
depth the training's SceneFlow intrinsics and 0.1 stereo baseline expect. The bank's
numDisparities are scaled (``bank_disparities``) so that it spans the same nominal depths as
KITTI's bank at 1024 px: 128, 176, 240, 288 px for 35 mm renders matched at 960 px. --report
scores against the PFM ground truth.
"""
from __future__ import annotations

from depth_hints.errors import DepthHintsError
import dataclasses
import functools
import json
import multiprocessing
import os
import re
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import cv2
import numpy as np
import torch

from depth_hints import geometry, splits
from depth_hints.losses import photometric_error


class HintFileError(DepthHintsError, ValueError):
    """A missing, corrupt or wrongly shaped hint file; the message names the file."""


class PrecomputeError(DepthHintsError, ValueError):
    """A bad input to the precompute (split file, dataset); the message names the fix."""


SIDE_TO_CAMERA = {"l": "image_02", "r": "image_03"}
OTHER_SIDE = {"l": "r", "r": "l"}

# ----------------------------------------------------------------------------- hint file I/O

_TEMP_PATTERN = re.compile(r"^\d{10}\.npy\.tmp\d+$")


def hint_file_path(root: str, folder: str, frame_index: int, side: str) -> str:
    """Where the hint of one frame lives."""
    return os.path.join(root, folder, SIDE_TO_CAMERA[side], f"{frame_index:010d}.npy")


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
    """Write a hint atomically (temp file + rename) as (1, H, W), like the original release.

    The temporary name (``<frame>.npy.tmp<pid>``) never ends in .npy, so a run killed mid-write
    leaves no file that a reader could take for a hint."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    array = np.asarray(depth, dtype=dtype).reshape(1, *np.shape(depth)[-2:])
    try:
        with open(tmp, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def remove_stale_temporaries(directories, min_age_s: float = 60.0) -> int:
    """Delete ``<frame>.npy.tmp<pid>`` leftovers of killed runs older than ``min_age_s`` in the
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


def disparity_to_hint_depth(disparity_px, width: int, fx_normalised: float = KITTI_FX_NORMALISED):
    """Disparity in pixels at image width ``width`` -> hint depth (nominal baseline 0.1 units):
    depth = fx_normalised * width * 0.1 / d (0.58 on KITTI), 0 where d <= 0. numpy or torch."""
    return geometry.disparity_to_depth(disparity_px, hint_fx(width, fx_normalised),
                                       geometry.NOMINAL_BASELINE)


def hint_depth_to_disparity(depth, width: int, fx_normalised: float = KITTI_FX_NORMALISED):
    """Hint depth -> disparity in pixels at image width ``width``; 0 where depth <= 0."""
    return geometry.depth_to_disparity(depth, hint_fx(width, fx_normalised),
                                       geometry.NOMINAL_BASELINE)


# ----------------------------------------------------------------------------- matcher bank

BLOCK_SIZES = (1, 2, 3)
NUM_DISPARITIES = (64, 96, 128, 160)
SGBM_DISPARITY_SCALE = 16.0  # OpenCV returns fixed-point disparities x16


@dataclasses.dataclass(frozen=True)
class MatcherSpec:
    """One StereoSGBM configuration of the bank."""
    block_size: int
    num_disparities: int

    @property
    def name(self) -> str:
        return f"bs{self.block_size}_nd{self.num_disparities}"

    def create(self):
        """-> cv2.StereoSGBM with the Depth Hints parameters (mode: OpenCV's default)."""
        return cv2.StereoSGBM_create(minDisparity=0, numDisparities=self.num_disparities,
                                     blockSize=self.block_size, P1=4 * 9, P2=32 * 9,
                                     preFilterCap=63, uniquenessRatio=10,
                                     speckleWindowSize=100, speckleRange=16)


def sgbm_bank(num_disparities: Sequence[int] = NUM_DISPARITIES) -> tuple:
    """The matchers in candidate order: blockSize 1, 2, 3 (outer) x ``num_disparities``
    (inner; the paper's 64, 96, 128, 160 by default: 12 matchers). Ties in the pick go to the
    earlier one."""
    return tuple(MatcherSpec(b, n) for b in BLOCK_SIZES for n in num_disparities)


#: the image width the paper's bank was made for (KITTI hints are computed at 1024x320)
BANK_REFERENCE_WIDTH = 1024


def bank_disparities(width: int, fx_normalised: float) -> tuple:
    """numDisparities of a bank for images ``width`` px wide whose normalised focal length is
    ``fx_normalised``: each of 64, 96, 128, 160 times (fx_normalised * width) / (0.58 * 1024),
    rounded up to a multiple of 16 (OpenCV's requirement), kept in [16, the largest multiple
    of 16 below ``width``], duplicates dropped.

    Nominal depth is fx_normalised * width * 0.1 / d, so this bank reaches the same nominal
    depths as the paper's on KITTI at 1024 px (down to 0.37 units: 2 m on KITTI, 3.7 scene
    units on SceneFlow). SceneFlow 35 mm (fx_normalised 1050 / 960) at 960 px: 128, 176, 240,
    288; at 480 px: 64, 96, 128, 144. The KITTI precompute keeps the paper's bank at any width."""
    factor = fx_normalised * width / (KITTI_FX_NORMALISED * BANK_REFERENCE_WIDTH)
    cap = max(16, (width - 1) // 16 * 16)
    out = []
    for n in NUM_DISPARITIES:
        scaled = min(max(16, int(np.ceil(n * factor / 16.0 - 1e-9)) * 16), cap)
        if scaled not in out:
            out.append(scaled)
    return tuple(out)


def duplicate_sources(specs: Sequence[MatcherSpec]) -> list:
    """For each matcher, the index of an earlier one OpenCV computes identically (same
    numDisparities and blockSize // 2), else its own index."""
    sources = []
    for i, spec in enumerate(specs):
        source = i
        for j in range(i):
            other = specs[j]
            if (other.num_disparities == spec.num_disparities
                    and other.block_size // 2 == spec.block_size // 2):
                source = j
                break
        sources.append(source)
    return sources


def _self_check_pair(height: int = 48, width: int = 224):
    """A small deterministic textured stereo pair (two fronto-parallel layers)."""
    rng = np.random.default_rng(1234)
    texture = rng.integers(0, 256, size=(height, width + 40, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(texture, (3, 3), 0)
    left = texture[:, :width].copy()
    right = texture[:, 6:width + 6].copy()  # background at disparity 6
    right[12:36, 80:140] = texture[12:36, 97:157]  # a foreground block at disparity 17
    return left, right


@functools.lru_cache(maxsize=None)
def duplicate_block_sizes_identical() -> bool:
    """Whether this OpenCV build gives identical maps for matchers ``duplicate_sources`` pairs
    up (blockSize 2 and 3), checked once per process on a small textured pair."""
    left, right = _self_check_pair()
    specs = sgbm_bank()
    for i, source in enumerate(duplicate_sources(specs)):
        if source != i and not np.array_equal(specs[i].create().compute(left, right),
                                              specs[source].create().compute(left, right)):
            return False
    return True


def run_matchers(left: np.ndarray, right: np.ndarray, specs: Optional[Sequence[MatcherSpec]] = None,
                 skip_duplicates: bool = True, threads: int = 1) -> np.ndarray:
    """Run the matcher bank on a rectified pair.

    left, right: uint8 [H,W,3] (or [H,W]). Returns float32 [N,H,W] disparities of the left view
    in pixels, N = len(specs) (default the 12 of ``sgbm_bank``); <= 0 means no match. With
    ``skip_duplicates`` matchers identical to an earlier one are not run but copied.
    ``threads`` > 1 runs matchers concurrently (OpenCV releases the GIL)."""
    specs = tuple(specs) if specs is not None else sgbm_bank()
    left = np.ascontiguousarray(left)
    right = np.ascontiguousarray(right)
    sources = duplicate_sources(specs) if skip_duplicates else list(range(len(specs)))
    if skip_duplicates and not duplicate_block_sizes_identical():
        sources = list(range(len(specs)))
    to_run = sorted(set(sources))

    def compute(i):
        return specs[i].create().compute(left, right)

    if threads > 1 and len(to_run) > 1:
        # Longest first, so the pool does not end waiting on one big matcher.
        order = sorted(to_run, key=lambda i: -specs[i].num_disparities)
        with ThreadPoolExecutor(max_workers=min(threads, len(order))) as pool:
            raw = dict(zip(order, pool.map(compute, order)))
    else:
        raw = {i: compute(i) for i in to_run}
    out = np.empty((len(specs),) + left.shape[:2], dtype=np.float32)
    for i, source in enumerate(sources):
        np.divide(raw[source], SGBM_DISPARITY_SCALE, out=out[i], dtype=np.float32)
    return out


def match_view(target: np.ndarray, other: np.ndarray, side: str,
               specs: Optional[Sequence[MatcherSpec]] = None, skip_duplicates: bool = True,
               threads: int = 1) -> np.ndarray:
    """Candidate disparities [N,H,W] (pixels, float32) in the frame of ``target``.

    side 'l': target is the left view, matched directly. side 'r': both views are mirrored, the
    mirrored right view is matched as the left one, and the result is mirrored back."""
    if side == "l":
        return run_matchers(target, other, specs, skip_duplicates, threads)
    if side == "r":
        mirrored = run_matchers(target[:, ::-1], other[:, ::-1], specs, skip_duplicates, threads)
        return np.ascontiguousarray(mirrored[:, :, ::-1])
    raise ValueError(f"stereo side must be 'l' or 'r', got {side!r}")


# ----------------------------------------------------------------------------- warp and pick

def _neighbour_pairs(other: torch.Tensor) -> torch.Tensor:
    """The table the warp gathers from: other view [C,H,W] -> [H*W, 2C], each pixel's colour
    followed by its right neighbour's (the last column's neighbour is itself). One gather of a
    contiguous row yields both samples of a horizontal bilinear interpolation."""
    right = torch.cat([other[..., 1:], other[..., -1:]], -1)
    return torch.cat([other, right], 0).reshape(2 * other.shape[0], -1).t().contiguous()


def _warp_rows(pairs: torch.Tensor, width: int, disparity: torch.Tensor, row_start: int,
               side: str, col_start: int = 0) -> torch.Tensor:
    """Horizontal bilinear warp of the window at (row_start, col_start) of size [h, w].

    pairs: ``_neighbour_pairs`` of the whole other view (``width`` = W), disparity [N,h,w]
    -> [N,C,h,w] (contiguous)."""
    n, h, w = disparity.shape
    device = disparity.device
    x = torch.arange(col_start, col_start + w, device=device, dtype=disparity.dtype)
    xs = x - disparity if side == "l" else x + disparity
    xs = xs.clamp_(0, width - 1)
    x0 = xs.floor()
    frac = xs - x0
    rows = torch.arange(row_start, row_start + h, device=device).view(1, h, 1)
    index = rows * width + x0.long()
    # No disparity: depth 0 projects to infinity on row 0 -> the other view's corner pixel.
    invalid = disparity <= 0
    index = index.masked_fill(invalid, 0 if side == "l" else width - 1)
    frac = frac.masked_fill(invalid, 0.0)
    sampled = pairs[index]  # [N,h,w,2C]
    channels = pairs.shape[1] // 2
    warped = torch.lerp(sampled[..., :channels], sampled[..., channels:], frac.unsqueeze(-1))
    return warped.permute(0, 3, 1, 2).contiguous()


def warp_horizontal(other: torch.Tensor, disparity: torch.Tensor, side: str) -> torch.Tensor:
    """Synthesise the target view from the other stereo view by horizontal resampling.

    other [C,H,W] or [1,C,H,W] float; disparity [N,H,W] pixels in the target frame.
    Returns [N,C,H,W]: side 'l' samples other at (x - d, y), 'r' at (x + d, y), bilinear with
    border clamping; where d <= 0 the other view's pixel (row 0, column 0) for 'l' or
    (row 0, last column) for 'r'. Equals ``geometry.warp`` with depth f*b/d (0 where d <= 0)
    and the stereo pose, without the 3-D round trip."""
    other = other.reshape(other.shape[-3:])
    return _warp_rows(_neighbour_pairs(other), disparity.shape[-1], disparity.to(other.dtype),
                      0, side)


def relevant_candidates(disparities: np.ndarray) -> np.ndarray:
    """[N,H,W] disparities -> bool [N,H,W]: True where a candidate's 3x3 neighbourhood of
    disparities differs from that of every earlier candidate.

    A candidate's photometric error at a pixel depends only on its disparities in the 3x3
    neighbourhood, so where it is not relevant it ties with an earlier candidate, and the pick
    (ties to the earlier one) never needs it."""
    relevant = np.ones(disparities.shape, bool)
    for k in range(1, disparities.shape[0]):
        differs = disparities[k][None] != disparities[:k]  # [k,H,W]
        grown = differs.copy()
        grown[:, :, 1:] |= differs[:, :, :-1]
        grown[:, :, :-1] |= differs[:, :, 1:]
        window = grown.copy()
        window[:, 1:] |= grown[:, :-1]
        window[:, :-1] |= grown[:, 1:]
        relevant[k] = window.all(0)
    return relevant


# Rows, columns of a fusion tile on CPU: among the fastest of 16..64 x 64..512 at 1024x320
# (smaller tiles skip more tied candidates but pay more per-call overhead).
CPU_TILE = (32, 128)


def fuse_candidates(target, other, disparities, side: str, strict: bool = False,
                    tile: Optional[tuple] = CPU_TILE, device=None):
    """Per-pixel photometric pick among candidate disparities.

    target, other: [H,W,3] float in [0, 1] (numpy or torch); disparities [N,H,W] pixels in the
    target frame (<= 0 = none). For each candidate the other view is warped into the target
    (``warp_horizontal``) and scored with ``losses.photometric_error``; the lowest error wins
    (ties: the earlier candidate). ``strict`` gives candidates without disparity an infinite
    error instead of letting their corner-pixel "warp" compete.
    ``tile`` (rows, columns) scores the image tile by tile, each with a 1-pixel halo (so the
    3x3 SSIM is exactly the whole image's) and only the candidates ``relevant_candidates``
    keeps there: the same pick for less work on CPU. None scores everything at once (GPU).
    Returns (disparity [H,W] float32 numpy, 0 = no hint; winner [H,W] int64 numpy)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    disparities_np = np.ascontiguousarray(np.asarray(
        disparities.cpu() if isinstance(disparities, torch.Tensor) else disparities, np.float32))
    n, height, width = disparities_np.shape
    if tuple(target.shape[:2]) != (height, width) or tuple(other.shape[:2]) != (height, width):
        raise ValueError(f"images {tuple(target.shape)}, {tuple(other.shape)} and disparities "
                         f"{tuple(disparities_np.shape)} disagree in size")

    def to_chw(image):
        if isinstance(image, np.ndarray):
            image = np.ascontiguousarray(image)
        image = torch.as_tensor(image)
        return image.to(device, torch.float32).permute(2, 0, 1).contiguous()

    target = to_chw(target)  # [C,H,W]
    pairs = _neighbour_pairs(to_chw(other))
    disparity_t = torch.from_numpy(disparities_np).to(device)
    tile_rows, tile_cols = tile if tile else (height, width)
    relevant = relevant_candidates(disparities_np) if tile and n > 1 else None
    winner = torch.empty(height, width, dtype=torch.long, device=device)
    with torch.inference_mode():  # no autograd bookkeeping in the many small tile ops
        _pick_tiles(target, pairs, disparity_t, relevant, winner, side, strict, tile_rows, tile_cols)
    picked = disparity_t.gather(0, winner[None])[0]
    picked = torch.where(picked > 0, picked, torch.zeros_like(picked))
    return picked.cpu().numpy(), winner.cpu().numpy()


def _pick_tiles(target, pairs, disparity_t, relevant, winner, side, strict, tile_rows, tile_cols):
    """The tile loop of ``fuse_candidates``: writes each pixel's winning candidate index."""
    n, height, width = disparity_t.shape
    device = disparity_t.device
    for row in range(0, height, tile_rows):
        row_end = min(row + tile_rows, height)
        top, bottom = max(row - 1, 0), min(row_end + 1, height)
        for col in range(0, width, tile_cols):
            col_end = min(col + tile_cols, width)
            left, right = max(col - 1, 0), min(col_end + 1, width)
            if relevant is None:
                keep = torch.arange(n, device=device)
            else:
                keep_np = np.flatnonzero(relevant[:, row:row_end, col:col_end].any((1, 2)))
                if len(keep_np) == 1:  # only candidate 0 differs from the rest: it wins
                    winner[row:row_end, col:col_end] = int(keep_np[0])
                    continue
                keep = torch.from_numpy(keep_np).to(device)
            window = disparity_t[keep, top:bottom, left:right]
            warped = _warp_rows(pairs, width, window, top, side, left)
            target_window = target[None, :, top:bottom, left:right]  # broadcast over candidates
            error = photometric_error(warped, target_window)[:, 0]
            if strict:
                error = error.masked_fill(window <= 0, float("inf"))
            inner = error[:, row - top:row_end - top, col - left:col_end - left]
            # min(0).indices: the first minimum, like argmin, but much faster on CPU.
            winner[row:row_end, col:col_end] = keep[inner.min(0).indices]


def _distinct_indices(skip_duplicates: bool, specs: Optional[Sequence[MatcherSpec]] = None) -> list:
    """Candidates worth fusing: with ``skip_duplicates`` (and a build where they really are
    identical) those that are not copies of an earlier one; identical candidates never change
    the pick, as ties go to the earlier one. ``specs``: the bank (default ``sgbm_bank()``)."""
    sources = duplicate_sources(tuple(specs) if specs is not None else sgbm_bank())
    if not skip_duplicates or not duplicate_block_sizes_identical():
        return list(range(len(sources)))
    return [i for i, source in enumerate(sources) if source == i]


@dataclasses.dataclass
class HintResult:
    """One frame's hint: depth [H,W] float32 (0 = none), the winning disparity [H,W] (pixels),
    the winner's candidate index [H,W], and the candidate disparities [N,H,W]."""
    depth: np.ndarray
    disparity: np.ndarray
    winner: np.ndarray
    candidates: np.ndarray


def compute_hint(target_img: np.ndarray, other_img: np.ndarray, side: str, strict: bool = False,
                 skip_duplicates: bool = True, threads: int = 1, device=None,
                 tile: Optional[tuple] = CPU_TILE, specs: Optional[Sequence[MatcherSpec]] = None,
                 fx_normalised: float = KITTI_FX_NORMALISED) -> HintResult:
    """Fused-SGM depth hint of ``target_img`` given the other stereo view.

    target_img, other_img: uint8 [H,W,3] at hint resolution; side: the target's side ('l'/'r').
    specs: the matcher bank (default the paper's 12). Depth is in the training's units:
    fx_normalised * W * 0.1 / disparity (0.58 on KITTI)."""
    candidates = match_view(target_img, other_img, side, specs, skip_duplicates=skip_duplicates,
                            threads=threads)
    keep = _distinct_indices(skip_duplicates, specs)
    disparity, winner = fuse_candidates(target_img.astype(np.float32) / 255.0,
                                        other_img.astype(np.float32) / 255.0,
                                        candidates[keep], side, strict=strict, tile=tile,
                                        device=device)
    winner = np.asarray(keep)[winner]
    depth = disparity_to_hint_depth(disparity.astype(np.float64), target_img.shape[1],
                                    fx_normalised)
    return HintResult(depth.astype(np.float32), disparity, winner, candidates)


# ----------------------------------------------------------------------------- accuracy

def hint_coverage(depth: np.ndarray) -> float:
    """Fraction of pixels with a hint (> 0)."""
    return float((np.asarray(depth) > 0).mean())


def disparity_errors(disparity: np.ndarray, gt_disparity: np.ndarray) -> dict:
    """End-point error and bad-1 / bad-3 rates (|error| > 1 / 3 px, ``evaluation.
    disparity_metrics``) of a disparity map against ground truth, both [H,W] pixels, over
    pixels where both are > 0; plus ``coverage`` (the fraction of ground-truth pixels the map
    covers). Values are None without overlap."""
    from depth_hints.evaluation import disparity_metrics

    gt_valid = gt_disparity > 0
    valid = gt_valid & (disparity > 0)
    count = int(valid.sum())
    out = {"pixels": count, "coverage": float(valid.sum() / max(int(gt_valid.sum()), 1))}
    if count == 0:
        out.update(epe=None, bad1=None, bad3=None)
        return out
    epe, bad1, bad3 = disparity_metrics(disparity[valid], gt_disparity[valid])
    out.update(epe=epe, bad1=bad1, bad3=bad3)
    return out


SYNTHETIC_BASELINE_M = 0.54  # the synthetic world's (and KITTI's) real baseline


def _resize_disparity(gt: np.ndarray, height: int, width: int) -> np.ndarray:
    """Disparity [h,w] in pixels at width w -> [height,width] at ``width`` (nearest neighbour,
    values times width / w); 0 where not finite or <= 0."""
    gt = np.where(np.isfinite(gt), gt, 0).astype(np.float32)
    scale = width / gt.shape[1]
    gt = cv2.resize(gt, (width, height), interpolation=cv2.INTER_NEAREST) * scale
    return np.where(gt > 0, gt, 0).astype(np.float32)


def load_gt_disparity(data_path: str, gt_disparity_root: Optional[str], folder: str,
                      frame_index: int, side: str, height: int, width: int,
                      dataset: str = "kitti"):
    """Ground-truth disparity [height,width] in pixels at hint resolution, or (None, None).

    ``gt_disparity_root``: ``<root>/<folder>/image_0x/<frame>.npy`` disparities in pixels at the
    original image width (rescaled by width ratio). Otherwise, ``dataset`` 'sceneflow': the
    frame's PFM disparity (rescaled likewise); else the synthetic world's dense depth
    (``<data_path>/<folder>/proj_depth/groundtruth/image_0x/<frame>.png``, metres x 256):
    disparity = 0.58 * width * 0.54 / depth_m. Resized with nearest neighbour.
    Returns (gt [H,W] float32 or None, source name or None)."""
    if dataset == "sceneflow" and not gt_disparity_root:
        from datasets.sceneflow_dataset import read_sceneflow_disparity, sceneflow_disparity_path
        path = sceneflow_disparity_path(data_path, folder, frame_index, side)
        if not os.path.isfile(path):
            return None, None
        return _resize_disparity(read_sceneflow_disparity(path), height, width), "sceneflow_pfm"
    if gt_disparity_root:
        path = hint_file_path(gt_disparity_root, folder, frame_index, side)
        if not os.path.isfile(path):
            return None, None
        gt = np.load(path, allow_pickle=False).astype(np.float32)
        return _resize_disparity(gt.reshape(gt.shape[-2:]), height, width), "gt_disparity"
    from datasets.kitti_dataset import kitti_dense_depth_path, read_depth_png
    path = kitti_dense_depth_path(data_path, folder, frame_index, side)
    if not os.path.isfile(path):
        return None, None
    depth_m = cv2.resize(read_depth_png(path), (width, height), interpolation=cv2.INTER_NEAREST)
    gt = geometry.disparity_to_depth(depth_m.astype(np.float64), hint_fx(width),
                                     SYNTHETIC_BASELINE_M)
    return gt.astype(np.float32), "synthetic"


# ----------------------------------------------------------------------------- images

def load_image(path: str, height: int, width: int) -> np.ndarray:
    """An image as RGB uint8 [height,width,3], resized with PIL's LANCZOS (the training resize)."""
    from PIL import Image
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.LANCZOS)
        return np.asarray(image, dtype=np.uint8).copy()


def stereo_image_paths(data_path: str, sample, ext: str, dataset: str = "kitti",
                       sceneflow_pass: str = "clean"):
    """(target, other) image paths of a split sample in the KITTI raw layout, or with
    ``dataset`` 'sceneflow' in SceneFlow's (``sceneflow_pass`` frames; ``ext`` unused)."""
    sides = (sample.side, OTHER_SIDE[sample.side])
    if dataset == "sceneflow":
        from datasets.sceneflow_dataset import sceneflow_image_path
        return tuple(sceneflow_image_path(data_path, sample.folder, sample.frame_index, side,
                                          sceneflow_pass) for side in sides)
    from datasets.kitti_dataset import kitti_image_path  # here: datasets imports this module
    return tuple(kitti_image_path(data_path, sample.folder, sample.frame_index, side, ext)
                 for side in sides)


# ----------------------------------------------------------------------------- the run

@dataclasses.dataclass(frozen=True)
class FrameJob:
    """Everything a worker needs, read from the options once."""
    data_path: str
    save_path: str
    height: int
    width: int
    ext: str
    dtype: str
    strict: bool
    overwrite: bool
    report: bool
    gt_disparity: Optional[str]
    skip_duplicates: bool
    fuse: bool  # False: the worker stops after matching (the main process fuses on the GPU)
    dataset: str = "kitti"  # kitti (KITTI raw layout) or sceneflow
    sceneflow_pass: str = "clean"


def sample_camera(job: FrameJob, sample) -> tuple:
    """(normalised focal length fx / W, matcher bank) of a sample: KITTI's 0.58 and the paper's
    bank; on SceneFlow the sequence's focal length and ``bank_disparities`` at the hint width."""
    if job.dataset != "sceneflow":
        return KITTI_FX_NORMALISED, sgbm_bank()
    from datasets.sceneflow_dataset import sceneflow_normalised_intrinsics
    fx_normalised = float(sceneflow_normalised_intrinsics(sample.folder)[0, 0])
    return fx_normalised, sgbm_bank(bank_disparities(job.width, fx_normalised))


@dataclasses.dataclass
class FrameResult:
    """What happened to one frame."""
    index: int
    status: str  # computed | skipped | missing | failed
    coverage: Optional[float] = None
    replaced: bool = False  # an invalid existing file was recomputed
    missing: tuple = ()
    message: str = ""
    accuracy: Optional[dict] = None  # {"gt": source, "hint": {...}, "matchers": {name: {...}}}
    cpu_seconds: float = 0.0  # CPU time of the thread that did the frame (without GPU fusion)


@dataclasses.dataclass
class _Matched:
    """A frame matched in a worker, to be fused in the main process."""
    index: int
    target: np.ndarray
    other: np.ndarray
    candidates: np.ndarray
    replaced: bool
    cpu_seconds: float = 0.0


@dataclasses.dataclass
class PrecomputeSummary:
    """The outcome of a run; ``ok`` is False when any frame failed or lacked images."""
    total: int
    computed: int
    skipped: int
    replaced: int
    failed: list  # [(sample, message)] frames that failed for reasons other than missing images
    missing_images: list  # paths of missing input images
    missing_frames: int
    mean_coverage: Optional[float]
    seconds: float
    save_path: str
    report_path: Optional[str] = None
    skipped_duplicate_matchers: bool = True
    removed_temporaries: int = 0
    cpu_seconds_per_frame: Optional[float] = None  # mean over computed frames
    parallelism: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.missing_frames

    def to_dict(self) -> dict:
        """JSON-ready counts and timings (failed frames as 'folder frame side: message')."""
        return {"total": self.total, "computed": self.computed, "skipped": self.skipped,
                "replaced": self.replaced,
                "failed": [f"{s.folder} {s.frame_index} {s.side}: {m}" for s, m in self.failed],
                "missing_frames": self.missing_frames, "missing_images": self.missing_images,
                "mean_coverage": self.mean_coverage, "seconds": self.seconds,
                "cpu_seconds_per_frame": self.cpu_seconds_per_frame,
                "parallelism": self.parallelism,
                "skipped_duplicate_matchers": self.skipped_duplicate_matchers}

    def format(self) -> str:
        """A human-readable multi-line summary."""
        rate = ""
        if self.computed:
            rate = f"{self.seconds / self.computed:.3f} s/frame"
            if self.cpu_seconds_per_frame is not None:
                rate += f", {self.cpu_seconds_per_frame:.3f} CPU s/frame"
            rate += "; "
        lines = [f"Depth hints -> {self.save_path}: {self.total} frames in {self.seconds:.1f} s "
                 f"({self.parallelism})",
                 f"  computed {self.computed} ({rate}{self.replaced} corrupt or mismatched files "
                 f"replaced), skipped {self.skipped} existing, "
                 f"failed {len(self.failed) + self.missing_frames}"]
        if self.mean_coverage is not None:
            lines.append(f"  mean hint coverage {self.mean_coverage:.4f}")
        if self.removed_temporaries:
            lines.append(f"  removed {self.removed_temporaries} temporary files of an "
                         f"interrupted run")
        if self.missing_images:
            lines.append(f"  missing input images ({len(self.missing_images)}, "
                         f"{self.missing_frames} frames without a hint):")
            lines += [f"    {p}" for p in self.missing_images]
        if self.failed:
            lines.append(f"  failed frames ({len(self.failed)}):")
            lines += [f"    {s.folder} {s.frame_index} {s.side}: {m}" for s, m in self.failed]
        if self.report_path:
            lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


def default_filenames() -> str:
    """The default split file: splits/eigen_full/all_files.txt under the project."""
    return str(splits.PROJECT_SPLITS_DIR / "eigen_full" / "all_files.txt")


_SUPPORTED_DATASETS = ("kitti", "kitti_depth", "kitti_test", "sceneflow")  # kitti*: the KITTI raw layout
SCENEFLOW_SPLITS_HINT = "python scripts/make_sceneflow_splits.py --data_path <sceneflow root>"


def default_sceneflow_filenames() -> list:
    """SceneFlow's default lists: splits/sceneflow/train_files.txt and val_files.txt (those that
    exist), so that training and validation both find their hints."""
    folder = splits.PROJECT_SPLITS_DIR / "sceneflow"
    return [str(folder / name) for name in ("train_files.txt", "val_files.txt")
            if (folder / name).is_file()]


def _check_inputs(options) -> list:
    if options.dataset not in _SUPPORTED_DATASETS:
        raise PrecomputeError(f"--dataset {options.dataset}: hints are computed for the KITTI raw "
                              f"layout (--dataset kitti) and SceneFlow (--dataset sceneflow).")
    if options.num_workers < 0:
        raise PrecomputeError(f"--num_workers {options.num_workers}: must be >= 0 "
                              f"(0 = in-process).")
    if options.dataset == "sceneflow" and not options.filenames:
        filenames = default_sceneflow_filenames()
        if not filenames:
            raise PrecomputeError(f"--dataset sceneflow without --filenames reads "
                                  f"{splits.PROJECT_SPLITS_DIR / 'sceneflow'}/train_files.txt, which "
                                  f"does not exist: run `{SCENEFLOW_SPLITS_HINT}` or pass "
                                  f"--filenames <split file>.")
    else:
        filenames = [options.filenames or default_filenames()]
        if not os.path.isfile(filenames[0]):
            raise PrecomputeError(f"Split file {filenames[0]} does not exist: run "
                                  f"`{splits.FETCH_HINT}` or pass --filenames <split file>.")
    samples = [s for f in filenames for s in splits.read_split_file(f)]
    if options.dataset == "sceneflow":
        from datasets.sceneflow_dataset import SceneFlowError, split_folder
        for s in samples:
            try:
                split_folder(s.folder, f"{s.folder} {s.frame_index} {s.side}")
            except SceneFlowError as e:
                raise PrecomputeError(f"{e} (--dataset sceneflow, {', '.join(filenames)})") from None
    unique = list(dict.fromkeys(samples))  # a frame listed twice is computed once
    return unique


def _existing_hint(path: str, height: int, width: int):
    """(hint, None) for a valid existing file of the right size, (None, reason) otherwise,
    (None, None) when there is no file."""
    if not os.path.exists(path):
        return None, None
    try:
        hint = load_hint(path)
    except HintFileError as e:
        return None, str(e)
    if hint.shape != (height, width):
        return None, f"{path} is {hint.shape[1]}x{hint.shape[0]}, not {width}x{height}"
    return hint, None


def _accuracy(job: FrameJob, sample, disparity: np.ndarray, candidates=None, specs=None):
    try:
        gt, source = load_gt_disparity(job.data_path, job.gt_disparity, sample.folder,
                                       sample.frame_index, sample.side, job.height, job.width,
                                       job.dataset)
    except Exception as e:  # a bad ground-truth file spoils the report, not the hint
        return {"gt": None, "gt_error": f"{type(e).__name__}: {e}"}
    if gt is None:
        return None
    out = {"gt": source, "hint": disparity_errors(disparity, gt)}
    if candidates is not None:
        out["matchers"] = {spec.name: disparity_errors(candidates[i], gt)
                           for i, spec in enumerate(specs if specs is not None else sgbm_bank())}
    return out


def _finish_frame(job: FrameJob, sample, index: int, target, other, candidates, replaced: bool,
                  device=None) -> FrameResult:
    """Fuse matched candidates, write the hint atomically, score it."""
    fx_normalised, specs = sample_camera(job, sample)
    keep = _distinct_indices(job.skip_duplicates, specs)
    on_gpu = device is not None and torch.device(device).type == "cuda"
    disparity, _ = fuse_candidates(target.astype(np.float32) / 255.0,
                                   other.astype(np.float32) / 255.0, candidates[keep],
                                   sample.side, strict=job.strict, device=device,
                                   tile=None if on_gpu else CPU_TILE)
    depth = disparity_to_hint_depth(disparity.astype(np.float64), job.width,
                                    fx_normalised).astype(np.float32)
    path = hint_file_path(job.save_path, sample.folder, sample.frame_index, sample.side)
    save_hint(path, depth, job.dtype)
    accuracy = _accuracy(job, sample, disparity, candidates, specs) if job.report else None
    return FrameResult(index, "computed", hint_coverage(depth), replaced=replaced,
                       accuracy=accuracy)


def process_frame(job: FrameJob, index: int, sample, device=None):
    """Do one frame: skip it if a valid hint exists, else load, match, fuse and save it.

    Returns a FrameResult, or (``job.fuse`` False) a _Matched for the main process to fuse.
    Never raises for a frame's own problems: they come back as 'missing' / 'failed'."""
    cpu_start = time.thread_time()
    outcome = _process_frame(job, index, sample, device)
    outcome.cpu_seconds = time.thread_time() - cpu_start
    return outcome


def _process_frame(job: FrameJob, index: int, sample, device=None):
    path = hint_file_path(job.save_path, sample.folder, sample.frame_index, sample.side)
    try:
        replaced = False
        if not job.overwrite:
            hint, problem = _existing_hint(path, job.height, job.width)
            if hint is not None:
                accuracy = None
                if job.report:
                    fx_normalised, _ = sample_camera(job, sample)
                    accuracy = _accuracy(job, sample,
                                         hint_depth_to_disparity(hint, job.width, fx_normalised))
                return FrameResult(index, "skipped", hint_coverage(hint), accuracy=accuracy)
            replaced = problem is not None
        paths = stereo_image_paths(job.data_path, sample, job.ext, job.dataset, job.sceneflow_pass)
        missing = tuple(p for p in paths if not os.path.isfile(p))
        if missing:
            return FrameResult(index, "missing", missing=missing,
                               message="missing image " + ", ".join(missing))
        target, other = (load_image(p, job.height, job.width) for p in paths)
        candidates = match_view(target, other, sample.side, sample_camera(job, sample)[1],
                                skip_duplicates=job.skip_duplicates)
        if not job.fuse:
            return _Matched(index, target, other, candidates, replaced)
        return _finish_frame(job, sample, index, target, other, candidates, replaced, device)
    except Exception as e:  # one bad frame must not stop the others
        return FrameResult(index, "failed", message=f"{type(e).__name__}: {e}")


# Worker-process state, set once by the pool initializer.
_WORKER_JOB: Optional[FrameJob] = None
_WORKER_SAMPLES: Optional[list] = None


def _init_worker(job: FrameJob, samples: list) -> None:
    global _WORKER_JOB, _WORKER_SAMPLES
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the main process
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    _WORKER_JOB, _WORKER_SAMPLES = job, samples


def _worker_task(index: int):
    return process_frame(_WORKER_JOB, index, _WORKER_SAMPLES[index])


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _pool_context():
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has imported everything once.
        context.set_forkserver_preload(["depth_hints.hints", "datasets.kitti_dataset",
                                        "datasets.sceneflow_dataset"])
        return context
    return multiprocessing.get_context("spawn")


def _write_report(path: str, options, summary: PrecomputeSummary, samples, results) -> None:
    frames = []
    per_matcher: dict = {}
    hint_scores = []
    for sample, result in zip(samples, results):
        entry = {"folder": sample.folder, "frame_index": sample.frame_index, "side": sample.side,
                 "status": result.status if result else "not run",
                 "coverage": result.coverage if result else None}
        if result and result.message:
            entry["message"] = result.message
        if result and result.accuracy:
            entry.update(result.accuracy)
            if "hint" in result.accuracy:
                hint_scores.append(result.accuracy["hint"])
            for name, scores in result.accuracy.get("matchers", {}).items():
                per_matcher.setdefault(name, []).append(scores)
        frames.append(entry)

    def mean_of(scores):
        out = {}
        for key in ("epe", "bad1", "bad3", "coverage"):
            values = [s[key] for s in scores if s.get(key) is not None]
            out[key] = float(np.mean(values)) if values else None
        out["frames"] = len(scores)
        return out

    from depth_hints.options import to_json_dict
    report = {
        "summary": summary.to_dict(),
        "accuracy_mean": {"hint": mean_of(hint_scores),
                          "matchers": {name: mean_of(v) for name, v in per_matcher.items()}},
        "options": to_json_dict(options),
        "frames": frames,
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, path)


def _bounded_map(executor, tasks, window: int):
    """Run (fn, *args) tasks on ``executor`` with at most ``window`` pending; yield results in
    completion order."""
    from concurrent.futures import FIRST_COMPLETED, wait
    pending = set()
    try:
        for fn, *args in tasks:
            pending.add(executor.submit(fn, *args))
            if len(pending) >= window:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        for future in pending:
            future.cancel()


class _one_library_thread:
    """Within the block torch and OpenCV use one thread each (restored after): the frames run
    in parallel threads instead, and idle OpenMP threads spinning between frames would steal
    the cores the matchers need."""

    def __enter__(self):
        self.saved = torch.get_num_threads(), cv2.getNumThreads()
        torch.set_num_threads(1)
        cv2.setNumThreads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved[0])
        cv2.setNumThreads(self.saved[1])


def precompute(options, progress: bool = True, verbose: bool = True,
               threads: Optional[int] = None) -> PrecomputeSummary:
    """Compute the hints of every frame in ``options.filenames`` (PrecomputeOptions).

    Existing valid hints are skipped (unless --overwrite_saved_depths); truncated, corrupt or
    differently sized ones are recomputed. Each file is written by whoever computed it,
    atomically, so an interrupted run loses nothing finished. Frames with missing images or
    other errors are collected in the summary; the others complete.
    --num_workers 0 runs in this process, ``threads`` frames at a time (default: one per core;
    OpenCV and torch release the GIL); N > 0 uses N processes of one thread each, at most one
    per usable core. The fusion runs on CUDA when present (not --no_cuda): then worker
    processes only match and this process fuses."""
    start = time.time()
    samples = _check_inputs(options)
    from depth_hints.options import device_from
    device = device_from(options.no_cuda)
    in_process = options.num_workers == 0 or len(samples) == 1
    skip_duplicates = duplicate_block_sizes_identical()
    if not skip_duplicates:
        warnings.warn("OpenCV's StereoSGBM gives different maps for blockSize 2 and 3 here; "
                      "running all 12 matchers.")
    job = FrameJob(data_path=options.data_path, save_path=options.save_path,
                   height=options.height, width=options.width,
                   ext=".png" if options.png else ".jpg", dtype=options.dtype,
                   strict=options.strict_candidates, overwrite=options.overwrite_saved_depths,
                   report=bool(options.report), gt_disparity=options.gt_disparity,
                   skip_duplicates=skip_duplicates, fuse=in_process or device.type != "cuda",
                   dataset="sceneflow" if options.dataset == "sceneflow" else "kitti",
                   sceneflow_pass=options.sceneflow_pass)
    directories = sorted({os.path.dirname(hint_file_path(options.save_path, s.folder,
                                                         s.frame_index, s.side))
                          for s in samples})
    removed = remove_stale_temporaries(directories)

    from tqdm import tqdm
    results: list = [None] * len(samples)
    bar = tqdm(total=len(samples), unit="frame", desc="depth hints", disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    failures = 0

    def collect(outcome):
        nonlocal failures
        if isinstance(outcome, _Matched):
            sample = samples[outcome.index]
            try:
                cpu_seconds = outcome.cpu_seconds
                outcome = _finish_frame(job, sample, outcome.index, outcome.target, outcome.other,
                                        outcome.candidates, outcome.replaced, device=device)
                outcome.cpu_seconds = cpu_seconds
            except Exception as e:
                outcome = FrameResult(outcome.index, "failed", message=f"{type(e).__name__}: {e}")
        results[outcome.index] = outcome
        bar.update(1)
        if outcome.status in ("missing", "failed"):
            failures += 1
            bar.set_postfix(failed=failures)

    try:
        if in_process:
            threads = max(1, min(threads or usable_cores(), len(samples)))
            parallelism = f"in-process, {threads} thread{'s' * (threads > 1)}"
            with _one_library_thread(), ThreadPoolExecutor(threads) as executor:
                tasks = ((process_frame, job, index, sample, device)
                         for index, sample in enumerate(samples))
                for outcome in _bounded_map(executor, tasks, window=2 * threads):
                    collect(outcome)
        else:
            # More processes than cores only add memory: the work is CPU-bound.
            workers = min(options.num_workers, len(samples), usable_cores())
            parallelism = f"{workers} worker process{'es' * (workers > 1)}"
            if workers < options.num_workers:
                parallelism += f" (--num_workers {options.num_workers} capped to the cores)"
            context = _pool_context()
            with context.Pool(workers, initializer=_init_worker, initargs=(job, samples)) as pool:
                for outcome in pool.imap_unordered(_worker_task, range(len(samples)), chunksize=1):
                    collect(outcome)
    finally:
        bar.close()

    done = [r for r in results if r is not None]
    coverages = [r.coverage for r in done if r.coverage is not None]
    failed = [(samples[r.index], r.message) for r in done if r.status == "failed"]
    missing = list(dict.fromkeys(p for r in done for p in r.missing))
    cpu = [r.cpu_seconds for r in done if r.status == "computed"]
    summary = PrecomputeSummary(
        total=len(samples), computed=sum(r.status == "computed" for r in done),
        skipped=sum(r.status == "skipped" for r in done), replaced=sum(r.replaced for r in done),
        failed=failed, missing_images=missing,
        missing_frames=sum(r.status == "missing" for r in done),
        mean_coverage=float(np.mean(coverages)) if coverages else None,
        seconds=time.time() - start, save_path=options.save_path, report_path=options.report,
        skipped_duplicate_matchers=skip_duplicates, removed_temporaries=removed,
        cpu_seconds_per_frame=float(np.mean(cpu)) if cpu else None, parallelism=parallelism)
    if options.report:
        _write_report(options.report, options, summary, samples, results)
    if verbose:
        print(summary.format(), file=sys.stdout)
    return summary
