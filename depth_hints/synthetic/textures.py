"""Textures of the synthetic world: skimage images as mip pyramids, filtered sampling,
analytic box / periodic coverage and fractal noise."""
from __future__ import annotations

import functools
from typing import Dict, List, Tuple

import numpy as np


# ----------------------------------------------------------------------------
# Textures: loading, mip pyramids, filtered sampling, analytic coverage
# ----------------------------------------------------------------------------

_GRAY_IMAGES = ("brick", "grass", "gravel", "camera", "moon", "coins", "clock", "page", "cell")
_POSTER_IMAGES = ("chelsea", "coffee", "astronaut", "rocket", "immunohistochemistry",
                  "hubble_deep_field")


def _pow2_resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def _mip_pyramid(img: np.ndarray) -> List[np.ndarray]:
    levels = [np.ascontiguousarray(img, dtype=np.float32)]
    while min(levels[-1].shape[:2]) > 1:
        a = levels[-1]
        levels.append(0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]))
    return levels


@functools.lru_cache(maxsize=None)
def _image_textures() -> Tuple[Dict[str, List[np.ndarray]],
                               Dict[str, Tuple[List[np.ndarray], float]]]:
    """Bundled scikit-image pictures (no downloads) as seamless zero-mean gray
    textures and as RGB posters (pyramid, width/height aspect)."""
    import skimage.data

    gray = {}
    for name in _GRAY_IMAGES:
        try:
            a = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
        except Exception:       # pragma: no cover - only if a file is missing
            continue
        if a.ndim == 3:
            a = a[..., :3].mean(axis=2)
        s = min(a.shape)
        a = _pow2_resize(a[:s, :s], 256, 256)
        # Mirror tiling makes any picture seamless under wrap-around sampling.
        a = np.concatenate([a, a[:, ::-1]], axis=1)
        a = np.concatenate([a, a[::-1, :]], axis=0)
        a = (a - a.mean()) / (a.std() + 1e-6)
        gray[name] = _mip_pyramid(np.clip(a, -2.5, 2.5))
    posters = {}
    for name in _POSTER_IMAGES:
        try:
            a = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)[..., :3] / 255.0
        except Exception:       # pragma: no cover
            continue
        aspect = a.shape[1] / a.shape[0]
        posters[name] = (_mip_pyramid(_pow2_resize(a, 256, 256)), aspect)
    return gray, posters


@functools.lru_cache(maxsize=None)
def _text_texture() -> List[np.ndarray]:
    import skimage.data
    a = np.asarray(skimage.data.text(), dtype=np.float32) / 255.0
    return _mip_pyramid(_pow2_resize(a, 128, 256))


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray, wrap: bool) -> np.ndarray:
    h, w = img.shape[:2]
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = (x - x0).astype(np.float32)
    fy = (y - y0).astype(np.float32)
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    if wrap:
        x0 %= w
        y0 %= h
        x1 = (x0 + 1) % w
        y1 = (y0 + 1) % h
    else:
        x1 = np.clip(x0 + 1, 0, w - 1)
        y1 = np.clip(y0 + 1, 0, h - 1)
        x0 = np.clip(x0, 0, w - 1)
        y0 = np.clip(y0, 0, h - 1)
    if img.ndim == 3:
        fx = fx[:, None]
        fy = fy[:, None]
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bot = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bot * fy


def _sample(mips: List[np.ndarray], u: np.ndarray, v: np.ndarray, fp: np.ndarray,
            wrap: bool = True) -> np.ndarray:
    """Mip-mapped bilinear lookup; u, v and the footprint fp in level-0 texels."""
    n = u.shape[0]
    lvl = np.log2(np.maximum(fp, 1e-6)) + 0.5
    lvl = np.clip(np.floor(lvl), 0, len(mips) - 1).astype(np.int64)
    out = np.empty((n,) + mips[0].shape[2:], np.float32)
    for L in np.unique(lvl):
        sel = lvl == L
        s = 0.5 ** float(L)
        out[sel] = _bilinear(mips[L], u[sel] * s - 0.5, v[sel] * s - 0.5, wrap)
    return out


def _box_cov(x, lo, hi, fp):
    """Fraction of a box filter of width fp centred at x that lies in [lo, hi]."""
    a = np.maximum(x - 0.5 * fp, lo)
    b = np.minimum(x + 0.5 * fp, hi)
    return np.clip((b - a) / fp, 0.0, 1.0)


def _periodic_cov(x, period, lo, hi, fp):
    """Box-filtered coverage of the repeating interval [lo, hi] + k * period."""
    m = np.mod(x, period)
    c = _box_cov(m, lo, hi, fp) + _box_cov(m, lo - period, hi - period, fp) \
        + _box_cov(m, lo + period, hi + period, fp)
    duty = (hi - lo) / period
    k = np.clip(fp / period * 2.0 - 0.5, 0.0, 1.0)     # far away: fall back to the average
    return np.clip(c, 0.0, 1.0) * (1 - k) + duty * k


def _hash2(i, j):
    """Deterministic pseudo-random value in [0, 1) for integer lattice cells."""
    s = np.sin(i * 12.9898 + j * 78.233) * 43758.5453
    return s - np.floor(s)


def _fractal_noise(rng: np.random.Generator, size: int = 256, base: int = 4,
                   octaves: int = 5, persistence: float = 0.55,
                   stretch: Tuple[int, int] = (1, 1)) -> List[np.ndarray]:
    """Seamless value noise (zero mean, unit std) as a mip pyramid. ``stretch``
    multiplies the lattice frequency along (rows, cols) for streaky textures."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    acc = np.zeros((size, size), np.float32)
    amp = 1.0
    for k in range(octaves):
        gh = base * stretch[0] * 2 ** k
        gw = base * stretch[1] * 2 ** k
        if gh > size or gw > size:
            break
        g = rng.standard_normal((gh, gw)).astype(np.float32)
        acc += amp * _bilinear(g, (xx * gw / size).ravel(), (yy * gh / size).ravel(),
                               True).reshape(size, size)
        amp *= persistence
    acc = (acc - acc.mean()) / (acc.std() + 1e-6)
    return _mip_pyramid(np.clip(acc, -2.5, 2.5))
