"""Loss functions and the per-pixel selection, against hand-computed values."""
import math

import pytest
import torch
import torch.nn.functional as F

from depth_hints import losses


def test_ssim_of_identical_images_is_zero():
    x = torch.rand(2, 3, 10, 12)
    torch.testing.assert_close(losses.ssim(x, x), torch.zeros_like(x), atol=1e-6, rtol=0)


def test_ssim_is_symmetric_bounded_and_positive_for_different_images():
    torch.manual_seed(0)
    x, y = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    s = losses.ssim(x, y)
    torch.testing.assert_close(s, losses.ssim(y, x))
    assert s.min() >= 0 and s.max() <= 1 and s.mean() > 0.1


def test_photometric_error_weights():
    pred = torch.zeros(1, 3, 4, 4)
    target = torch.full((1, 3, 4, 4), 0.5)
    l1_only = losses.photometric_error(pred, target, use_ssim=False)
    torch.testing.assert_close(l1_only, torch.full((1, 1, 4, 4), 0.5))
    full = losses.photometric_error(pred, target)
    # constant images: SSIM term = (1 - C1 / (0.25 + C1)) / 2
    ssim_term = (1 - losses.SSIM_C1 / (0.25 + losses.SSIM_C1)) / 2
    torch.testing.assert_close(full, torch.full((1, 1, 4, 4), 0.85 * ssim_term + 0.15 * 0.5))


def test_smoothness_zero_for_constant_disparity_and_edge_weighting():
    img = torch.rand(1, 3, 6, 6)
    assert losses.edge_aware_smoothness(torch.ones(1, 1, 6, 6), img).item() == 0
    disp = torch.zeros(1, 1, 2, 3)
    disp[..., 1:] = 1.0  # one vertical edge between columns 0 and 1
    flat = torch.zeros(1, 3, 2, 3)
    edge = flat.clone()
    edge[..., 1:] = 1.0
    # x gradients: |0-1|, |1-1| per row -> mean 0.5; y gradients 0
    assert losses.edge_aware_smoothness(disp, flat).item() == pytest.approx(0.5)
    assert losses.edge_aware_smoothness(disp, edge).item() == pytest.approx(0.5 * math.exp(-1))


def _maps(*values):
    return [torch.tensor(v, dtype=torch.float32).reshape(1, 1, 1, -1) for v in values]


def test_select_without_automasking_or_hints_is_all_ones():
    (rep,) = _maps([0.3, 0.1])
    mask, hint = losses.select_losses(rep, None, None)
    assert hint is None
    torch.testing.assert_close(mask, torch.ones_like(rep))


def test_select_automasking_only():
    rep, ident = _maps([0.3, 0.1, 0.2], [0.2, 0.5, 0.2])
    mask, hint = losses.select_losses(rep, ident, None)
    assert hint is None
    assert mask.flatten().tolist() == [0.0, 1.0, 1.0]  # ties go to the prediction


def test_select_hints_without_automasking():
    rep, hint_rep = _maps([0.3, 0.1, 0.2], [0.2, 0.5, 1000.2])
    mask, hint = losses.select_losses(rep, None, hint_rep)
    assert mask.flatten().tolist() == [1.0, 1.0, 1.0]  # photometric loss everywhere
    assert hint.flatten().tolist() == [1.0, 0.0, 0.0]


def test_select_hints_with_automasking():
    """The photometric loss stays on wherever the identity loses (prediction or hint wins);
    the hint loss applies where the hint wins."""
    rep, ident, hint_rep = _maps([0.3, 0.1, 0.5, 0.4], [0.2, 0.5, 0.6, 0.1], [0.25, 0.3, 0.4, 0.2])
    mask, hint = losses.select_losses(rep, ident, hint_rep)
    # winners: identity, prediction, hint, identity
    assert mask.flatten().tolist() == [0.0, 1.0, 1.0, 0.0]  # pixel 2: the hint wins, l_r stays on
    assert hint.flatten().tolist() == [0.0, 0.0, 1.0, 0.0]  # pixel 0: identity wins, not the hint


def test_select_ties_go_to_prediction_then_identity():
    rep, ident, hint_rep = _maps([0.2, 0.4, 0.3], [0.2, 0.3, 0.4], [0.2, 0.3, 0.3])
    mask, hint = losses.select_losses(rep, ident, hint_rep)
    assert mask.flatten().tolist() == [1.0, 0.0, 1.0]
    assert hint.flatten().tolist() == [0.0, 0.0, 0.0]


def test_depth_hint_loss_values():
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 1, 4)
    hint = torch.tensor([1.0, 4.0, 0.0, 5.0]).reshape(1, 1, 1, 4)
    valid = (hint > 0).float()
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0]).reshape(1, 1, 1, 4)
    out = losses.depth_hint_loss(pred, hint, valid, mask).flatten()
    torch.testing.assert_close(out, torch.tensor([0.0, math.log(3.0), 0.0, 0.0]))


def test_masked_mean():
    values = torch.tensor([1.0, 2.0, 3.0])
    assert losses.masked_mean(values, torch.tensor([1.0, 0.0, 1.0])).item() == pytest.approx(2.0)


def test_ssim_broadcasts_a_single_target():
    torch.manual_seed(1)
    x, y = torch.rand(4, 3, 6, 7), torch.rand(1, 3, 6, 7)
    torch.testing.assert_close(losses.ssim(x, y), losses.ssim(x, y.expand(4, -1, -1, -1)))
    torch.testing.assert_close(losses.photometric_error(x, y), losses.photometric_error(x, y.expand(4, -1, -1, -1)))


@pytest.mark.parametrize("target_batch", [3, 1])
def test_ssim_hand_written_gradient_equals_autograd_of_the_formula(target_batch):
    """The training's SSIM backward (x needs a gradient, the target does not) is hand-written:
    it must equal autograd's gradient of the same formula, clamped pixels included, and pass
    a finite-difference check."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 7, 9, generator=g, dtype=torch.float64).requires_grad_()
    far = torch.rand(target_batch, 3, 7, 9, generator=g, dtype=torch.float64)
    near = (0.9 * x.detach()[:target_batch] + 0.1 * far).contiguous()
    weights = torch.rand(3, 3, 7, 9, generator=g, dtype=torch.float64)

    def by_autograd(x, y):  # the formula written out, differentiated by autograd
        c = x.shape[1]
        mu_y, e_yy = torch.split(losses._pool3x3(torch.cat([y, y * y], 1)), c, 1)
        mu_x, e_xx, e_xy = torch.split(losses._pool3x3(torch.cat([x, x * x, x * y], 1)), c, 1)
        value = ((2 * mu_x * mu_y + losses.SSIM_C1) * (2 * (e_xy - mu_x * mu_y) + losses.SSIM_C2)
                 / ((mu_x ** 2 + mu_y ** 2 + losses.SSIM_C1)
                    * (e_xx - mu_x ** 2 + e_yy - mu_y ** 2 + losses.SSIM_C2)))
        return torch.clamp(0.5 - 0.5 * value, 0, 1)

    for y in (far, near):
        ours, = torch.autograd.grad((losses.ssim(x, y) * weights).sum(), x)
        reference, = torch.autograd.grad((by_autograd(x, y) * weights).sum(), x)
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
        assert ours.abs().sum() > 0
        assert torch.autograd.gradcheck(lambda x: losses.ssim(x, y), (x,))


def test_reflect_border_and_pool_adjoint_are_the_padding_and_its_transpose():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 5, 7, generator=g, dtype=torch.float64)
    padded = torch.empty(2, 3, 7, 9, dtype=torch.float64)
    padded[..., 1:-1, 1:-1] = x
    assert torch.equal(losses._reflect_border_(padded), F.pad(x, (1, 1, 1, 1), mode="reflect"))
    # <pool(x), g> = <x, pool^T(g)>: the adjoint (without its 1/9) is autograd's vjp times 9
    x.requires_grad_()
    grad_out = torch.rand(2, 3, 5, 7, generator=g, dtype=torch.float64)
    reference, = torch.autograd.grad(losses._pool3x3(x), x, grad_out)
    zero_bordered = F.pad(grad_out, (2, 2, 2, 2))
    torch.testing.assert_close(losses._pool3x3_adjoint_(zero_bordered) / 9, reference, rtol=1e-12, atol=0)


def test_a_shared_ssim_target_gives_the_same_values_and_gradients():
    """SSIMTarget pools the target's moments once for many calls: bit-identical errors."""
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 9, 11, generator=g)
    y = (0.7 * x + 0.3 * torch.rand(2, 3, 9, 11, generator=g)).contiguous()
    shared = losses.SSIMTarget(y)
    assert torch.equal(losses.photometric_error(x, shared), losses.photometric_error(x, y))
    assert torch.equal(losses.ssim(x, shared), losses.ssim(x, y))
    xg = x.clone().requires_grad_()
    a, = torch.autograd.grad(losses.photometric_error(xg, shared).sum(), xg)
    b, = torch.autograd.grad(losses.photometric_error(xg, y).sum(), xg)
    assert torch.equal(a, b)
