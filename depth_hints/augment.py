"""Augmentation on the training device: compact uint8 batches -> the keys the objective reads.

With ``--augment_on device`` (the default ``auto``) the loader hands over, per sample, the
images at the training size as uint8 (scale 0 only, the horizontal flip already applied
together with the intrinsics, the stereo sign and the hint) plus the colour-jitter parameters
it drew; ``build_inputs`` then makes, on the device:

  ("color", f, 0)                        float [B,3,H,W] in [0, 1], every frame f
  ("color_aug", f, 0)                    the same jittered, every frame the networks see
                                         (all but "s", which only the losses read)
  ("color", 0, s), s > 0 in ``scales``   frame 0's lower levels (the edge-aware smoothness)
  ("color", f, s), every f               the same for every frame, with ``v1_multiscale``

Lower levels are made as the PIL loader makes them: each level from the one above with PIL's
LANCZOS filter (its exact fixed-point coefficients) in two passes, horizontal then vertical,
rounded to 8 bits after each pass like PIL; as resampling matrices, so any device runs them.
They match PIL's bytes except where float32 summation lands on the other side of a rounding
tie (rare, one level). ``("color_aug", f, s)`` for s > 0 are not made: nothing reads them.

The jitter: brightness, contrast, saturation (PIL's ImageEnhance formulas: blends with black,
with the grey mean, with the greyscale image) and a hue rotation, in the sample's order, the
same for every frame of a sample. PIL truncates to uint8 after every operation and runs the
hue through 8-bit HSV; this runs in float32, so it differs from PIL by those roundings (bounds
in tests/test_augment.py). Pure functions of tensors; the trainer calls ``build_inputs``.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

#: the loader's compact keys (see datasets/README.md)
U8 = "color_u8"            # (U8, f): uint8 [B,3,H,W] at the training size, flipped if drawn
JITTER_ORDER = "color_aug_order"      # int64 [B,4]: op indices in application order
JITTER_FACTORS = "color_aug_factors"  # float64 [B,4]: brightness, contrast, saturation, hue
DO_JITTER = "do_color_aug"            # bool [B]
DO_FLIP = "do_flip"                   # bool [B] (already applied; for the record)
AUG_KEYS = (JITTER_ORDER, JITTER_FACTORS, DO_JITTER, DO_FLIP)

GREY = (0.299, 0.587, 0.114)  # PIL's RGB -> L weights (ITU-R 601-2 luma)
_PIL_PRECISION_BITS = 22      # PIL's fixed-point coefficient precision for 8-bit images


# -- LANCZOS as PIL computes it ----------------------------------------------------------------
def _lanczos(x: float) -> float:
    def sinc(v):
        return 1.0 if v == 0.0 else math.sin(math.pi * v) / (math.pi * v)
    return sinc(x) * sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0


@lru_cache(maxsize=64)
def pil_lanczos_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] float64 weights of PIL's LANCZOS resize along one axis, quantised to
    PIL's fixed-point coefficients (k / 2^22), so ``M @ x`` is PIL's sum before rounding."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 3.0 * filterscale
    matrix = np.zeros((out_size, in_size))
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        ss = 1.0 / filterscale
        weights = np.array([_lanczos((x - center + 0.5) * ss) for x in range(xmin, xmax)])
        total = weights.sum()
        if total != 0:
            weights = weights / total
        fixed = np.where(weights < 0, np.trunc(weights * 2 ** _PIL_PRECISION_BITS - 0.5),
                         np.trunc(weights * 2 ** _PIL_PRECISION_BITS + 0.5))
        matrix[xx, xmin:xmax] = fixed / 2 ** _PIL_PRECISION_BITS
    return matrix


@lru_cache(maxsize=64)
def _lanczos_tensor(in_size: int, out_size: int, device: torch.device, transposed: bool) -> torch.Tensor:
    """``pil_lanczos_matrix`` as float32 on ``device`` (made once per device, not per step)."""
    matrix = pil_lanczos_matrix(in_size, out_size)
    return torch.as_tensor(matrix.T if transposed else matrix, dtype=torch.float32, device=device).contiguous()


def _round_8bit(x: torch.Tensor) -> torch.Tensor:
    """PIL's (sum + 2^21) >> 22 then clip to [0, 255], on values in 0..255 units."""
    return torch.floor(x + 0.5).clamp_(0, 255)


def resize_lanczos(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[..., H, W] float in 0..255 units (integer valued) -> [..., height, width], as PIL's
    ``resize(LANCZOS)`` of an 8-bit image: horizontal pass, round, vertical pass, round."""
    in_h, in_w = image.shape[-2:]
    if in_w != width:
        image = _round_8bit(image @ _lanczos_tensor(in_w, width, image.device, True))
    if in_h != height:
        image = _round_8bit(_lanczos_tensor(in_h, height, image.device, False) @ image)
    return image


# -- colour jitter on float images [..., 3, H, W] in [0, 1] -------------------------------------
def _per_sample(factor: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return factor.reshape(factor.shape + (1,) * (x.dim() - factor.dim())).to(x.dtype)


def grey(x: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] -> [..., 1, H, W] luma with PIL's L weights."""
    r, g, b = x.unbind(-3)
    return (GREY[0] * r + GREY[1] * g + GREY[2] * b).unsqueeze(-3)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """x * factor, clipped (ImageEnhance.Brightness: a blend with black). factor [B]."""
    return (x * _per_sample(factor, x)).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """A blend with the image's mean grey level rounded to 8 bits (ImageEnhance.Contrast)."""
    mean = grey(x).mean(dim=(-3, -2, -1), keepdim=True)
    mean = torch.floor(mean * 255 + 0.5) / 255
    f = _per_sample(factor, x)
    return (mean + f * (x - mean)).clamp(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """A blend with the greyscale image (ImageEnhance.Color)."""
    g = grey(x)
    return (g + _per_sample(factor, x) * (x - g)).clamp(0, 1)


def adjust_hue(x: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """HSV hue rotated by int(hue * 255) / 255 turns (PIL's 8-bit step, as the loader's
    ``shift_hue`` applies it), hue [B] in [-0.5, 0.5]."""
    shift = _per_sample(torch.trunc(hue.double() * 255) / 255, x)  # [B,1,...,1]
    r, g, b = x.unbind(-3)
    maxc = x.amax(-3)
    minc = x.amin(-3)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    # hue in sixths of a turn; pixels with delta 0 have no hue (and are unchanged below: s = 0)
    h = torch.where(maxc == r, (g - b) / safe,
                    torch.where(maxc == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    s = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    h = torch.remainder(h + shift.squeeze(-3) * 6.0, 6.0)
    # back to RGB: channel n (R 5, G 3, B 1) = v - v s clamp(min(k, 4 - k), 0, 1), k = (n + h) mod 6
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).reshape(3, 1, 1)
    k = torch.remainder(n + h.unsqueeze(-3), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0, 1)
    v, vs = maxc.unsqueeze(-3), (maxc * s).unsqueeze(-3)
    return v - vs * ramp


#: in the order of the factors (and of the loader's order indices)
JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(x: torch.Tensor, order: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Per-sample jitter of x [B, ..., 3, H, W]: sample b gets JITTER_OPS[order[b, i]] with
    factors[b, order[b, i]] for i = 0..3. ``order`` on the CPU (groups samples without a device
    sync); ``factors`` [B,4] anywhere."""
    order = order.cpu()
    factors = factors.to(x.device)
    for position in range(order.shape[1]):
        ops = order[:, position]
        out = x.clone()
        for op in ops.unique().tolist():
            idx = torch.nonzero(ops == op).flatten().to(x.device)
            out[idx] = JITTER_OPS[op](x[idx], factors[idx, op])
        x = out
    return x


def resolve_augment_on(choice: str) -> str:
    """--augment_on -> the dataset's mode: 'auto' takes the device path."""
    return "cpu" if choice == "cpu" else "device"


# -- the batch ---------------------------------------------------------------------------------
def is_compact(batch: dict) -> bool:
    """True for a batch in the loader's compact form (uint8 images + augmentation parameters)."""
    return any(isinstance(k, tuple) and k[0] == U8 for k in batch)


def build_inputs(batch: dict, device, scales=(0, 1, 2, 3), v1_multiscale: bool = False,
                 channels_last: bool = False) -> dict:
    """Compact batch (any device) -> the objective's keys on ``device`` (see module doc).

    Other keys (intrinsics, stereo_T, hints, depth_gt) are moved as they are; the
    augmentation parameters are consumed. Frame 0's levels are always built for every scale in
    ``scales``; every frame's with ``v1_multiscale``."""
    frames = [k[1] for k in batch if isinstance(k, tuple) and k[0] == U8]
    out = {}
    for key, value in batch.items():
        if key in AUG_KEYS or (isinstance(key, tuple) and key[0] == U8):
            continue
        out[key] = value.to(device, non_blocking=True)
    colors = {f: batch[(U8, f)].to(device, non_blocking=True) for f in frames}
    jittered = batch[DO_JITTER].cpu().bool() if DO_JITTER in batch else torch.zeros(0, dtype=torch.bool)
    for f in frames:
        out[("color", f, 0)] = colors[f].float().div_(255)
    # the networks see frame 0 and the temporal frames; nothing reads the other view's color_aug
    seen = [f for f in frames if f != "s"]
    # jitter every frame of a sample together: stack frames as [B, F, 3, H, W]
    aug = {f: out[("color", f, 0)] for f in seen}
    if jittered.any():
        idx = torch.nonzero(jittered).flatten()
        stack = torch.stack([out[("color", f, 0)][idx.to(device)] for f in seen], 1)
        stack = color_jitter(stack, batch[JITTER_ORDER][idx], batch[JITTER_FACTORS][idx])
        for i, f in enumerate(seen):
            full = out[("color", f, 0)].clone()
            full[idx.to(device)] = stack[:, i]
            aug[f] = full
    for f in seen:
        value = aug[f]
        if channels_last:
            value = value.contiguous(memory_format=torch.channels_last)
        out[("color_aug", f, 0)] = value

    top = max(scales) if scales else 0
    for f in (frames if v1_multiscale else [0]):
        level = colors[f].float()
        height, width = level.shape[-2:]
        for s in range(1, top + 1):
            level = resize_lanczos(level, height // 2 ** s, width // 2 ** s)
            if s in scales:
                out[("color", f, s)] = level / 255
    return out
