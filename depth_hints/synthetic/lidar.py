"""A 64-beam LiDAR sweep of the synthetic world (velodyne frame, KITTI .bin points)."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .renderer import _aabb_distance, _albedo, _corners, _normals, _trace
from .scene import LIDAR_MAX_RANGE, World


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
