"""The synthetic world's vectorised numpy ray caster: windows, intersection, shading and the
public ``render_view`` / ``render_stereo_frame``."""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .scene import (KITTI_PIXEL_OFFSET, NEAR, World, _BARK, _BOX, _CYL, _FOLIAGE, _GLASS, _GROUND,
                    _METAL, _PAINT, _PLAIN, _POSTER, _ROAD, _RUBBER, _SIGN,
                    _SPH, _WALL, camera_to_world, intrinsics)
from .scene import PAINT_REFLECTION
from .textures import _box_cov, _hash2, _periodic_cov, _sample, _text_texture


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
    # mottled paint: the texture scales the tint (grime) and adds a colourless term (reflections
    # of the street, as visible on a black car as on a white one); the tint when untextured
    g = _gray_lookup(world, world.tex[k], u, v, fp, world.tscale[k], world.toff[k])
    tint = world.tint[k] * (1.0 + world.contrast[k] * g)[:, None] + np.float32(PAINT_REFLECTION) * g[:, None]
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
