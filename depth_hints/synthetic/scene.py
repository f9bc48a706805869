"""The synthetic world: the KITTI-like rig and the procedural street scene (no rendering).

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

"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List

import numpy as np

from depth_hints import geometry

from .textures import _fractal_noise, _image_textures


# ----------------------------------------------------------------------------
# Rig constants
# ----------------------------------------------------------------------------

DATE = "2030_01_01"
# The generator's version, recorded with every world written: a folder of another version is
# not added to. 2: car paint mottled (PAINT_CONTRAST, PAINT_REFLECTION), the layout unchanged.
WORLD_VERSION = 2
NORMALISED_INTRINSICS = geometry.KITTI_NORMALISED_INTRINSICS  # fx/W, fy/H, cx/W, cy/H (KITTI's)
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
                _car(B, rng, xa, xb, z, z + L, small, noise[1])
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


# Car paint carries a faint mottling (grime, reflections of the street): a uniform body gives
# the photometric loss nothing to match, and real paint is never uniform. Its offset comes
# from the car's position, not from the random stream, so the world's layout is unchanged.
PAINT_TEXELS_PER_METRE = 40.0
PAINT_CONTRAST = 0.25    # relative: grime
PAINT_REFLECTION = 0.06  # absolute albedo: reflections


def _car(B: _Builder, rng, xa, xb, za, zb, cull, paint_tex: int = -1):
    tint = np.array(_CAR_TINTS[int(rng.integers(len(_CAR_TINTS)))]) * rng.uniform(0.85, 1.1)
    L = zb - za
    clear, body_top = 0.3, -1.05 - float(rng.uniform(-0.05, 0.1))
    B.box((xa, body_top, za), (xb, -clear, zb), _PAINT, tint, paint_tex, tscale=PAINT_TEXELS_PER_METRE,
          contrast=PAINT_CONTRAST, extra=(clear, xa, xb, body_top), cull=cull + 40,
          toff=((za * 37.0) % 256.0, (xa * 53.0) % 256.0))
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
