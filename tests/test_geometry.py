"""Analytic checks of the camera geometry."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from depth_hints import geometry


def _intrinsics(batch, height, width):
    K = geometry.kitti_intrinsics(width, height)[None].repeat(batch, 1, 1)
    return K, torch.linalg.inv(K)


def test_disp_to_depth_range_and_values():
    disp = torch.tensor([0.0, 1.0, 0.5])
    scaled, depth = geometry.disp_to_depth(disp, 0.1, 100.0)
    assert depth[0].item() == pytest.approx(100.0)
    assert depth[1].item() == pytest.approx(0.1)
    assert scaled[2].item() == pytest.approx(0.01 + 0.5 * (10 - 0.01))
    torch.testing.assert_close(scaled * depth, torch.ones(3))


def test_backproject_shape_and_depth():
    K, inv_K = _intrinsics(3, 8, 16)
    depth = torch.rand(3, 1, 8, 16) + 1
    points = geometry.backproject(depth, inv_K)
    assert points.shape == (3, 4, 8 * 16)
    torch.testing.assert_close(points[:, 2], depth.reshape(3, -1))
    torch.testing.assert_close(points[:, 3], torch.ones(3, 8 * 16))


def test_identity_pose_reprojects_onto_pixel_grid():
    height, width = 6, 10
    K, inv_K = _intrinsics(2, height, width)
    depth = torch.rand(2, 1, height, width) * 10 + 1
    grid = geometry.project(geometry.backproject(depth, inv_K), K, torch.eye(4).repeat(2, 1, 1), height, width)
    xs = torch.linspace(-1, 1, width)
    ys = torch.linspace(-1, 1, height)
    torch.testing.assert_close(grid[0, :, :, 0], xs.expand(height, width), atol=1e-5, rtol=0)
    torch.testing.assert_close(grid[1, :, :, 1], ys[:, None].expand(height, width), atol=1e-5, rtol=0)


def test_identity_warp_returns_the_image():
    height, width = 8, 12
    K, inv_K = _intrinsics(1, height, width)
    img = torch.rand(1, 3, height, width)
    out = geometry.warp(img, torch.full((1, 1, height, width), 5.0), K, inv_K, torch.eye(4)[None])
    torch.testing.assert_close(out, img, atol=1e-5, rtol=0)


@pytest.mark.parametrize("baseline,depth", [(0.1, 2.0), (0.54, 10.0), (-0.1, 4.0)])
def test_stereo_baseline_shifts_by_f_b_over_d(baseline, depth):
    height, width = 8, 32
    K, inv_K = _intrinsics(1, height, width)
    T = torch.eye(4)[None].clone()
    T[0, 0, 3] = baseline
    grid = geometry.project(geometry.backproject(torch.full((1, 1, height, width), depth), inv_K), K, T, height, width)
    x_pixels = (grid[0, :, :, 0] + 1) / 2 * (width - 1)
    expected_shift = K[0, 0, 0] * baseline / depth
    torch.testing.assert_close(x_pixels - torch.arange(width).float(), torch.full((height, width), float(expected_shift)),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close((grid[0, :, :, 1] + 1) / 2 * (height - 1), torch.arange(height).float()[:, None].expand(height, width),
                               atol=1e-4, rtol=0)


def test_grid_sample_of_shifted_image_matches_integer_shift():
    """A 2-pixel disparity warp equals an integer roll away from the border."""
    height, width = 4, 16
    K, inv_K = _intrinsics(1, height, width)
    fx = float(K[0, 0, 0])
    img = torch.rand(1, 3, height, width)
    T = torch.eye(4)[None].clone()
    T[0, 0, 3] = -0.1
    depth = torch.full((1, 1, height, width), fx * 0.1 / 2)
    out = geometry.warp(img, depth, K, inv_K, T)
    torch.testing.assert_close(out[..., 2:], img[..., :-2], atol=1e-5, rtol=0)


def test_transform_times_inverse_is_identity():
    torch.manual_seed(0)
    axisangle = torch.randn(4, 1, 3) * 0.3
    translation = torch.randn(4, 1, 3)
    M = geometry.transformation_from_parameters(axisangle, translation)
    M_inv = geometry.transformation_from_parameters(axisangle, translation, invert=True)
    torch.testing.assert_close(M @ M_inv, torch.eye(4).expand(4, 4, 4), atol=1e-5, rtol=0)


def test_rotation_is_orthonormal_and_matches_rodrigues_about_z():
    angle = 0.3
    R = geometry.rotation_from_axisangle(torch.tensor([[[0.0, 0.0, angle]]]))[0, :3, :3]
    expected = torch.tensor([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    torch.testing.assert_close(R, expected, atol=1e-6, rtol=0)


def test_zero_axisangle_is_pure_translation():
    M = geometry.transformation_from_parameters(torch.zeros(1, 1, 3), torch.tensor([[[1.0, 2.0, 3.0]]]))
    expected = torch.eye(4)
    expected[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(M[0], expected)


def test_stereo_transform_signs():
    assert geometry.stereo_transform("l")[0, 3] == pytest.approx(-0.1)
    assert geometry.stereo_transform("r")[0, 3] == pytest.approx(0.1)
    assert geometry.stereo_transform("l", flipped=True)[0, 3] == pytest.approx(0.1)
    with pytest.raises(ValueError):
        geometry.stereo_transform("x")


def test_intrinsics_scaling():
    K = geometry.kitti_intrinsics(640, 192)
    assert K[0, 0] == pytest.approx(0.58 * 640)
    assert K[1, 1] == pytest.approx(1.92 * 192)
    assert K[0, 2] == pytest.approx(320) and K[1, 2] == pytest.approx(96)


def test_disparity_depth_round_trip_numpy_and_torch():
    disp = np.array([0.0, 1.0, 8.0, 64.0])
    depth = geometry.disparity_to_depth(disp, 0.58 * 1024, 0.1)
    assert depth[0] == 0
    assert depth[2] == pytest.approx(0.58 * 1024 * 0.1 / 8)
    np.testing.assert_allclose(geometry.depth_to_disparity(depth, 0.58 * 1024, 0.1), disp)
    t = torch.tensor(disp)
    torch.testing.assert_close(geometry.depth_to_disparity(geometry.disparity_to_depth(t, 100.0, 0.54), 100.0, 0.54), t)


def test_geometry_has_no_baked_batch_size():
    K, inv_K = _intrinsics(5, 4, 8)
    points = geometry.backproject(torch.ones(5, 1, 4, 8), inv_K)
    assert geometry.project(points, K, torch.eye(4).repeat(5, 1, 1), 4, 8).shape == (5, 4, 8, 2)


def test_bf16_depth_gives_the_float32_pixel_grid_at_640_wide():
    """Under a bf16 autocast the camera math stays float32: identity pose, bf16 depth -> the
    exact pixel grid (in bf16, x = 600 is representable only to 4 px)."""
    height, width = 4, 640
    K, inv_K = _intrinsics(1, height, width)
    depth = (torch.rand(1, 1, height, width) * 10 + 1).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        points = geometry.backproject(depth, inv_K)
        grid = geometry.project(points, K, torch.eye(4)[None], height, width)
    assert points.dtype == torch.float32 and grid.dtype == torch.float32
    pixels_x = (grid[..., 0] + 1) / 2 * (width - 1)
    pixels_y = (grid[..., 1] + 1) / 2 * (height - 1)
    torch.testing.assert_close(pixels_x[0], torch.arange(width, dtype=torch.float32).expand(height, -1),
                               atol=2e-3, rtol=0)
    torch.testing.assert_close(pixels_y[0], torch.arange(height, dtype=torch.float32)[:, None].expand(-1, width),
                               atol=2e-3, rtol=0)
    torch.testing.assert_close(points[:, 2], depth.float().reshape(1, -1))
