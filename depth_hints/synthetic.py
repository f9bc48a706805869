"""A procedural stereo driving world, written to disk in the KITTI raw layout.

KITTI itself cannot be shipped with the project, so this module builds small
street scenes (textured road with lane markings, kerbs and pavements, building
facades with windows, parked cars, and many thin structures such as lamp
poles, sign posts, railings, bollards and tree trunks), renders them with a
vectorised numpy ray caster, and writes everything the real code paths
expect: rectified colour stereo pairs (``image_02`` / ``image_03``), a 64-beam
LiDAR sweep (``velodyne_points``), dense ground-truth depth in the layout of
the KITTI depth benchmark (``proj_depth/groundtruth``), a thin-structure label
(``thin_mask``), calibration text files and Eigen-style split lists.

Conventions
-----------
World frame: X right, Y down, Z forward (the road runs along +Z and its
surface is the plane Y = 0).  Camera frames use the usual computer-vision
convention (x right, y down, z forward); the velodyne frame is x forward,
y left, z up.  Poses are 4x4 ``*_to_world`` matrices.  Rendered depth is the
z coordinate in the camera frame, in metres, with 0 where nothing was hit
(sky).  Pixel convention: the pixel with 0-based indices (col, row) looks along
K^-1 (col + o, row + o, 1).  :func:`render_view` defaults to o = 0; the KITTI
writer uses o = 1 (``KITTI_PIXEL_OFFSET``), the 1-based convention of KITTI's
``P_rect`` matrices, so that the usual ``round(u) - 1`` projection of velodyne
points (KITTI devkit, monodepth2, depth_hints.kitti) lands on the pixel that
sees the point.

The rig mirrors KITTI: rectified intrinsics fx = 0.58 W, fy = 1.92 H,
cx = 0.5 W, cy = 0.5 H; cam0 at the rectified origin, cam2 at x = -0.06 m,
cam3 at x = +0.48 m (so the colour baseline is exactly 0.54 m); the camera is
1.65 m above the road.

The same world is also written in SceneFlow's FlyingThings3D layout
(:func:`write_synthetic_sceneflow`): a 35 mm-like rig (fx = 1050 W / 960,
principal point at the centre), clean and final passes as PNG, and PFM
disparities fx * B / depth with B = 1 m = 1 SceneFlow scene unit.

Public entry points: :func:`make_world`, :func:`render_view`,
:func:`render_stereo_frame`, :func:`lidar_sweep`, :func:`camera_to_world`,
:func:`velo_to_world`, :func:`intrinsics`, :func:`projection_matrix` and the
writers :func:`write_synthetic_kitti` and :func:`write_synthetic_sceneflow`.
Nothing happens at import time.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "DATE", "BASELINE", "CAMERA_HEIGHT", "CAMERA_X", "NORMALISED_INTRINSICS",
    "VELO_TO_CAM_R", "VELO_TO_CAM_T", "MAX_GT_DEPTH", "KITTI_PIXEL_OFFSET", "World",
    "intrinsics", "projection_matrix", "velo_to_cam_matrix", "drive_name",
    "make_world", "camera_to_world", "velo_to_world", "render_view",
    "render_stereo_frame", "lidar_sweep", "cam_to_cam_text", "velo_to_cam_text",
    "write_synthetic_kitti", "SCENEFLOW_RIG_BASELINE", "sceneflow_intrinsics",
    "sceneflow_folders", "sceneflow_views", "sceneflow_final_pass", "write_synthetic_sceneflow",
]

# ----------------------------------------------------------------------------
# Rig constants
# ----------------------------------------------------------------------------

DATE = "2030_01_01"
NORMALISED_INTRINSICS = (0.58, 1.92, 0.5, 0.5)      # fx/W, fy/H, cx/W, cy/H
CAMERA_X = {0: 0.0, 1: 0.54, 2: -0.06, 3: 0.48}      # camera centres on rectified x (m)
BASELINE = CAMERA_X[3] - CAMERA_X[2]                  # 0.54 m between the colour cameras
CAMERA_HEIGHT = 1.65                                  # cam0 above the road surface (m)
VELO_TO_CAM_R = np.array([[0.0, -1.0, 0.0],
                          [0.0, 0.0, -1.0],
                          [1.0, 0.0, 0.0]])
VELO_TO_CAM_T = np.array([-0.004, -0.076, -0.272])
KITTI_PIXEL_OFFSET = 1.0     # 0-based pixel index i sits at image coordinate i + 1
MAX_GT_DEPTH = 255.0          # uint16 PNG depth*256 saturates just below 256 m
LIDAR_MAX_RANGE = 120.0
NEAR = 0.05

_BOX, _CYL, _SPH = 0, 1, 2
(_ROAD, _GROUND, _WALL, _PAINT, _GLASS, _RUBBER, _METAL, _BARK, _FOLIAGE,
 _SIGN, _POSTER, _PLAIN) = range(12)


def intrinsics(width: int, height: int) -> np.ndarray:
    """Rectified 3x3 camera matrix of the rig at the given image size."""
    fxn, fyn, cxn, cyn = NORMALISED_INTRINSICS
    return np.array([[fxn * width, 0.0, cxn * width],
                     [0.0, fyn * height, cyn * height],
                     [0.0, 0.0, 1.0]])


def projection_matrix(cam: int, width: int, height: int) -> np.ndarray:
    """KITTI ``P_rect_0i``: K [I | t] with t = -(centre of camera i)."""
    P = np.zeros((3, 4))
    K = intrinsics(width, height)
    P[:, :3] = K
    P[:, 3] = K @ np.array([-CAMERA_X[cam], 0.0, 0.0])
    return P


def velo_to_cam_matrix() -> np.ndarray:
    """4x4 transform taking velodyne coordinates to (unrectified = rectified) cam0."""
    T = np.eye(4)
    T[:3, :3] = VELO_TO_CAM_R
    T[:3, 3] = VELO_TO_CAM_T
    return T


def drive_name(drive_index: int) -> str:
    """Folder name of the drive with 0-based ``drive_index`` (numbered from 1)."""
    return "%s_drive_%04d_sync" % (DATE, drive_index + 1)


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


# ----------------------------------------------------------------------------
# The world
# ----------------------------------------------------------------------------

@dataclasses.dataclass(eq=False)
class World:
    """Primitives (structure of arrays), materials, lighting and camera path.

    kind: (N,) 0 box / 1 cylinder / 2 sphere.  params: (N, 8): box lo xyz,
    hi xyz; cylinder axis, centre on the two other axes (ascending axis
    order), radius, extent along the axis; sphere centre xyz, radius.
    aabb: (N, 6) bounds.  mat: material class, tint (N, 3), tex (N,) index
    into ``textures`` (-1 none), tscale texels per metre, toff texel offsets,
    contrast, extra (N, 6) per-material parameters.  thin: (N,) bool label.
    cull: (N,) distance beyond which a primitive is skipped when rendering.
    poses: (F, 4, 4) cam0_to_world for each frame; exposure: (F,) gains.
    """
    seed: int
    drive_index: int
    kind: np.ndarray
    params: np.ndarray
    aabb: np.ndarray
    mat: np.ndarray
    tint: np.ndarray
    tex: np.ndarray
    tscale: np.ndarray
    toff: np.ndarray
    contrast: np.ndarray
    extra: np.ndarray
    thin: np.ndarray
    cull: np.ndarray
    textures: List[List[np.ndarray]]
    posters: List[List[np.ndarray]]
    layout: Dict[str, float]
    sun: np.ndarray
    ambient: float
    sky_horizon: np.ndarray
    sky_zenith: np.ndarray
    fog_distance: float
    cloud_tex: int
    noise_std: float
    poses: np.ndarray
    exposure: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def num_primitives(self) -> int:
        return int(self.kind.shape[0])


class _Builder:
    def __init__(self):
        self.rows = []

    def _add(self, kind, params, aabb, mat, tint, tex, tscale, contrast, extra, thin, cull, toff):
        p = np.zeros(8)
        p[:len(params)] = params
        e = np.zeros(6)
        e[:len(extra)] = extra
        self.rows.append((kind, p, np.asarray(aabb, float), mat, np.asarray(tint, float), tex,
                          tscale, contrast, e, thin, cull, toff))

    def box(self, lo, hi, mat, tint, tex=-1, tscale=64.0, contrast=0.2, extra=(),
            thin=False, cull=np.inf, toff=(0.0, 0.0)):
        lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        self._add(_BOX, list(lo) + list(hi), list(lo) + list(hi), mat, tint, tex, tscale,
                  contrast, extra, thin, cull, toff)

    def cyl(self, axis, c, r, a0, a1, mat, tint, tex=-1, tscale=64.0, contrast=0.2,
            extra=(), thin=False, cull=np.inf, toff=(0.0, 0.0)):
        """Capped cylinder along ``axis``; ``c`` gives its centre on the other two
        axes in ascending order."""
        others = [a for a in range(3) if a != axis]
        lo = np.zeros(3)
        hi = np.zeros(3)
        lo[axis], hi[axis] = min(a0, a1), max(a0, a1)
        for k, a in enumerate(others):
            lo[a], hi[a] = c[k] - r, c[k] + r
        self._add(_CYL, [axis, c[0], c[1], r, min(a0, a1), max(a0, a1)],
                  list(lo) + list(hi), mat, tint, tex, tscale, contrast, extra, thin, cull, toff)

    def sphere(self, c, r, mat, tint, tex=-1, tscale=64.0, contrast=0.2, extra=(),
               thin=False, cull=np.inf, toff=(0.0, 0.0)):
        c = np.asarray(c, float)
        self._add(_SPH, list(c) + [r], list(c - r) + list(c + r), mat, tint, tex, tscale,
                  contrast, extra, thin, cull, toff)

    def arrays(self):
        cols = list(zip(*self.rows))
        return dict(kind=np.array(cols[0], np.int8), params=np.stack(cols[1]),
                    aabb=np.stack(cols[2]), mat=np.array(cols[3], np.int16),
                    tint=np.stack(cols[4]).astype(np.float32), tex=np.array(cols[5], np.int32),
                    tscale=np.array(cols[6], np.float32),
                    contrast=np.array(cols[7], np.float32),
                    extra=np.stack(cols[8]).astype(np.float32), thin=np.array(cols[9], bool),
                    cull=np.array(cols[10], float),
                    toff=np.array(cols[11], np.float32).reshape(-1, 2))


_WALL_TINTS = [(0.62, 0.34, 0.26), (0.80, 0.74, 0.62), (0.58, 0.58, 0.60), (0.86, 0.84, 0.80),
               (0.78, 0.62, 0.38), (0.50, 0.56, 0.64), (0.70, 0.50, 0.42), (0.46, 0.44, 0.40)]
_CAR_TINTS = [(0.75, 0.08, 0.06), (0.12, 0.22, 0.60), (0.88, 0.88, 0.89), (0.14, 0.14, 0.15),
              (0.60, 0.62, 0.65), (0.18, 0.45, 0.24), (0.88, 0.72, 0.18), (0.55, 0.35, 0.20),
              (0.92, 0.92, 0.90), (0.70, 0.72, 0.75)]
_METAL_TINTS = [(0.45, 0.46, 0.48), (0.22, 0.30, 0.24), (0.30, 0.30, 0.32), (0.60, 0.60, 0.58)]


def make_world(seed: int, drive_index: int, num_frames: int = 50) -> World:
    """Build the deterministic street of drive ``drive_index`` for ``seed``,
    long enough for ``num_frames`` frames of forward driving."""
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    if seed < 0 or drive_index < 0:
        raise ValueError("seed and drive_index must be non-negative")
    rng = np.random.default_rng([int(seed), int(drive_index), 20190])
    gray, posters = _image_textures()

    # --- textures of this drive -------------------------------------------
    textures: List[List[np.ndarray]] = []

    def add_tex(mips):
        textures.append(mips)
        return len(textures) - 1

    gray_ids = {name: add_tex(m) for name, m in gray.items()}
    noise = [add_tex(_fractal_noise(rng, base=int(rng.integers(2, 7)),
                                    persistence=float(rng.uniform(0.45, 0.65))))
             for _ in range(4)]
    bark = add_tex(_fractal_noise(rng, base=2, stretch=(1, 8), octaves=4))
    leaves = add_tex(_fractal_noise(rng, base=8, persistence=0.8, octaves=5))
    clouds = add_tex(_fractal_noise(rng, base=3, persistence=0.6, octaves=5))

    def pick(names_or_ids):
        return int(names_or_ids[int(rng.integers(len(names_or_ids)))])

    fine = add_tex(_fractal_noise(rng, base=32, octaves=3, persistence=0.6))
    asphalt_tex = pick([gray_ids.get("gravel", fine), fine])
    wall_tex_choices = [gray_ids.get("brick", noise[0]), noise[0], noise[3], fine,
                        gray_ids.get("gravel", noise[1]), gray_ids.get("moon", noise[3])]
    paving_tex = pick([gray_ids.get("brick", noise[0]), gray_ids.get("gravel", noise[1]),
                       noise[2]])
    grass_tex = gray_ids.get("grass", noise[3])
    poster_list = [p[0] for p in posters.values()]
    poster_aspect = [p[1] for p in posters.values()]

    # --- layout -----------------------------------------------------------
    road_half = float(rng.uniform(5.0, 6.2))
    park_w = 2.2
    lane_edge = road_half - park_w
    pave_w = [float(rng.uniform(2.5, 4.5)), float(rng.uniform(2.5, 4.5))]   # left, right
    kerb_h = 0.15
    speed = float(rng.uniform(0.5, 1.0))
    z_lo = -60.0
    z_hi = num_frames * speed * 1.1 + 320.0
    layout = dict(road_half=road_half, lane_edge=lane_edge, kerb_h=kerb_h,
                  pave_left=road_half + pave_w[0], pave_right=road_half + pave_w[1],
                  dash_len=3.0, dash_period=float(rng.uniform(8.0, 12.0)),
                  dash_phase=float(rng.uniform(0, 10)), line_w=0.15,
                  slab=float(rng.uniform(0.4, 0.8)),
                  z_lo=z_lo, z_hi=z_hi, speed=speed)

    B = _Builder()
    asphalt = np.array([0.30, 0.30, 0.31]) * rng.uniform(0.8, 1.15)
    # extra for road: patch texture id, patch scale, patch contrast
    B.box((-road_half, 0.0, z_lo), (road_half, 1.0, z_hi), _ROAD, asphalt, asphalt_tex,
          tscale=float(rng.uniform(90, 160)), contrast=float(rng.uniform(0.18, 0.3)),
          extra=(noise[0], 3.0, 0.12))
    pave_tint = np.array(_WALL_TINTS[int(rng.integers(len(_WALL_TINTS)))]) * 0.35 + 0.35
    grass_tint = np.array([0.28, 0.42, 0.16]) * rng.uniform(0.8, 1.2)
    for side in (-1, 1):
        x0 = side * road_half
        x1 = side * (road_half + 80.0)
        # extra: paving tint (rgb), grass texture, grass tint is stored in tint
        B.box((min(x0, x1), -kerb_h, z_lo), (max(x0, x1), 1.0, z_hi), _GROUND, grass_tint,
              paving_tex, tscale=float(rng.uniform(60, 110)), contrast=0.3,
              extra=(pave_tint[0], pave_tint[1], pave_tint[2], grass_tex, 40.0))
    # far backdrop: a wall of trees beyond the end of the street
    B.box((-400.0, -25.0, z_hi), (400.0, 1.0, z_hi + 5.0), _FOLIAGE,
          np.array([0.16, 0.26, 0.12]), leaves, tscale=20.0, contrast=0.5)

    small = 130.0   # small objects are culled beyond this range (LiDAR reaches 120 m)

    for si, side in enumerate((-1, 1)):
        pave_outer = road_half + pave_w[si]

        # buildings
        z = z_lo + float(rng.uniform(-10, 0))
        while z < z_hi:
            length = float(rng.uniform(8, 30))
            setback = float(rng.uniform(0, 1.5)) if rng.random() < 0.35 else 0.0
            height = float(rng.uniform(6, 22))
            x_front = pave_outer + setback
            lo = (min(side * x_front, side * (x_front + 14)), -height, z)
            hi = (max(side * x_front, side * (x_front + 14)), 0.5, z + length)
            tint = np.array(_WALL_TINTS[int(rng.integers(len(_WALL_TINTS)))]) \
                * rng.uniform(0.85, 1.1)
            floor_h = float(rng.uniform(2.9, 3.6))
            period = float(rng.uniform(2.2, 4.0))
            extra = (floor_h, period, period * rng.uniform(0.35, 0.6),
                     floor_h * rng.uniform(0.4, 0.6), float(rng.uniform(0, period)),
                     float(rng.integers(0, 3)))
            B.box(lo, hi, _WALL, tint, pick(wall_tex_choices), tscale=float(rng.uniform(40, 120)),
                  contrast=float(rng.uniform(0.08, 0.25)), extra=extra,
                  toff=tuple(rng.uniform(0, 512, 2)))
            if poster_list and rng.random() < 0.3 and length > 6:
                k = int(rng.integers(len(poster_list)))
                ph = float(rng.uniform(1.4, 2.4))
                pw = ph * poster_aspect[k]
                pz0 = z + float(rng.uniform(1.0, max(1.2, length - pw - 1.0)))
                py1 = -kerb_h - float(rng.uniform(1.0, 1.6))
                xf = side * x_front
                B.box((xf - side * 0.06, py1 - ph, pz0), (xf, py1, pz0 + pw), _POSTER,
                      (0.2, 0.2, 0.2), extra=(pz0, pz0 + pw, py1 - ph, py1, k, side))
            gap = float(rng.uniform(2, 9)) if rng.random() < 0.3 else 0.0
            if gap > 4 and rng.random() < 0.6:
                # a tree in the gap behind the pavement
                tx = side * (pave_outer + rng.uniform(1.5, 3.0))
                _tree(B, rng, tx, z + length + gap / 2, kerb_h, bark, leaves, small)
            z += length + gap

        # parked cars along the parking strip
        z = z_lo + float(rng.uniform(0, 6))
        while z < z_hi:
            if rng.random() < 0.55:
                L = float(rng.uniform(3.8, 4.8))
                Wc = float(rng.uniform(1.7, 1.9))
                xo = road_half - 0.25 - float(rng.uniform(0.0, 0.15))
                xa, xb = sorted((side * xo, side * (xo - Wc)))
                _car(B, rng, xa, xb, z, z + L, small)
                z += L + float(rng.uniform(0.8, 6.0))
            else:
                z += float(rng.uniform(4, 15))

        # street lamps
        z = z_lo + float(rng.uniform(0, 15))
        metal = np.array(_METAL_TINTS[int(rng.integers(len(_METAL_TINTS)))])
        while z < z_hi:
            r = float(rng.uniform(0.07, 0.13))
            H = float(rng.uniform(6, 9))
            x = side * (road_half + 0.45)
            B.cyl(1, (x, z), r, -H, -kerb_h, _METAL, metal, noise[1], 40, 0.15, thin=True,
                  cull=small)
            arm_end = x - side * float(rng.uniform(1.2, 2.2))
            B.cyl(0, (-H + 0.3, z), 0.045, min(x, arm_end), max(x, arm_end), _METAL, metal,
                  thin=True, cull=small)
            B.box((arm_end - 0.3, -H + 0.2, z - 0.14), (arm_end + 0.3, -H + 0.42, z + 0.14),
                  _METAL, (0.8, 0.8, 0.75), cull=small)
            z += float(rng.uniform(14, 28))

        # sign posts with a plate facing oncoming traffic
        z = z_lo + float(rng.uniform(0, 20))
        while z < z_hi:
            r = float(rng.uniform(0.03, 0.05))
            H = float(rng.uniform(2.4, 3.1))
            x = side * (road_half + 0.33)
            B.cyl(1, (x, z), r, -H - 0.1, -kerb_h, _METAL, (0.55, 0.56, 0.58), thin=True,
                  cull=small)
            stype = int(rng.integers(0, 4))
            hw = 0.6 if stype == 3 else float(rng.uniform(0.3, 0.45))
            hh = 0.25 if stype == 3 else hw
            cy = -H + hh
            B.box((x - hw, cy - hh, z - r - 0.03), (x + hw, cy + hh, z - r), _SIGN,
                  (0.5, 0.5, 0.5), extra=(x, cy, hw, hh, stype), cull=small)
            z += float(rng.uniform(15, 40))

        # railings: posts plus two horizontal rails
        z = z_lo + float(rng.uniform(0, 10))
        rail_tint = np.array(_METAL_TINTS[int(rng.integers(len(_METAL_TINTS)))])
        while z < z_hi:
            if rng.random() < 0.55:
                L = float(rng.uniform(8, 30))
                x = side * (road_half + 0.2)
                step = float(rng.uniform(1.5, 2.5))
                n_posts = max(2, int(L / step) + 1)
                for zp in np.linspace(z, z + L, n_posts):
                    B.box((x - 0.025, -kerb_h - 1.05, zp - 0.025), (x + 0.025, -kerb_h, zp + 0.025),
                          _METAL, rail_tint, thin=True, cull=small)
                for yr in (-kerb_h - 1.0, -kerb_h - 0.55):
                    B.cyl(2, (x, yr), 0.025, z - 0.05, z + L + 0.05, _METAL, rail_tint,
                          thin=True, cull=small)
                z += L + float(rng.uniform(3, 20))
            else:
                z += float(rng.uniform(5, 30))

        # bollards
        z = z_lo + float(rng.uniform(0, 30))
        while z < z_hi:
            n = int(rng.integers(3, 7))
            for k in range(n):
                B.cyl(1, (side * (road_half + 0.3), z + 1.5 * k), float(rng.uniform(0.06, 0.1)),
                      -kerb_h - 0.9, -kerb_h, _METAL, (0.25, 0.25, 0.27), thin=True, cull=small)
            z += 1.5 * n + float(rng.uniform(20, 60))

        # trees on the outer edge of the pavement
        z = z_lo + float(rng.uniform(0, 10))
        while z < z_hi:
            if rng.random() < 0.6:
                L = float(rng.uniform(15, 60))
                zt = z
                while zt < z + L:
                    tx = side * (pave_outer - rng.uniform(0.6, 1.0))
                    _tree(B, rng, tx, zt, kerb_h, bark, leaves, small)
                    zt += float(rng.uniform(6, 14))
                z += L
            else:
                z += float(rng.uniform(10, 40))

    arrays = B.arrays()

    # --- lighting and sky -------------------------------------------------
    el = math.radians(rng.uniform(25, 60))
    az = rng.uniform(-math.pi, math.pi)
    sun = np.array([math.cos(el) * math.sin(az), -math.sin(el), math.cos(el) * math.cos(az)])
    sky_zenith = np.array([0.30, 0.48, 0.80]) * rng.uniform(0.85, 1.1)
    sky_horizon = np.array([0.78, 0.84, 0.90]) * rng.uniform(0.9, 1.05)

    # --- camera path ------------------------------------------------------
    F = num_frames
    t = np.arange(F, dtype=np.float64)
    ph = rng.uniform(0, 2 * math.pi, 4)
    step = speed * (1.0 + 0.05 * np.sin(2 * math.pi * t / rng.uniform(20, 40) + ph[0]))
    zc = np.concatenate([[0.0], np.cumsum(step[:-1])])
    lane_centre = 0.5 * lane_edge
    wob_T = rng.uniform(30, 60)
    xc = lane_centre + 0.25 * np.sin(2 * math.pi * zc / wob_T + ph[1])
    dxdz = 0.25 * 2 * math.pi / wob_T * np.cos(2 * math.pi * zc / wob_T + ph[1])
    yaw = np.arctan(dxdz) + 0.008 * np.sin(2 * math.pi * t / 17.0 + ph[2])
    pitch = 0.004 * np.sin(2 * math.pi * t / 9.0 + ph[3])
    poses = np.tile(np.eye(4), (F, 1, 1))
    for k in range(F):
        cy_, sy_ = math.cos(yaw[k]), math.sin(yaw[k])
        cp_, sp_ = math.cos(pitch[k]), math.sin(pitch[k])
        Ry = np.array([[cy_, 0, sy_], [0, 1, 0], [-sy_, 0, cy_]])
        Rx = np.array([[1, 0, 0], [0, cp_, -sp_], [0, sp_, cp_]])
        poses[k, :3, :3] = Ry @ Rx
        poses[k, :3, 3] = (xc[k], -CAMERA_HEIGHT, zc[k])
    walk = np.cumsum(rng.normal(0, 0.03, F))
    exposure = np.exp(np.clip(walk - walk.mean(), -0.15, 0.15))

    return World(seed=int(seed), drive_index=int(drive_index), textures=textures,
                 posters=poster_list, layout=layout, sun=sun,
                 ambient=float(rng.uniform(0.42, 0.55)), sky_horizon=sky_horizon,
                 sky_zenith=sky_zenith, fog_distance=float(rng.uniform(350, 800)),
                 cloud_tex=clouds, noise_std=float(rng.uniform(1.0, 2.2)), poses=poses,
                 exposure=exposure, **arrays)


def _tree(B: _Builder, rng, x, z, kerb_h, bark, leaves, cull):
    r = float(rng.uniform(0.06, 0.16))
    h = float(rng.uniform(2.5, 4.0))
    R = float(rng.uniform(1.3, 2.6))
    B.cyl(1, (x, z), r, -kerb_h - h - 0.6 * R, -kerb_h, _BARK,
          np.array([0.36, 0.27, 0.19]) * rng.uniform(0.7, 1.2), bark, 50.0, 0.4,
          thin=True, cull=cull, toff=tuple(rng.uniform(0, 512, 2)))
    B.sphere((x, -kerb_h - h - 0.8 * R, z), R, _FOLIAGE,
             np.array([0.20, 0.36, 0.12]) * rng.uniform(0.75, 1.25), leaves,
             float(rng.uniform(15, 30)), 0.5, cull=cull + 20, toff=tuple(rng.uniform(0, 512, 2)))


def _car(B: _Builder, rng, xa, xb, za, zb, cull):
    tint = np.array(_CAR_TINTS[int(rng.integers(len(_CAR_TINTS)))]) * rng.uniform(0.85, 1.1)
    L = zb - za
    clear, body_top = 0.3, -1.05 - float(rng.uniform(-0.05, 0.1))
    B.box((xa, body_top, za), (xb, -clear, zb), _PAINT, tint, extra=(clear, xa, xb, body_top),
          cull=cull + 40)
    f0 = float(rng.uniform(0.2, 0.3)) * L
    f1 = float(rng.uniform(0.15, 0.25)) * L
    cab_top = body_top - float(rng.uniform(0.4, 0.55))
    B.box((xa + 0.1, cab_top, za + f1), (xb - 0.1, body_top, zb - f0), _GLASS, tint,
          extra=(0.5 * (za + f1 + zb - f0),), cull=cull + 40)
    rw = 0.32
    for zw in (za + 0.8, zb - 0.8):
        B.cyl(0, (-rw, zw), rw, xa + 0.03, xb - 0.03, _RUBBER, (0.05, 0.05, 0.05),
              extra=(-rw, zw, rw), cull=cull)


def camera_to_world(world: World, frame: int, cam: int = 2) -> np.ndarray:
    """4x4 pose of camera ``cam`` (0..3) at ``frame``."""
    T = np.eye(4)
    T[0, 3] = CAMERA_X[cam]
    return world.poses[frame] @ T


def velo_to_world(world: World, frame: int) -> np.ndarray:
    """4x4 pose of the velodyne at ``frame``."""
    return world.poses[frame] @ velo_to_cam_matrix()


# ----------------------------------------------------------------------------
# Ray casting
# ----------------------------------------------------------------------------

_EDGES = [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]


def _corners(aabb: np.ndarray) -> np.ndarray:
    idx = np.array([[(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)])
    lo = aabb[:, None, :3]
    hi = aabb[:, None, 3:]
    return np.where(idx[None] == 1, hi, lo)


def _aabb_distance(aabb: np.ndarray, o: np.ndarray) -> np.ndarray:
    d = np.maximum(np.maximum(aabb[:, :3] - o, o - aabb[:, 3:]), 0.0)
    return np.sqrt((d * d).sum(axis=1))


def _camera_windows(world: World, cam_to_world: np.ndarray, K: np.ndarray, height: int,
                    width: int, max_dist: float = np.inf):
    """Screen rectangles (rows and cols) that may contain each visible primitive,
    from the projection of its bounding box clipped to the near plane."""
    o = cam_to_world[:3, 3]
    R = cam_to_world[:3, :3]
    dist = _aabb_distance(world.aabb, o)
    keep = np.flatnonzero((dist < world.cull) & (dist < max_dist))
    if keep.size == 0:
        return []
    cc = (_corners(world.aabb[keep]) - o) @ R            # camera coordinates (n, 8, 3)
    z = cc[..., 2]
    pts = [cc]
    valid = [z >= NEAR]
    for i, j in _EDGES:
        zi, zj = z[:, i], z[:, j]
        crosses = (zi - NEAR) * (zj - NEAR) < 0
        s = np.where(crosses, (NEAR - zi) / np.where(crosses, zj - zi, 1.0), 0.0)
        pts.append((cc[:, i] + s[:, None] * (cc[:, j] - cc[:, i]))[:, None])
        valid.append(crosses[:, None])
    pts = np.concatenate(pts, axis=1)
    valid = np.concatenate(valid, axis=1)
    zz = np.where(valid, np.maximum(pts[..., 2], NEAR), 1.0)
    u = K[0, 0] * pts[..., 0] / zz + K[0, 2]
    v = K[1, 1] * pts[..., 1] / zz + K[1, 2]
    umin = np.where(valid, u, np.inf).min(axis=1)
    umax = np.where(valid, u, -np.inf).max(axis=1)
    vmin = np.where(valid, v, np.inf).min(axis=1)
    vmax = np.where(valid, v, -np.inf).max(axis=1)
    with np.errstate(invalid="ignore"):
        c0 = np.clip(np.floor(umin) - 1, 0, width)
        c1 = np.clip(np.ceil(umax) + 2, 0, width)
        r0 = np.clip(np.floor(vmin) - 1, 0, height)
        r1 = np.clip(np.ceil(vmax) + 2, 0, height)
    ok = valid.any(axis=1) & (c1 > c0) & (r1 > r0)
    return [(int(k), int(a), int(b), int(c), int(d))
            for k, a, b, c, d in zip(keep[ok], r0[ok], r1[ok], c0[ok], c1[ok])]


def _intersect(kind, p, o, D, I):
    """Entry distance along rays o + t d (inf on a miss) for one primitive."""
    if kind == _BOX:
        tn = tf = None
        for a in range(3):
            t1 = (p[a] - o[a]) * I[a]
            t2 = (p[a + 3] - o[a]) * I[a]
            lo_ = np.minimum(t1, t2)
            hi_ = np.maximum(t1, t2)
            tn = lo_ if tn is None else np.maximum(tn, lo_)
            tf = hi_ if tf is None else np.minimum(tf, hi_)
    elif kind == _CYL:
        a = int(p[0])
        q0, q1 = [k for k in range(3) if k != a]
        op, oq = o[q0] - p[1], o[q1] - p[2]
        dp, dq = D[q0], D[q1]
        a2 = dp * dp + dq * dq
        b = op * dp + oq * dq
        cr = op * dq - oq * dp
        disc = (p[3] * p[3]) * a2 - cr * cr
        sq = np.sqrt(np.maximum(disc, 0.0))
        inv = 1.0 / a2
        tin = np.where(disc >= 0, (-b - sq) * inv, np.inf)
        tout = (-b + sq) * inv
        t1 = (p[4] - o[a]) * I[a]
        t2 = (p[5] - o[a]) * I[a]
        tn = np.maximum(tin, np.minimum(t1, t2))
        tf = np.minimum(tout, np.maximum(t1, t2))
    else:
        ox, oy, oz = o[0] - p[0], o[1] - p[1], o[2] - p[2]
        dx, dy, dz = D
        a2 = dx * dx + dy * dy + dz * dz
        b = ox * dx + oy * dy + oz * dz
        cx = oy * dz - oz * dy
        cy = oz * dx - ox * dz
        cz = ox * dy - oy * dx
        disc = (p[3] * p[3]) * a2 - (cx * cx + cy * cy + cz * cz)
        sq = np.sqrt(np.maximum(disc, 0.0))
        tn = np.where(disc >= 0, (-b - sq) / a2, np.inf)
        tf = tn + 1.0
    return np.where((tn <= tf) & (tn > NEAR), tn, np.inf)


def _trace(world: World, o: np.ndarray, D: np.ndarray, windows) -> Tuple[np.ndarray, np.ndarray]:
    """Nearest hit of every ray of the grid D (h, w, 3) within its windows."""
    h, w = D.shape[:2]
    comps = [np.ascontiguousarray(D[..., a], dtype=np.float32) for a in range(3)]
    with np.errstate(divide="ignore"):
        invs = [np.float32(1.0) / c for c in comps]
    tbuf = np.full((h, w), np.inf, np.float32)
    ibuf = np.full((h, w), -1, np.int32)
    plist = world.params.tolist()
    kinds = world.kind.tolist()
    o = [float(x) for x in o]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for k, r0, r1, c0, c1 in windows:
            sl = (slice(r0, r1), slice(c0, c1))
            t = _intersect(kinds[k], plist[k], o, [c[sl] for c in comps],
                           [c[sl] for c in invs])
            tb = tbuf[sl]
            m = t < tb
            if m.any():
                tb[m] = t[m]
                ibuf[sl][m] = k
    return tbuf, ibuf


# ----------------------------------------------------------------------------
# Shading
# ----------------------------------------------------------------------------

def _normals(world: World, ids: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Outward unit normals at hit points P of primitives ids (dtype of P)."""
    n = np.zeros_like(P)
    kind = world.kind[ids]
    sel = np.flatnonzero(kind == _BOX)
    if sel.size:
        prm = world.params[ids[sel], :6].astype(P.dtype)
        q = P[sel]
        dlo = np.abs(q - prm[:, :3])
        dhi = np.abs(q - prm[:, 3:6])
        ax = np.argmin(np.minimum(dlo, dhi), axis=1)
        r = np.arange(sel.size)
        n[sel, ax] = np.where(dlo[r, ax] < dhi[r, ax], -1.0, 1.0)
    cyl = np.flatnonzero(kind == _CYL)
    if cyl.size:
        cyl_axis = world.params[ids[cyl], 0]
        for a in range(3):
            sel = cyl[cyl_axis == a]
            if not sel.size:
                continue
            q0, q1 = [k for k in range(3) if k != a]
            pp = world.params[ids[sel]].astype(P.dtype)
            e0 = P[sel, q0] - pp[:, 1]
            e1 = P[sel, q1] - pp[:, 2]
            rad = np.sqrt(e0 * e0 + e1 * e1) + 1e-12
            side_err = np.abs(rad - pp[:, 3])
            d0 = np.abs(P[sel, a] - pp[:, 4])
            d1 = np.abs(P[sel, a] - pp[:, 5])
            cap = np.minimum(d0, d1) < side_err
            n[sel, q0] = np.where(cap, 0.0, e0 / rad)
            n[sel, q1] = np.where(cap, 0.0, e1 / rad)
            n[sel, a] = np.where(cap, np.where(d0 < d1, -1.0, 1.0), 0.0)
    sel = np.flatnonzero(kind == _SPH)
    if sel.size:
        v = P[sel] - world.params[ids[sel], :3].astype(P.dtype)
        n[sel] = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12)
    return n


def _planar_uv(P, nrm):
    """Triplanar coordinates: the two world axes across the dominant normal axis."""
    ax = np.argmax(np.abs(nrm), axis=1)
    u = np.where(ax == 0, P[:, 2], P[:, 0])
    v = np.where(ax == 1, P[:, 2], P[:, 1])
    return u, v, ax


def _gray_lookup(world: World, tex_ids, u, v, fp, scale, toff):
    """Zero-mean texture values (0 where tex_ids < 0)."""
    g = np.zeros(u.shape[0], np.float32)
    for t in np.unique(tex_ids):
        if t < 0:
            continue
        s = tex_ids == t
        sc = scale[s]
        g[s] = _sample(world.textures[int(t)], u[s] * sc + toff[s, 0], v[s] * sc + toff[s, 1],
                       fp[s] * sc)
    return g


def _albedo(world: World, ids, P, nrm, fp) -> np.ndarray:
    n = ids.shape[0]
    out = np.empty((n, 3), np.float32)
    mats = world.mat[ids]
    u, v, ax = _planar_uv(P, nrm)
    for m in np.unique(mats):
        s = np.flatnonzero(mats == m)
        k = ids[s]
        out[s] = _MATERIALS[int(m)](world, k, P[s], nrm[s], fp[s], u[s], v[s], ax[s])
    return np.clip(out, 0.0, 1.0)


def _textured(world, k, P, nrm, fp, u, v, ax):
    g = _gray_lookup(world, world.tex[k], u, v, fp, world.tscale[k], world.toff[k])
    return world.tint[k] * (1.0 + world.contrast[k] * g)[:, None]


def _mat_road(world, k, P, nrm, fp, u, v, ax):
    base = _textured(world, k, P, nrm, fp, u, v, ax)
    ex = world.extra[k]
    patch = _gray_lookup(world, ex[:, 0].astype(np.int64), P[:, 0], P[:, 2], fp,
                         ex[:, 1].astype(np.float32), world.toff[k])
    base = base * (1.0 + ex[:, 2:3] * patch[:, None])
    L = world.layout
    lw = L["line_w"]
    x, z = P[:, 0], P[:, 2]
    fpx = np.maximum(fp, 1e-4)
    centre = _box_cov(x, -lw / 2, lw / 2, fpx) * _periodic_cov(
        z - L["dash_phase"], L["dash_period"], 0.0, L["dash_len"], fpx)
    edges = _box_cov(x, L["lane_edge"] - lw / 2, L["lane_edge"] + lw / 2, fpx) \
        + _box_cov(x, -L["lane_edge"] - lw / 2, -L["lane_edge"] + lw / 2, fpx)
    cov = np.clip(centre + edges, 0.0, 1.0)[:, None]
    paint = np.array([0.86, 0.86, 0.82], np.float32) \
        * (1.0 + 0.08 * (base.mean(1, keepdims=True) - 0.3))
    return base * (1 - cov) + paint * cov


def _mat_ground(world, k, P, nrm, fp, u, v, ax):
    L = world.layout
    ex = world.extra[k]
    top = ax == 1
    x = P[:, 0]
    outer = np.where(x < 0, L["pave_left"], L["pave_right"])
    ax_ = np.abs(x)
    g = _gray_lookup(world, world.tex[k], u, v, fp, world.tscale[k], world.toff[k])
    paving = ex[:, :3].astype(np.float32) * (1.0 + 0.25 * g)[:, None]
    slab = L["slab"]
    fpx = np.maximum(fp, 1e-4)
    joints = 1.0 - 0.35 * np.maximum(_periodic_cov(P[:, 0], slab, 0, 0.02, fpx),
                                     _periodic_cov(P[:, 2], slab, 0, 0.02, fpx))
    paving *= joints[:, None]
    gg = _gray_lookup(world, ex[:, 3].astype(np.int64), u, v, fp, ex[:, 4].astype(np.float32),
                      world.toff[k])
    grass = world.tint[k] * (1.0 + 0.45 * gg)[:, None]
    concrete = np.array([0.62, 0.62, 0.60], np.float32) * (1.0 + 0.15 * g)[:, None]
    kerb_w = _box_cov(ax_, L["road_half"] - 1.0, L["road_half"] + 0.2, fpx)[:, None]
    top_col = np.where((ax_ < outer)[:, None], paving * (1 - kerb_w) + concrete * kerb_w, grass)
    return np.where(top[:, None], top_col, concrete)


def _mat_wall(world, k, P, nrm, fp, u, v, ax):
    base = _textured(world, k, P, nrm, fp, u, v, ax)
    ex = world.extra[k]
    floor_h, period, ww, wh, off, variant = (ex[:, i] for i in range(6))
    fpx = np.maximum(fp, 1e-4)
    kerb = world.layout["kerb_h"]
    height = -P[:, 1] - kerb                        # above the pavement
    zz = P[:, 2] - off
    cz = _periodic_cov(zz, period, 0.0, ww, fpx)
    cy = _periodic_cov(height - 1.0, floor_h, 0.0, wh, fpx)
    fz = _periodic_cov(zz, period, -0.08, ww + 0.08, fpx)
    fy = _periodic_cov(height - 1.0, floor_h, -0.08, wh + 0.08, fpx)
    front = (ax == 0) & (height > 0.6)
    win = np.where(front, cz * cy, 0.0)[:, None]
    frame = np.clip(np.where(front, fz * fy, 0.0)[:, None] - win, 0.0, 1.0)
    cell = _hash2(np.floor(zz / period), np.floor((height - 1.0) / floor_h) + 7 * variant)
    glass = np.stack([0.10 + 0.18 * cell, 0.13 + 0.18 * cell, 0.18 + 0.16 * cell], 1)
    lit = (cell > 0.85)[:, None]
    glass = np.where(lit, np.array([0.75, 0.68, 0.45]), glass).astype(np.float32)
    frame_col = np.where((variant == 1)[:, None], np.array([0.15, 0.15, 0.15]),
                         np.array([0.85, 0.85, 0.82])).astype(np.float32)
    return base * (1 - win - frame) + glass * win + frame_col * frame


def _mat_paint(world, k, P, nrm, fp, u, v, ax):
    tint = world.tint[k]
    ex = world.extra[k]
    clear, xa, xb, top = ex[:, 0], ex[:, 1], ex[:, 2], ex[:, 3]
    fpx = np.maximum(fp, 1e-4)
    h = -P[:, 1]
    low = _box_cov(h, 0.0, clear + 0.16, fpx)[:, None]          # bumpers and sills
    col = tint * (1 - low) + (np.float32(0.3) * tint + 0.05) * low
    # lamps on the front and rear faces, at both corners near the top of the body
    band = _box_cov(h, -top - 0.28, -top - 0.1, fpx)
    corner = _box_cov(P[:, 0], xa + 0.08, xa + 0.35, fpx) \
        + _box_cov(P[:, 0], xb - 0.35, xb - 0.08, fpx)
    lamp = np.where(ax == 2, band * corner, 0.0)[:, None]
    lamp_col = np.where((nrm[:, 2] < 0)[:, None], np.array([0.75, 0.06, 0.05]),
                        np.array([0.9, 0.9, 0.85])).astype(np.float32)
    plate = np.where(ax == 2, _box_cov(h, clear + 0.2, clear + 0.32, fpx)
                     * _box_cov(P[:, 0], 0.5 * (xa + xb) - 0.26, 0.5 * (xa + xb) + 0.26, fpx), 0.0)
    plate = plate[:, None]
    col = col * (1 - lamp) + lamp_col * lamp
    return col * (1 - plate) + np.float32(0.85) * plate


def _mat_glass(world, k, P, nrm, fp, u, v, ax):
    roof = (ax == 1)[:, None]
    fpx = np.maximum(fp, 1e-4)
    centre = world.extra[k, 0]
    pillar = np.where(ax == 0, _box_cov(P[:, 2], centre - 0.06, centre + 0.06, fpx), 0.0)[:, None]
    g = _sample(world.textures[world.cloud_tex], u * 20.0, v * 20.0, fp * 20.0)
    glass = np.stack([0.11 + 0.04 * g, 0.14 + 0.04 * g, 0.18 + 0.05 * g], 1).astype(np.float32)
    side = glass * (1 - pillar) + world.tint[k] * pillar
    return np.where(roof, world.tint[k], side)


def _mat_rubber(world, k, P, nrm, fp, u, v, ax):
    ex = world.extra[k]
    a = int(world.params[k[0], 0]) if k.size else 0
    q0, q1 = [i for i in range(3) if i != a]
    r = np.sqrt((P[:, q0] - ex[:, 0]) ** 2 + (P[:, q1] - ex[:, 1]) ** 2)
    cap = np.abs(nrm[:, a]) > 0.5
    hub = cap & (r < 0.6 * ex[:, 2])
    col = np.where(hub[:, None], np.array([0.55, 0.55, 0.57]), np.array([0.05, 0.05, 0.05]))
    return col.astype(np.float32)


def _mat_sign(world, k, P, nrm, fp, u, v, ax):
    ex = world.extra[k]
    a = (P[:, 0] - ex[:, 0]) / ex[:, 2]
    b = (P[:, 1] - ex[:, 1]) / ex[:, 3]
    st = ex[:, 4].astype(np.int64)
    r = np.sqrt(a * a + b * b)
    grey = np.array([0.5, 0.5, 0.52])
    white = np.array([0.9, 0.9, 0.9])
    red = np.array([0.75, 0.08, 0.08])
    blue = np.array([0.08, 0.22, 0.62])
    yellow = np.array([0.92, 0.75, 0.1])
    black = np.array([0.05, 0.05, 0.05])
    col = np.tile(grey, (a.shape[0], 1))
    s0 = st == 0
    col[s0 & (r < 1.0)] = red
    col[s0 & (r < 0.75)] = white
    col[s0 & (r < 0.75) & (np.abs(b) < 0.12)] = red
    s1 = st == 1
    col[s1] = blue
    col[s1 & ((np.abs(a) > 0.88) | (np.abs(b) > 0.88))] = white
    arrow = (np.abs(a) < 0.14) & (b > -0.3) & (b < 0.7) | ((b <= -0.3) & (b > -0.75) &
                                                          (np.abs(a) < 0.45 * (b + 0.75) / 0.45))
    col[s1 & arrow] = white
    s2 = st == 2
    d = np.abs(a) + np.abs(b)
    col[s2 & (d < 1.0)] = black
    col[s2 & (d < 0.86)] = yellow
    col[s2 & (np.abs(a) < 0.09) & (((b > -0.45) & (b < 0.2)) | ((b > 0.3) & (b < 0.45)))] = black
    s3 = st == 3
    if s3.any():
        tt = _text_texture()
        h, w = tt[0].shape
        col[s3] = _sample(tt, (a[s3] * 0.5 + 0.5) * w, (b[s3] * 0.5 + 0.5) * h,
                          fp[s3] * w / (2 * ex[s3, 2]), wrap=False)[:, None] * white
    back = nrm[:, 2] > 0.5           # plates face -Z; their backs are bare metal
    col[back | (ax != 2)] = grey
    return col.astype(np.float32)


def _mat_poster(world, k, P, nrm, fp, u, v, ax):
    ex = world.extra[k]
    z0, z1, y0, y1, img, side = (ex[:, i] for i in range(6))
    uu = np.where(side > 0, (z1 - P[:, 2]) / (z1 - z0), (P[:, 2] - z0) / (z1 - z0))
    vv = (P[:, 1] - y0) / (y1 - y0)
    out = np.tile(np.array([0.12, 0.12, 0.12], np.float32), (k.shape[0], 1))
    face = ax == 0
    for i in np.unique(img[face]):
        s = face & (img == i)
        mips = world.posters[int(i)]
        h, w = mips[0].shape[:2]
        out[s] = _sample(mips, uu[s] * w, vv[s] * h, fp[s] * w / (z1[s] - z0[s]), wrap=False)
    return out


_MATERIALS: Dict[int, Callable] = {
    _ROAD: _mat_road, _GROUND: _mat_ground, _WALL: _mat_wall, _PAINT: _mat_paint,
    _GLASS: _mat_glass, _RUBBER: _mat_rubber, _METAL: _textured, _BARK: _textured,
    _FOLIAGE: _textured, _SIGN: _mat_sign, _POSTER: _mat_poster, _PLAIN: _textured,
}


def _sky(world: World, d: np.ndarray, pix_angle: float) -> np.ndarray:
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    el = -dn[:, 1]
    t = np.clip(el / 0.45, 0.0, 1.0) ** 0.6
    col = world.sky_horizon * (1 - t)[:, None] + world.sky_zenith * t[:, None]
    up = np.maximum(el, 0.03)
    cu = dn[:, 0] / up * 60.0
    cv = dn[:, 2] / up * 60.0
    fp = pix_angle / (up * up) * 60.0
    g = _sample(world.textures[world.cloud_tex], cu, cv, fp)
    cloud = np.clip(g * 0.6 - 0.1, 0.0, 1.0) * np.clip((el - 0.02) / 0.15, 0.0, 1.0)
    col = col * (1 - cloud[:, None]) + np.array([0.95, 0.95, 0.97]) * cloud[:, None]
    below = el < 0
    col[below] = world.sky_horizon * 0.8
    return col.astype(np.float32)


# ----------------------------------------------------------------------------
# Public rendering API
# ----------------------------------------------------------------------------

def _pixel_rays(K: np.ndarray, height: int, width: int, R: np.ndarray,
                offset: float) -> np.ndarray:
    u = (np.arange(width, dtype=np.float64) + offset - K[0, 2]) / K[0, 0]
    v = (np.arange(height, dtype=np.float64) + offset - K[1, 2]) / K[1, 1]
    d = np.empty((height, width, 3))
    d[..., 0] = u[None, :]
    d[..., 1] = v[:, None]
    d[..., 2] = 1.0
    return (d @ R.T).astype(np.float32)


def render_view(world: World, cam_to_world: np.ndarray, K: np.ndarray, height: int, width: int,
                exposure: float = 1.0, noise_std: float = 0.0,
                rng: Optional[np.random.Generator] = None, pixel_offset: float = 0.0
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one pinhole view.

    Returns ``(rgb, depth, thin)``: uint8 (H, W, 3) colour, float32 (H, W)
    camera-frame z depth in metres (0 where the ray escapes to the sky) and a
    bool (H, W) mask of pixels whose visible surface is a thin structure.
    ``exposure`` scales the radiance; ``noise_std`` (in 8-bit levels) adds
    Gaussian sensor noise drawn from ``rng``.  The pixel with 0-based indices
    (col, row) samples the ray through image point (col + pixel_offset,
    row + pixel_offset).
    """
    cam_to_world = np.asarray(cam_to_world, np.float64)
    K = np.asarray(K, np.float64)
    R = cam_to_world[:3, :3]
    o = cam_to_world[:3, 3]
    D = _pixel_rays(K, height, width, R, pixel_offset)
    windows = _camera_windows(world, cam_to_world, K, height, width)
    tbuf, ibuf = _trace(world, o, D, windows)

    flat_t = tbuf.ravel()
    flat_i = ibuf.ravel()
    Df = D.reshape(-1, 3)
    hit = np.flatnonzero(flat_i >= 0)
    miss = np.flatnonzero(flat_i < 0)
    col = np.empty((height * width, 3), np.float32)
    f = float(np.sqrt(K[0, 0] * K[1, 1]))
    if hit.size:
        # shading runs in float32: ample for positions within a few hundred metres
        ids = flat_i[hit]
        t = flat_t[hit]
        d = Df[hit]
        P = o.astype(np.float32) + t[:, None] * d
        nrm = _normals(world, ids, P)
        dn = d / np.linalg.norm(d, axis=1, keepdims=True)
        cos = np.abs((nrm * dn).sum(1))
        fp = t / np.float32(f) / np.sqrt(np.maximum(cos, np.float32(0.02)))
        alb = _albedo(world, ids, P, nrm, fp)
        lam = np.maximum(nrm @ world.sun.astype(np.float32), 0.0)
        skyl = 0.12 * np.maximum(-nrm[:, 1], 0.0)
        light = np.float32(world.ambient) + 0.75 * lam + skyl
        c = alb * light[:, None]
        fog = (1.0 - np.exp(-t / np.float32(world.fog_distance)))[:, None]
        col[hit] = c * (1 - fog) + world.sky_horizon.astype(np.float32) * fog
    if miss.size:
        col[miss] = _sky(world, Df[miss].astype(np.float64), 1.0 / f)
    img = col.reshape(height, width, 3) * np.float32(255.0 * exposure)
    if noise_std > 0:
        if rng is None:
            raise ValueError("noise_std > 0 needs an rng")
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise_std)
    rgb = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    depth = np.where(ibuf >= 0, tbuf, 0.0).astype(np.float32)
    thin = np.zeros((height, width), bool)
    thin[ibuf >= 0] = world.thin[ibuf[ibuf >= 0]]
    return rgb, depth, thin


def render_stereo_frame(world: World, frame: int, width: int, height: int,
                        cams: Sequence[int] = (2, 3), noisy: bool = True,
                        pixel_offset: float = KITTI_PIXEL_OFFSET):
    """Render cameras ``cams`` of one frame with the drive's exposure and noise,
    in KITTI's pixel convention by default.  Returns {cam: (rgb, depth, thin)}.
    The noise of each (seed, drive, frame, cam) is fixed, so rendering a subset
    gives the same pixels."""
    K = intrinsics(width, height)
    out = {}
    for cam in cams:
        rng = np.random.default_rng([world.seed, world.drive_index, int(frame),
                                     int(cam), 7])
        out[cam] = render_view(world, camera_to_world(world, frame, cam), K, height, width,
                               exposure=float(world.exposure[frame]),
                               noise_std=world.noise_std if noisy else 0.0, rng=rng,
                               pixel_offset=pixel_offset)
    return out


def _lidar_windows(world: World, v2w: np.ndarray, naz: int, max_range: float):
    o = v2w[:3, 3]
    R = v2w[:3, :3]
    dist = _aabb_distance(world.aabb, o)
    keep = np.flatnonzero(dist < max_range)
    if keep.size == 0:
        return []
    aabb = world.aabb[keep]
    cv = (_corners(aabb) - o) @ R                      # velodyne coordinates
    az = np.arctan2(cv[..., 1], cv[..., 0])
    ctr = cv.mean(axis=1)
    ac = np.arctan2(ctr[:, 1], ctr[:, 0])
    rel = np.mod(az - ac[:, None] + np.pi, 2 * np.pi) - np.pi
    lo = ac + rel.min(axis=1)
    hi = ac + rel.max(axis=1)
    inside = (aabb[:, 0] - 0.5 <= o[0]) & (o[0] <= aabb[:, 3] + 0.5) & \
             (aabb[:, 2] - 0.5 <= o[2]) & (o[2] <= aabb[:, 5] + 0.5)
    step = 2 * np.pi / naz
    j0 = np.floor((lo + np.pi) / step).astype(np.int64) - 1
    j1 = np.ceil((hi + np.pi) / step).astype(np.int64) + 2
    full = inside | (hi - lo > np.pi) | (j1 - j0 >= naz)
    wins = []
    for k, f_, a, b in zip(keep.tolist(), full.tolist(), j0.tolist(), j1.tolist()):
        if f_:
            wins.append((k, 0, naz))
            continue
        a0 = a % naz
        b0 = a0 + (b - a)
        if b0 <= naz:
            wins.append((k, a0, b0))
        else:
            wins.append((k, a0, naz))
            wins.append((k, 0, b0 - naz))
    return wins


def lidar_sweep(world: World, velo_to_world_T: np.ndarray, azimuth_step_deg: float = 0.2,
                num_beams: int = 64, elevation_deg: Tuple[float, float] = (-24.9, 2.0),
                max_range: float = LIDAR_MAX_RANGE, min_range: float = 2.0,
                range_noise_std: float = 0.0, rng: Optional[np.random.Generator] = None
                ) -> np.ndarray:
    """A 64-beam spinning LiDAR sweep from the pose ``velo_to_world_T``.

    Returns float32 (N, 4): x, y, z in the velodyne frame (x forward, y left,
    z up) and a reflectance in [0, 1] derived from the surface albedo.
    """
    v2w = np.asarray(velo_to_world_T, np.float64)
    naz = int(round(360.0 / azimuth_step_deg))
    el = np.deg2rad(np.linspace(elevation_deg[1], elevation_deg[0], num_beams))
    az = -np.pi + (np.arange(naz) + 0.5) * (2 * np.pi / naz)
    dv = np.empty((num_beams, naz, 3))
    dv[..., 0] = np.cos(el)[:, None] * np.cos(az)[None, :]
    dv[..., 1] = np.cos(el)[:, None] * np.sin(az)[None, :]
    dv[..., 2] = np.sin(el)[:, None]
    R = v2w[:3, :3]
    o = v2w[:3, 3]
    D = (dv @ R.T).astype(np.float32)
    wins = [(k, 0, num_beams, c0, c1) for k, c0, c1 in _lidar_windows(world, v2w, naz, max_range)]
    tbuf, ibuf = _trace(world, o, D, wins)
    ok = (ibuf >= 0) & (tbuf <= max_range) & (tbuf >= min_range)
    t = tbuf[ok].astype(np.float64)
    ids = ibuf[ok]
    d = dv[ok]
    Pw = o + t[:, None] * (d @ R.T)
    nrm = _normals(world, ids, Pw)
    refl = _albedo(world, ids, Pw, nrm, np.zeros(ids.shape[0], np.float32)).mean(axis=1)
    if range_noise_std > 0:
        if rng is None:
            raise ValueError("range_noise_std > 0 needs an rng")
        t = t + rng.normal(0.0, range_noise_std, t.shape)
    pts = np.empty((t.shape[0], 4), np.float32)
    pts[:, :3] = t[:, None] * d
    pts[:, 3] = np.clip(refl, 0.0, 1.0)
    return pts


# ----------------------------------------------------------------------------
# KITTI text files
# ----------------------------------------------------------------------------

def _fmt(values) -> str:
    return " ".join("%.9e" % (float(x) + 0.0) for x in np.asarray(values, np.float64).ravel())


def cam_to_cam_text(width: int, height: int) -> str:
    """``calib_cam_to_cam.txt`` of the rig at the given image size."""
    K = intrinsics(width, height)
    lines = ["calib_time: 01-Jan-2030 00:00:00", "corner_dist: %s" % _fmt([0.0995])]
    for cam in range(4):
        lines += [
            "S_%02d: %s" % (cam, _fmt([width, height])),
            "K_%02d: %s" % (cam, _fmt(K)),
            "D_%02d: %s" % (cam, _fmt(np.zeros(5))),
            "R_%02d: %s" % (cam, _fmt(np.eye(3))),
            "T_%02d: %s" % (cam, _fmt([-CAMERA_X[cam], 0.0, 0.0])),
            "S_rect_%02d: %s" % (cam, _fmt([width, height])),
            "R_rect_%02d: %s" % (cam, _fmt(np.eye(3))),
            "P_rect_%02d: %s" % (cam, _fmt(projection_matrix(cam, width, height))),
        ]
    return "\n".join(lines) + "\n"


def velo_to_cam_text() -> str:
    """``calib_velo_to_cam.txt`` (x_cam0 = R x_velo + T)."""
    return "\n".join([
        "calib_time: 01-Jan-2030 00:00:00",
        "R: %s" % _fmt(VELO_TO_CAM_R),
        "T: %s" % _fmt(VELO_TO_CAM_T),
        "delta_f: %s" % _fmt([0.0, 0.0]),
        "delta_c: %s" % _fmt([0.0, 0.0]),
    ]) + "\n"


def _timestamps_text(num_frames: int, offset_s: float = 0.0) -> str:
    lines = []
    for k in range(num_frames):
        ns = int(round((k * 0.1 + offset_s) * 1e9))
        sec, frac = divmod(ns, 10 ** 9)
        mins, sec = divmod(sec, 60)
        lines.append("2030-01-01 12:%02d:%02d.%09d" % (mins, sec, frac))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# Writer
# ----------------------------------------------------------------------------

def _atomic_write_bytes(path: str, data: bytes) -> None:
    d, name = os.path.split(path)
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, ".%s.%d.partial" % (name, os.getpid()))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_text_if_changed(path: str, text: str, overwrite: bool) -> bool:
    if not overwrite and os.path.isfile(path):
        with open(path, "r") as f:
            if f.read() == text:
                return False
    _atomic_write_bytes(path, text.encode())
    return True


def _png_bytes(img: np.ndarray) -> bytes:
    import cv2
    if img.ndim == 3:
        img = img[..., ::-1]                # RGB -> BGR for OpenCV
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:                              # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _frame_paths(out_dir: str, drive: str, frame: int) -> Dict[str, str]:
    base = os.path.join(out_dir, DATE, drive)
    name = "%010d" % frame
    return {
        "image_02": os.path.join(base, "image_02", "data", name + ".png"),
        "image_03": os.path.join(base, "image_03", "data", name + ".png"),
        "velodyne": os.path.join(base, "velodyne_points", "data", name + ".bin"),
        "gt_02": os.path.join(base, "proj_depth", "groundtruth", "image_02", name + ".png"),
        "gt_03": os.path.join(base, "proj_depth", "groundtruth", "image_03", name + ".png"),
        "thin_02": os.path.join(base, "thin_mask", "image_02", name + ".png"),
        "thin_03": os.path.join(base, "thin_mask", "image_03", name + ".png"),
    }


def _gt_png(depth: np.ndarray) -> np.ndarray:
    ok = (depth > 0) & (depth <= MAX_GT_DEPTH)
    return np.where(ok, np.rint(depth * 256.0), 0).astype(np.uint16)


def _split_lines(num_drives: int, frames_per_drive: int, seed: int):
    drives = [DATE + "/" + drive_name(d) for d in range(num_drives)]
    test_drive = drives[-1]
    train_drives = drives[:-1] if num_drives > 1 else drives
    inner = range(1, frames_per_drive - 1)
    pool = [(d, f, s) for d in train_drives for f in inner for s in "lr"]
    rng = np.random.default_rng([int(seed), 4242])
    order = rng.permutation(len(pool))
    n_val = max(1, len(pool) // 10) if len(pool) >= 2 else 0
    val = sorted(pool[i] for i in order[:n_val])
    train = sorted(pool[i] for i in order[n_val:])
    test = [(test_drive, f, "l") for f in inner]
    fmt = lambda rows: "".join("%s %d %s\n" % r for r in rows)
    return {"train": fmt(train), "val": fmt(val), "test": fmt(test)}, \
        {"train": len(train), "val": len(val), "test": len(test)}


def _check_world_arguments(count_name: str, count: int, frames_name: str, frames: int,
                           width: int, height: int, seed: int) -> None:
    """The checks both writers make; ValueError naming the argument."""
    if count < 1:
        raise ValueError(f"{count_name} must be >= 1")
    if frames < 3:
        raise ValueError(f"{frames_name} must be >= 3 (mono training needs neighbours)")
    if width < 8 or height < 8:
        raise ValueError("image too small")
    if seed < 0:
        raise ValueError("seed must be non-negative")


def _refuse_other_parameters(out_dir: str, cfg_path: str, config: dict) -> None:
    """A folder whose recorded config (``cfg_path``) differs from ``config`` is not added to."""
    if not os.path.isfile(cfg_path):
        return
    with open(cfg_path) as f:
        old = json.load(f)
    if any(old.get(k) != v for k, v in config.items()):
        raise ValueError("%s was generated with %s; pass overwrite=True (--overwrite) to "
                         "regenerate it with %s" % (out_dir, old, config))


def write_synthetic_kitti(out_dir: str = "data/synthetic_kitti", num_drives: int = 4,
                          frames_per_drive: int = 50, width: int = 1242, height: int = 375,
                          seed: int = 0, split_name: str = "synthetic", overwrite: bool = False,
                          show_progress: bool = False) -> Dict[str, object]:
    """Write the synthetic dataset in the KITTI raw layout and return a summary.

    Files that already exist are kept (each file is written to a temporary
    name and renamed, so an existing file is always complete) unless
    ``overwrite``.  Returns a dict with the output paths, counts of written and
    skipped files, the split sizes and the mean render time per view.
    """
    _check_world_arguments("num_drives", num_drives, "frames_per_drive", frames_per_drive,
                           width, height, seed)
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    config = {"format": "depth-hints synthetic KITTI raw", "version": 1, "seed": int(seed),
              "width": int(width), "height": int(height),
              "frames_per_drive": int(frames_per_drive)}
    cfg_path = os.path.join(out_dir, "synthetic_kitti.json")
    if not overwrite:
        _refuse_other_parameters(out_dir, cfg_path, config)
    written = 0
    skipped = 0
    written += _write_text_if_changed(cfg_path, json.dumps(config, indent=1, sort_keys=True) + "\n",
                                      overwrite)
    date_dir = os.path.join(out_dir, DATE)
    written += _write_text_if_changed(os.path.join(date_dir, "calib_cam_to_cam.txt"),
                                      cam_to_cam_text(width, height), overwrite)
    written += _write_text_if_changed(os.path.join(date_dir, "calib_velo_to_cam.txt"),
                                      velo_to_cam_text(), overwrite)

    bar = None
    total = num_drives * frames_per_drive
    if show_progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=total, unit="frame", desc="synthetic KITTI", dynamic_ncols=True)
        except ImportError:         # pragma: no cover
            bar = None
    render_s = 0.0
    views = 0
    lidar_s = 0.0
    sweeps = 0
    done = 0
    for d in range(num_drives):
        drive = drive_name(d)
        drive_dir = os.path.join(date_dir, drive)
        ts = _timestamps_text(frames_per_drive)
        for sub in ("image_02", "image_03", "velodyne_points"):
            written += _write_text_if_changed(os.path.join(drive_dir, sub, "timestamps.txt"), ts,
                                              overwrite)
        world = None
        for frame in range(frames_per_drive):
            paths = _frame_paths(out_dir, drive, frame)
            todo = {k for k, p in paths.items() if overwrite or not os.path.isfile(p)}
            skipped += len(paths) - len(todo)
            if todo:
                if world is None:
                    world = make_world(seed, d, frames_per_drive)
                for cam in (2, 3):
                    keys = {"image_%02d" % cam, "gt_%02d" % cam, "thin_%02d" % cam}
                    if not keys & todo:
                        continue
                    t0 = time.perf_counter()
                    rgb, depth, thin = render_stereo_frame(world, frame, width, height, (cam,))[cam]
                    render_s += time.perf_counter() - t0
                    views += 1
                    blobs = {"image_%02d" % cam: lambda: _png_bytes(rgb),
                             "gt_%02d" % cam: lambda: _png_bytes(_gt_png(depth)),
                             "thin_%02d" % cam: lambda: _png_bytes(thin.astype(np.uint8))}
                    for key in sorted(keys & todo):
                        _atomic_write_bytes(paths[key], blobs[key]())
                        written += 1
                if "velodyne" in todo:
                    t0 = time.perf_counter()
                    rng = np.random.default_rng([int(seed), d, frame, 64])
                    pts = lidar_sweep(world, velo_to_world(world, frame), range_noise_std=0.01,
                                      rng=rng)
                    lidar_s += time.perf_counter() - t0
                    sweeps += 1
                    _atomic_write_bytes(paths["velodyne"], pts.astype("<f4").tobytes())
                    written += 1
            done += 1
            if bar is not None:
                bar.update(1)
            elif show_progress and (done % 10 == 0 or done == total):
                print("synthetic KITTI: %d/%d frames" % (done, total), file=sys.stderr)
    if bar is not None:
        bar.close()

    split_dir = os.path.join(out_dir, "splits", split_name)
    texts, counts = _split_lines(num_drives, frames_per_drive, seed)
    for name, text in texts.items():
        written += _write_text_if_changed(os.path.join(split_dir, "%s_files.txt" % name), text,
                                          overwrite)
    readme = (
        "Synthetic KITTI-raw stereo driving data written by scripts/make_synthetic_kitti.py\n"
        "(depth_hints.synthetic).  Procedurally generated; contains no KITTI data.\n\n"
        "seed: %d\nimage size: %d x %d (W x H)\ndrives: %d x %d frames\n"
        "date folder: %s\n\n"
        "Lines are '<date>/<drive> <frame_index> <l|r>' (Eigen format).  train/val use the\n"
        "left and right views of drives 1..%d without their first and last frame (a random\n"
        "tenth of them is val); test holds the left views of the last drive\n"
        "(%s), again without its first and last frame.\n"
        "Counts: train %d, val %d, test %d.\n\n"
        "Per drive: image_02/ and image_03/ (rectified RGB PNG, baseline 0.54 m),\n"
        "velodyne_points/ (float32 x y z reflectance), proj_depth/groundtruth/image_0{2,3}/\n"
        "(uint16 PNG, depth in metres * 256, 0 = sky or beyond %g m) and\n"
        "thin_mask/image_0{2,3}/ (uint8 PNG, 1 where the visible surface is a thin structure).\n"
        "Pixel convention as KITTI: 0-based pixel (col, row) sees image point (col + 1, row + 1)\n"
        "of P_rect, i.e. velodyne points project to pixel round(u) - 1, round(v) - 1.\n"
        % (seed, width, height, num_drives, frames_per_drive, DATE, max(1, num_drives - 1),
           drive_name(num_drives - 1), counts["train"], counts["val"], counts["test"],
           MAX_GT_DEPTH))
    written += _write_text_if_changed(os.path.join(split_dir, "README"), readme, overwrite)

    return {
        "out_dir": out_dir,
        "date_dir": date_dir,
        "drives": [DATE + "/" + drive_name(d) for d in range(num_drives)],
        "split_dir": split_dir,
        "split_counts": counts,
        "num_frames": total,
        "files_written": int(written),
        "files_skipped": int(skipped),
        "views_rendered": views,
        "seconds_per_view": (render_s / views) if views else None,
        "seconds_per_sweep": (lidar_s / sweeps) if sweeps else None,
    }


# ----------------------------------------------------------------------------
# SceneFlow (FlyingThings3D) layout
# ----------------------------------------------------------------------------

#: focal length of SceneFlow's 35 mm renders at 960 px, as the loader assumes it
SCENEFLOW_FOCAL_PX_AT_960 = 1050.0
#: distance between the left and right SceneFlow cameras, in the world's metres.  SceneFlow's
#: loader takes its baseline to be 1 scene unit, so here one scene unit is one metre and the
#: written disparity fx * 1.0 / depth gives back the rendered depth through ``get_depth``.
#: With the 35 mm-like rig this puts the street at 3 .. 165 px of disparity at 960 px
#: (median about 55), the span of FlyingThings3D's.
SCENEFLOW_RIG_BASELINE = 1.0
#: SceneFlow's renders sample pixel centres: 0-based pixel (col, row) sees image point
#: (col + 0.5, row + 0.5) with the principal point at (W / 2, H / 2), i.e. FlyingThings3D's
#: cx = 479.5 in 0-based pixel coordinates at 960 px.
SCENEFLOW_PIXEL_OFFSET = 0.5
#: the final pass: the clean render blurred (Gaussian sigma in pixels at 960 px wide) plus
#: the world's sensor noise
SCENEFLOW_FINAL_BLUR_SIGMA = 1.0


def sceneflow_intrinsics(width: int, height: int) -> np.ndarray:
    """3x3 camera matrix of the synthetic SceneFlow rig at (width, height): fx = 1050 W / 960,
    fy = 1050 H / 540 (square pixels at 16:9, matching the loader's normalised intrinsics at
    any size), principal point (W / 2, H / 2)."""
    return np.array([[SCENEFLOW_FOCAL_PX_AT_960 * width / 960.0, 0.0, 0.5 * width],
                     [0.0, SCENEFLOW_FOCAL_PX_AT_960 * height / 540.0, 0.5 * height],
                     [0.0, 0.0, 1.0]])


def sceneflow_folders(num_sequences: int, num_test_sequences: Optional[int] = None):
    """(train folders, test folders) written for ``num_sequences`` sequences, e.g.
    'flyingthings3d/TRAIN/A/0000'.  By default a quarter of them (at least one, when there
    are two or more) are TEST sequences."""
    if num_test_sequences is None:
        num_test_sequences = max(1, num_sequences // 4) if num_sequences > 1 else 0
    if not 0 <= num_test_sequences <= num_sequences:
        raise ValueError("num_test_sequences must be in [0, num_sequences]")
    num_train = num_sequences - num_test_sequences
    train = ["flyingthings3d/TRAIN/A/%04d" % i for i in range(num_train)]
    test = ["flyingthings3d/TEST/A/%04d" % i for i in range(num_test_sequences)]
    return train, test


def sceneflow_views(world: World, frame: int, width: int, height: int) -> Dict[str, tuple]:
    """Render the left and right SceneFlow views of one frame without sensor noise.

    The left camera sits where the KITTI rig's cam 2 does; the right one
    SCENEFLOW_RIG_BASELINE further along the left camera's x axis (a rectified pair).
    Returns {'l': (rgb uint8 [H,W,3], disparity float32 [H,W]), 'r': ...}: disparity in
    pixels, fx * SCENEFLOW_RIG_BASELINE / depth, positive in both views, 0 on the sky."""
    K = sceneflow_intrinsics(width, height)
    left_to_world = camera_to_world(world, frame, 2)
    offset = np.eye(4)
    offset[0, 3] = SCENEFLOW_RIG_BASELINE
    poses = {"l": left_to_world, "r": left_to_world @ offset}
    out = {}
    for side, pose in poses.items():
        rgb, depth, _ = render_view(world, pose, K, height, width,
                                    exposure=float(world.exposure[frame]), noise_std=0.0,
                                    pixel_offset=SCENEFLOW_PIXEL_OFFSET)
        disparity = np.zeros_like(depth)
        hit = depth > 0
        disparity[hit] = K[0, 0] * SCENEFLOW_RIG_BASELINE / depth[hit]
        out[side] = (rgb, disparity.astype(np.float32))
    return out


def sceneflow_final_pass(rgb: np.ndarray, world: World, frame: int, side: str) -> np.ndarray:
    """The final-pass frame of a clean render: Gaussian blur (sigma
    SCENEFLOW_FINAL_BLUR_SIGMA * W / 960 px) plus the world's sensor noise, fixed per
    (seed, sequence, frame, side)."""
    import cv2
    sigma = SCENEFLOW_FINAL_BLUR_SIGMA * rgb.shape[1] / 960.0
    img = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), sigmaX=max(sigma, 0.3))
    rng = np.random.default_rng([world.seed, world.drive_index, int(frame), "lr".index(side), 11])
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(world.noise_std)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write_synthetic_sceneflow(out_dir: str = "data/synthetic_sceneflow", num_sequences: int = 4,
                              frames_per_sequence: int = 10, width: int = 960, height: int = 540,
                              seed: int = 0, num_test_sequences: Optional[int] = None,
                              passes: Sequence[str] = ("clean", "final"), overwrite: bool = False,
                              show_progress: bool = False) -> Dict[str, object]:
    """Write the procedural world in SceneFlow's FlyingThings3D layout; return a summary.

    ``<out_dir>/flyingthings3d/frames_{clean,final}pass/{TRAIN,TEST}/A/NNNN/{left,right}/XXXX.png``
    and ``<out_dir>/flyingthings3d/disparity/.../{left,right}/XXXX.pfm`` (frames numbered from 0).
    Each sequence is its own street (``make_world(seed, sequence index)``), the last
    ``num_test_sequences`` (default: a quarter, at least one of two or more) go to TEST.
    Rig: fx = 1050 W / 960 (35 mm), principal point at the centre, baseline
    SCENEFLOW_RIG_BASELINE = 1 scene unit = 1 m; disparity = fx * 1.0 / depth (0 on the sky,
    which SceneFlow's loader reads as no ground truth). Clean pass: noise-free renders; final
    pass: blurred and noisy (``sceneflow_final_pass``). Files are written atomically and
    existing ones kept unless ``overwrite``; a folder made with other parameters is refused.
    Split lists: ``datasets.sceneflow_dataset.make_sceneflow_splits`` (the script runs it)."""
    from datasets.sceneflow_dataset import PASSES, sceneflow_disparity_path, sceneflow_image_path
    from depth_hints.pfm import write_pfm

    _check_world_arguments("num_sequences", num_sequences, "frames_per_sequence",
                           frames_per_sequence, width, height, seed)
    passes = tuple(passes)
    if not passes or any(p not in PASSES for p in passes):
        raise ValueError("passes must be a non-empty subset of %s" % (PASSES,))
    train, test = sceneflow_folders(num_sequences, num_test_sequences)
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    config = {"format": "depth-hints synthetic SceneFlow (FlyingThings3D layout)", "version": 1,
              "seed": int(seed), "width": int(width), "height": int(height),
              "frames_per_sequence": int(frames_per_sequence), "baseline": SCENEFLOW_RIG_BASELINE,
              "focal_px": float(sceneflow_intrinsics(width, height)[0, 0]),
              "train_sequences": len(train), "test_sequences": len(test)}
    cfg_path = os.path.join(out_dir, "synthetic_sceneflow.json")
    if not overwrite:
        _refuse_other_parameters(out_dir, cfg_path, config)
    written = int(_write_text_if_changed(
        cfg_path, json.dumps(config, indent=1, sort_keys=True) + "\n", overwrite))
    skipped = 0
    render_s = 0.0
    views = 0
    total = num_sequences * frames_per_sequence
    bar = None
    if show_progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="frame", desc="synthetic SceneFlow", dynamic_ncols=True)
    for index, folder in enumerate(train + test):
        world = None
        for frame in range(frames_per_sequence):
            todo = {}
            for side in "lr":
                paths = [sceneflow_image_path(out_dir, folder, frame, side, p) for p in passes]
                paths.append(sceneflow_disparity_path(out_dir, folder, frame, side))
                missing = [p for p in paths if overwrite or not os.path.isfile(p)]
                skipped += len(paths) - len(missing)
                if missing:
                    todo[side] = set(missing)
            if todo:
                if world is None:
                    world = make_world(seed, index, frames_per_sequence)
                t0 = time.perf_counter()
                rendered = sceneflow_views(world, frame, width, height)
                render_s += time.perf_counter() - t0
                views += 2
                for side, missing in todo.items():
                    rgb, disparity = rendered[side]
                    for p in passes:
                        path = sceneflow_image_path(out_dir, folder, frame, side, p)
                        if path in missing:
                            img = rgb if p == "clean" else sceneflow_final_pass(rgb, world, frame, side)
                            _atomic_write_bytes(path, _png_bytes(img))
                            written += 1
                    path = sceneflow_disparity_path(out_dir, folder, frame, side)
                    if path in missing:
                        write_pfm(path, disparity)
                        written += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return {
        "out_dir": out_dir,
        "train_folders": train,
        "test_folders": test,
        "passes": list(passes),
        "num_frames": total,
        "files_written": int(written),
        "files_skipped": int(skipped),
        "views_rendered": views,
        "seconds_per_view": (render_s / views) if views else None,
        "focal_px": config["focal_px"],
        "baseline": SCENEFLOW_RIG_BASELINE,
    }
