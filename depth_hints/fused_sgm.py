"""Fused SGM: the matcher bank, the horizontal warp and the per-pixel photometric pick.
Pure functions of images and disparities: no files, no datasets (hint_files.py holds the
format and units, precompute.py the run).

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

The bank's numDisparities can be scaled to a camera (``bank_disparities``) so that it spans
the same nominal depths as KITTI's bank at 1024 px (the precompute does so for SceneFlow).
"""
from __future__ import annotations

import dataclasses
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import cv2
import numpy as np
import torch

from depth_hints.hint_files import KITTI_FX_NORMALISED, disparity_to_hint_depth
from depth_hints.losses import photometric_error

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
# Rows, columns of a fusion tile on a GPU: bounds the pick's memory whatever the image size
# (about 25 float32 maps of N x 3 x 130 x 1026 at the peak: ~40 MB per candidate).
DEVICE_TILE = (128, 1024)


def fuse_candidates(target, other, disparities, side: str, strict: bool = False,
                    tile: Optional[tuple] = CPU_TILE, device=None,
                    skip_tied: Optional[bool] = None):
    """Per-pixel photometric pick among candidate disparities.

    target, other: [H,W,3] float in [0, 1] (numpy or torch); disparities [N,H,W] pixels in the
    target frame (<= 0 = none). For each candidate the other view is warped into the target
    (``warp_horizontal``) and scored with ``losses.photometric_error``; the lowest error wins
    (ties: the earlier candidate). ``strict`` gives candidates without disparity an infinite
    error instead of letting their corner-pixel "warp" compete.
    ``tile`` (rows, columns) scores the image tile by tile, each with a 1-pixel halo (so the
    3x3 SSIM is exactly the whole image's) and only the candidates ``relevant_candidates``
    keeps there: the same pick for less work on CPU. None scores everything at once.
    ``skip_tied`` (default: on the CPU only) drops the tied candidates per tile; off, every
    tile scores every candidate (on a GPU: no host round trip per tile, memory bounded by the
    tile). Every choice gives the same pick.
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
    skip_tied = device.type == "cpu" if skip_tied is None else skip_tied
    relevant = relevant_candidates(disparities_np) if tile and skip_tied and n > 1 else None
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


def distinct_indices(skip_duplicates: bool, specs: Optional[Sequence[MatcherSpec]] = None) -> list:
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
    keep = distinct_indices(skip_duplicates, specs)
    disparity, winner = fuse_candidates(target_img.astype(np.float32) / 255.0,
                                        other_img.astype(np.float32) / 255.0,
                                        candidates[keep], side, strict=strict, tile=tile,
                                        device=device)
    winner = np.asarray(keep)[winner]
    depth = disparity_to_hint_depth(disparity.astype(np.float64), target_img.shape[1],
                                    fx_normalised)
    return HintResult(depth.astype(np.float32), disparity, winner, candidates)
