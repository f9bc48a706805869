"""The training objective: view synthesis and every branch of the loss composition."""
import itertools

import pytest
import torch

from depth_hints import geometry, objective
from depth_hints.objective import LossConfig

H, W = 64, 96
SHIFT = 4  # true disparity in pixels


def _batch(batch=2, hint_coverage=1.0, seed=0):
    """A fronto-parallel textured scene: the right view is the left shifted by SHIFT pixels;
    temporal neighbours are identical to the target (static camera)."""
    g = torch.Generator().manual_seed(seed)
    wide = torch.rand(batch, 3, H, W + SHIFT, generator=g)
    wide = torch.nn.functional.avg_pool2d(wide, 3, 1, 1)
    left, right = wide[..., :W], wide[..., SHIFT:]
    inputs = {}
    for s in range(4):
        h, w = H // 2 ** s, W // 2 ** s
        for f, img in ((0, left), (-1, left), (1, left), ("s", right)):
            inputs[("color", f, s)] = geometry.upsample_to(img, h, w) if s else img
            inputs[("color_aug", f, s)] = inputs[("color", f, s)]
        K = geometry.kitti_intrinsics(w, h)[None].repeat(batch, 1, 1)
        inputs[("K", s)], inputs[("inv_K", s)] = K, torch.linalg.inv(K)
    inputs["stereo_T"] = geometry.stereo_transform("l")[None].repeat(batch, 1, 1)
    depth = 0.58 * W * 0.1 / SHIFT
    hint = torch.full((batch, 1, H, W), depth)
    hint[..., int(W * hint_coverage):] = 0
    inputs["depth_hint"], inputs["depth_hint_mask"] = hint, (hint > 0).float()
    return inputs, depth


def _outputs(batch, depth_value, cfg, frames=(-1, 1)):
    min_disp, max_disp = 1 / cfg.max_depth, 1 / cfg.min_depth
    sigmoid = (1 / depth_value - min_disp) / (max_disp - min_disp)
    out = {("disp", s): torch.full((batch, 1, H // 2 ** s, W // 2 ** s), sigmoid, requires_grad=True) for s in range(4)}
    for f in frames:
        out[("cam_T_cam", 0, f)] = torch.eye(4).repeat(batch, 1, 1)
    return out


def test_true_depth_reprojects_with_near_zero_error():
    cfg = LossConfig(frame_ids=(0, "s"), automask=False)
    inputs, depth = _batch()
    outputs = _outputs(2, depth, cfg, frames=())
    objective.synthesise_views(inputs, outputs, cfg)
    err = (outputs[("color", "s", 0)] - inputs[("color", 0, 0)]).abs()[..., SHIFT + 1:]
    assert err.max() < 1e-4
    wrong = _outputs(2, depth * 3, cfg, frames=())
    objective.synthesise_views(inputs, wrong, cfg)
    assert (wrong[("color", "s", 0)] - inputs[("color", 0, 0)]).abs()[..., SHIFT + 1:].mean() > 0.05


def test_hint_reprojection_zero_where_hint_is_right_and_penalised_where_missing():
    cfg = LossConfig(frame_ids=(0, "s"), use_depth_hints=True)
    inputs, _ = _batch(hint_coverage=0.5)
    err = objective.hint_reprojection(inputs, cfg)
    assert err[..., SHIFT + 2: W // 2 - 2].max() < 1e-3
    assert err[..., W // 2:].min() >= 1000


def test_hints_win_where_prediction_is_wrong():
    cfg = LossConfig(frame_ids=(0, "s"), use_depth_hints=True, automask=False)
    inputs, depth = _batch()
    outputs = _outputs(2, depth * 3, cfg, frames=())
    objective.synthesise_views(inputs, outputs, cfg)
    result = objective.compute_losses(inputs, outputs, cfg)
    assert result[("hint_mask", 0)][..., SHIFT + 2:-2].mean() > 0.95
    assert result[("hint_loss", 0)] == pytest.approx(torch.log1p(torch.tensor(depth * 2)).item(), rel=1e-3)
    result["loss"].backward()
    assert outputs[("disp", 0)].grad.abs().sum() > 0


def test_hint_loss_vanishes_for_a_perfect_prediction():
    cfg = LossConfig(frame_ids=(0, "s"), use_depth_hints=True, automask=False, scales=(0,))
    inputs, depth = _batch()
    outputs = _outputs(2, depth, cfg, frames=())
    objective.synthesise_views(inputs, outputs, cfg)
    result = objective.compute_losses(inputs, outputs, cfg)
    assert result[("hint_loss", 0)] < 1e-3


def test_automasking_masks_static_frames():
    """Temporal neighbours equal to the target: identity beats any warp, mask ~0 there."""
    cfg = LossConfig(frame_ids=(0, -1, 1), automask=True, scales=(0,))
    inputs, depth = _batch()
    outputs = _outputs(2, depth * 3, cfg)
    outputs[("cam_T_cam", 0, -1)][:, 0, 3] = 0.5
    outputs[("cam_T_cam", 0, 1)][:, 0, 3] = -0.5
    objective.synthesise_views(inputs, outputs, cfg)
    result = objective.compute_losses(inputs, outputs, cfg, generator=torch.Generator().manual_seed(0))
    assert result[("reprojection_mask", 0)].mean() < 0.1


ALL_FLAGS = list(itertools.product([False, True], repeat=5))


@pytest.mark.parametrize("automask,hints,avg,v1,predictive", ALL_FLAGS)
def test_every_combination_gives_a_finite_differentiable_loss(automask, hints, avg, v1, predictive):
    frame_ids = (0, -1, 1, "s")
    cfg = LossConfig(frame_ids=frame_ids, automask=automask, use_depth_hints=hints, avg_reprojection=avg,
                     v1_multiscale=v1, predictive_mask=predictive)
    inputs, depth = _batch(hint_coverage=0.7)
    outputs = _outputs(2, depth * 1.5, cfg)
    if predictive:
        for s in range(4):
            outputs[("predictive_mask", s)] = torch.full((2, 3, H // 2 ** s, W // 2 ** s), 0.9, requires_grad=True)
    objective.synthesise_views(inputs, outputs, cfg)
    result = objective.compute_losses(inputs, outputs, cfg)
    assert torch.isfinite(result["loss"])
    assert (("hint_mask", 0) in result) == hints
    result["loss"].backward()
    assert outputs[("disp", 0)].grad is not None


def test_no_ssim_changes_the_loss():
    inputs, depth = _batch()
    values = []
    for use_ssim in (True, False):
        cfg = LossConfig(frame_ids=(0, "s"), use_ssim=use_ssim, automask=False)
        outputs = _outputs(2, depth * 2, cfg, frames=())
        objective.synthesise_views(inputs, outputs, cfg)
        values.append(objective.compute_losses(inputs, outputs, cfg)["loss"].item())
    assert values[0] != pytest.approx(values[1])
