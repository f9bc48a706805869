"""Pure camera geometry: depth/disparity, back-projection, projection, poses, intrinsics.

Conventions (monodepth2): cameras look down +z, x right, y down. Intrinsics are 4x4.
Projected pixel coordinates are normalised for ``grid_sample(..., align_corners=True)``:
``x / (W - 1) * 2 - 1``. Every function builds its pixel grid from the input's shape and
device, so nothing depends on a batch size or a device fixed in advance.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# KITTI's rectified intrinsics normalised by image size (fx/W, fy/H, cx/W, cy/H).
KITTI_NORMALISED_INTRINSICS = (0.58, 1.92, 0.5, 0.5)
# The nominal stereo baseline used in training; KITTI's real baseline is 0.54 m.
NOMINAL_BASELINE = 0.1
# Factor from the nominal-baseline depth of a stereo-trained model to metres on KITTI.
STEREO_SCALE_FACTOR = 5.4


def disp_to_depth(disp: torch.Tensor, min_depth: float, max_depth: float):
    """Sigmoid output in [0, 1] -> (scaled disparity, depth), depth in [min_depth, max_depth]."""
    min_disp = 1.0 / max_depth
    max_disp = 1.0 / min_depth
    scaled_disp = min_disp + (max_disp - min_disp) * disp
    return scaled_disp, 1.0 / scaled_disp


def depth_to_disp(depth, min_depth: float, max_depth: float):
    """The inverse of ``disp_to_depth``: depth in [min_depth, max_depth] -> sigmoid output in
    [0, 1] (tensor or float)."""
    min_disp = 1.0 / max_depth
    max_disp = 1.0 / min_depth
    return (1.0 / depth - min_disp) / (max_disp - min_disp)


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Homogeneous pixel coordinates [3, H*W]: rows x, y, 1 (x varies fastest)."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                            torch.arange(width, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones_like(xs).reshape(-1)], 0)


def _float32_math(device: torch.device):
    """A context in which camera math runs in float32 even inside a (bf16) autocast region."""
    return torch.autocast(device.type, enabled=False)


def _at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """float16 / bfloat16 / float32 -> float32; float64 stays float64 (the tests' reference)."""
    return t if t.dtype == torch.float64 else t.float()


def backproject(depth: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
    """Depth [B,1,H,W] and inverse intrinsics [B,4,4] -> homogeneous camera points [B,4,H*W],
    float32 whatever the input dtype (a bf16 pixel grid is whole pixels off past x = 256);
    float64 for float64 depth."""
    batch, _, height, width = depth.shape
    with _float32_math(depth.device):
        depth = _at_least_float32(depth)
        pix = pixel_grid(height, width, depth.device, depth.dtype)
        rays = inv_K[:, :3, :3].to(depth.dtype) @ pix  # [B,3,HW]
        cam_points = rays * depth.reshape(batch, 1, -1)
        ones = torch.ones_like(cam_points[:, :1])
        return torch.cat([cam_points, ones], 1)


def project(points: torch.Tensor, K: torch.Tensor, T: torch.Tensor, height: int, width: int,
            eps: float = 1e-7) -> torch.Tensor:
    """Points [B,4,H*W] in the source frame, K [B,4,4], T [B,4,4] (source->target camera)
    -> grid_sample coordinates [B,H,W,2] in [-1, 1] (align_corners=True convention), computed
    in float32 whatever the input dtype (float64 for float64 points)."""
    with _float32_math(points.device):
        points = _at_least_float32(points)
        P = (K.to(points.dtype) @ T.to(points.dtype))[:, :3, :]
        cam = P @ points
        pix = cam[:, :2] / (cam[:, 2:3] + eps)
        pix = pix.reshape(-1, 2, height, width).permute(0, 2, 3, 1)
        scale = pix.new_tensor([width - 1, height - 1])
        return pix / scale * 2.0 - 1.0


def warp(image: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, inv_K: torch.Tensor,
         T: torch.Tensor) -> torch.Tensor:
    """Synthesise the target view from ``image`` [B,C,H,W] (the source camera) using the target's
    depth [B,1,H,W] and T = source_T_target [B,4,4]: backproject -> project -> grid_sample."""
    height, width = depth.shape[-2:]
    grid = project(backproject(depth, inv_K), K, T, height, width)
    with _float32_math(image.device):
        return F.grid_sample(_at_least_float32(image).to(grid.dtype), grid, mode="bilinear", padding_mode="border",
                             align_corners=True)


def rotation_from_axisangle(axisangle: torch.Tensor) -> torch.Tensor:
    """Axis-angle [B,1,3] (angle = norm, Rodrigues) -> homogeneous rotation [B,4,4]."""
    angle = torch.linalg.norm(axisangle, dim=2, keepdim=True)  # [B,1,1]
    axis = axisangle / (angle + 1e-7)
    c, s = torch.cos(angle), torch.sin(angle)
    C = 1 - c
    x, y, z = axis[..., 0:1], axis[..., 1:2], axis[..., 2:3]
    rot = torch.zeros(axisangle.shape[0], 4, 4, device=axisangle.device, dtype=axisangle.dtype)
    rot[:, 0, 0] = (x * x * C + c).squeeze()
    rot[:, 0, 1] = (x * y * C - z * s).squeeze()
    rot[:, 0, 2] = (z * x * C + y * s).squeeze()
    rot[:, 1, 0] = (x * y * C + z * s).squeeze()
    rot[:, 1, 1] = (y * y * C + c).squeeze()
    rot[:, 1, 2] = (y * z * C - x * s).squeeze()
    rot[:, 2, 0] = (z * x * C - y * s).squeeze()
    rot[:, 2, 1] = (y * z * C + x * s).squeeze()
    rot[:, 2, 2] = (z * z * C + c).squeeze()
    rot[:, 3, 3] = 1
    return rot


def translation_matrix(translation: torch.Tensor) -> torch.Tensor:
    """Translation [B,3] or [B,1,3] -> homogeneous transform [B,4,4]."""
    t = translation.reshape(-1, 3)
    T = torch.eye(4, device=t.device, dtype=t.dtype).repeat(t.shape[0], 1, 1)
    T[:, :3, 3] = t
    return T


def transformation_from_parameters(axisangle: torch.Tensor, translation: torch.Tensor,
                                   invert: bool = False) -> torch.Tensor:
    """Pose-network output (axisangle [B,1,3], translation [B,1,3]) -> [B,4,4].

    ``M = T @ R``; with ``invert`` the inverse ``R^T @ T(-t)``."""
    R = rotation_from_axisangle(axisangle)
    t = translation.clone()
    if invert:
        return R.transpose(1, 2) @ translation_matrix(-t)
    return translation_matrix(t) @ R


def stereo_transform(side: str, flipped: bool = False, baseline: float = NOMINAL_BASELINE,
                     principal_offset: float = 0.0):
    """4x4 transform from this camera to the other stereo camera (``stereo_T``).

    Left frame ('l'): x translation -baseline; right ('r'): +baseline; a horizontal flip swaps
    the sign, as the flipped image looks like the view from the other camera.

    ``principal_offset``: the rig's doffs / fx (cx_right - cx_left over the focal length, both
    normalised; 0 for rigs with one principal point). It enters as the shear T[0,2] = a, so
    that ``K @ T`` projects with the other view's principal point: u_other = u + fx * t / Z
    + a * fx, i.e. +doffs px for a left target, -doffs for a right one, negated by a flip. The
    ratio is the same at every scale. 0 leaves T a pure translation."""
    if side not in ("l", "r"):
        raise ValueError(f"stereo side must be 'l' or 'r', got {side!r}")
    side_sign = -1.0 if side == "l" else 1.0
    flip_sign = -1.0 if flipped else 1.0
    T = torch.eye(4)
    T[0, 3] = side_sign * flip_sign * baseline
    if principal_offset:
        T[0, 2] = -side_sign * flip_sign * principal_offset
    return T


def kitti_intrinsics(width: int, height: int) -> torch.Tensor:
    """KITTI's normalised intrinsics scaled to pixels at (width, height): [4,4]."""
    fx, fy, cx, cy = KITTI_NORMALISED_INTRINSICS
    return scale_intrinsics(normalised_intrinsics(fx, fy, cx, cy), width, height)


def normalised_intrinsics(fx: float, fy: float, cx: float, cy: float) -> torch.Tensor:
    """Intrinsics normalised by image size (fx/W, fy/H, cx/W, cy/H) as a 4x4 matrix."""
    K = torch.eye(4)
    K[0, 0], K[1, 1], K[0, 2], K[1, 2] = fx, fy, cx, cy
    return K


def scale_intrinsics(K_normalised: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """Normalised 4x4 intrinsics -> pixel intrinsics for an image of (width, height)."""
    K = K_normalised.clone()
    K[0, :] *= width
    K[1, :] *= height
    return K


def disparity_to_depth(disparity_px, fx_px: float, baseline: float):
    """Stereo disparity in pixels -> depth (same units as ``baseline``); 0 where disparity <= 0.

    Works on numpy arrays and tensors alike."""
    valid = disparity_px > 0
    safe = disparity_px * valid + (1 - valid * 1)  # 1 where invalid, avoids division by zero
    return (fx_px * baseline / safe) * valid


def depth_to_disparity(depth, fx_px: float, baseline: float):
    """Depth -> stereo disparity in pixels; 0 where depth <= 0 (the inverse of the above)."""
    return disparity_to_depth(depth, fx_px, baseline)


def upsample_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of [B,C,h,w] to (height, width), align_corners=False."""
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
