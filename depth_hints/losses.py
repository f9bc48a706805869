"""Pure loss functions. Each returns a per-pixel map (or a scalar where the formula is one);
the caller decides how to reduce."""
from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2
SSIM_WEIGHT = 0.85  # photometric error = 0.85 * SSIM + 0.15 * L1
MISSING_HINT_PENALTY = 1000.0  # added to the hint's reprojection error where there is no hint


def _pool3x3(t: torch.Tensor) -> torch.Tensor:
    """3x3 mean of a reflection-padded [B,C,H,W] -> [B,C,H,W]. Separable sums of shifted
    slices: the same values as avg_pool2d(3, stride 1) to float rounding, several times
    faster forward and backward on CPU."""
    t = F.pad(t, (1, 1, 1, 1), mode="reflect")
    rows = t[..., :, :-2] + t[..., :, 1:-1] + t[..., :, 2:]
    return (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]) * (1.0 / 9.0)


def _pool3x3_adjoint(g: torch.Tensor) -> torch.Tensor:
    """The transpose of ``_pool3x3``: [B,C,H,W] gradient of its output -> gradient of its input."""
    height, width = g.shape[-2:]
    padded = F.pad(g, (2, 2, 2, 2))  # zeros: each padded input pixel sums the outputs it fed
    rows = padded[..., :, :-2] + padded[..., :, 1:-1] + padded[..., :, 2:]
    box = (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]) * (1.0 / 9.0)  # [H+2,W+2]
    template = g.new_empty(g.shape[:-2] + (height, width))
    return torch.ops.aten.reflection_pad2d_backward(box, template, [1, 1, 1, 1])


def _ssim_terms(x: torch.Tensor, y: torch.Tensor):
    """Pooled moments and the four factors of SSIM = N1 N2 / (D1 D2); shapes as ``ssim``."""
    channels = x.shape[1]
    mu_y, e_yy = torch.split(_pool3x3(torch.cat([y, y * y], 1)), channels, 1)
    mu_x, e_xx, e_xy = torch.split(_pool3x3(torch.cat([x, x * x, x * y], 1)), channels, 1)
    mu_xy, mu_xx, mu_yy = mu_x * mu_y, mu_x * mu_x, mu_y * mu_y
    # (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x + sigma_y + C2)),
    # each product formed once (the hint pick evaluates this for many candidates)
    n1 = 2 * mu_xy + SSIM_C1
    n2 = 2 * (e_xy - mu_xy) + SSIM_C2
    d1 = mu_xx + mu_yy + SSIM_C1
    d2 = (e_xx - mu_xx) + (e_yy - mu_yy) + SSIM_C2
    return mu_x, mu_y, n1, n2, d1, d2


class _SSIMWithFixedTarget(torch.autograd.Function):
    """``ssim`` with a hand-written gradient for x (the target y gets none): fewer
    full-resolution intermediates and kernels than autograd's graph of the same formula
    (forward + backward about 15-20 % faster on CPU). Values identical to ``ssim``'s."""

    @staticmethod
    def forward(ctx, x, y):
        mu_x, mu_y, n1, n2, d1, d2 = _ssim_terms(x, y)
        unclamped = 0.5 - 0.5 * ((n1 * n2) / (d1 * d2))
        ctx.save_for_backward(x, y, mu_x, mu_y, n1, n2, d1, d2, unclamped)
        return torch.clamp(unclamped, 0, 1)

    @staticmethod
    def backward(ctx, grad):
        x, y, mu_x, mu_y, n1, n2, d1, d2, unclamped = ctx.saved_tensors
        # clamp passes the gradient where 0 <= value <= 1 (as torch.clamp's backward does)
        g_s = grad * ((unclamped >= 0) & (unclamped <= 1)) * -0.5  # d loss / d SSIM
        inv = 1.0 / (d1 * d2)
        s = n1 * n2 * inv
        g_e_xy = g_s * (2 * n1 * inv)
        g_e_xx = -g_s * s / d2
        g_mu_x = g_s * (2 * mu_y * (n2 - n1) * inv - 2 * mu_x * s * (1.0 / d1 - 1.0 / d2))
        channels = x.shape[1]
        g_mu, g_xx, g_xy = torch.split(_pool3x3_adjoint(torch.cat([g_mu_x, g_e_xx, g_e_xy], 1)),
                                       channels, 1)
        grad_x = g_mu + 2 * x * g_xx + y * g_xy
        return (grad_x if grad_x.shape == x.shape else grad_x.sum_to_size(x.shape)), None


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1 - SSIM) / 2 per pixel and channel, 3x3 windows on reflection-padded images.

    x [B,C,H,W], y [B,C,H,W] or [1,C,H,W] (one target for many candidates: its moments are
    pooled once) -> [B,C,H,W] in [0, 1]; 0 where x == y. When only x needs a gradient (the
    training: warped views against the target) the backward is hand-written."""
    if torch.is_grad_enabled() and x.requires_grad and not y.requires_grad:
        return _SSIMWithFixedTarget.apply(x, y)
    _, _, n1, n2, d1, d2 = _ssim_terms(x, y)
    return torch.clamp(0.5 - 0.5 * ((n1 * n2) / (d1 * d2)), 0, 1)


def photometric_error(pred: torch.Tensor, target: torch.Tensor, use_ssim: bool = True):
    """Reprojection error [B,1,H,W]: 0.85 * SSIM + 0.15 * L1 (channel means); L1 alone
    without SSIM (``--no_ssim``). The trainer and the hint precompute both use this."""
    l1 = (target - pred).abs().mean(1, keepdim=True)
    if not use_ssim:
        return l1
    return SSIM_WEIGHT * ssim(pred, target).mean(1, keepdim=True) + (1 - SSIM_WEIGHT) * l1


def edge_aware_smoothness(disp: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """Scalar smoothness: mean |d disp| * exp(-mean_c |d img|) over x and y.

    disp [B,1,H,W] (the caller normalises it by its mean), img [B,3,H,W]."""
    grad_disp_x = (disp[:, :, :, :-1] - disp[:, :, :, 1:]).abs()
    grad_disp_y = (disp[:, :, :-1, :] - disp[:, :, 1:, :]).abs()
    grad_img_x = (img[:, :, :, :-1] - img[:, :, :, 1:]).abs().mean(1, keepdim=True)
    grad_img_y = (img[:, :, :-1, :] - img[:, :, 1:, :]).abs().mean(1, keepdim=True)
    return (grad_disp_x * torch.exp(-grad_img_x)).mean() + (grad_disp_y * torch.exp(-grad_img_y)).mean()


def mean_normalised(disp: torch.Tensor) -> torch.Tensor:
    """Disparity [B,1,H,W] divided by its per-image mean (scale-free smoothness input)."""
    return disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)


def select_losses(reprojection: torch.Tensor, identity: torch.Tensor | None,
                  hint_reprojection: torch.Tensor | None):
    """Per-pixel choice between prediction, identity (auto-masking) and depth hint.

    All inputs [B,1,H,W] photometric errors (already minimised over source views).
    Returns (reprojection_mask, hint_mask), float {0,1} [B,1,H,W]; hint_mask is None without
    hints. Ties go to the earlier candidate in (prediction, identity, hint).
      - no auto-masking (identity None): the photometric loss applies everywhere; the hint
        loss where the hint reprojects better than the prediction.
      - auto-masking: the photometric loss wherever the identity does not win (the prediction
        or the hint wins: the paper's l_r(d) + l_s(d, h) keeps l_r where the hint wins); the
        hint loss where the hint beats both.
    """
    candidates = [reprojection]
    if identity is not None:
        candidates.append(identity)
    if hint_reprojection is not None:
        candidates.append(hint_reprojection)
    if len(candidates) == 1:
        return torch.ones_like(reprojection), None
    # min().indices is the first minimum like argmin, and many times faster on CPU
    winner = torch.cat(candidates, 1).min(dim=1, keepdim=True).indices
    if identity is None:
        reprojection_mask = torch.ones_like(reprojection)
    else:
        reprojection_mask = (winner != 1).to(reprojection.dtype)  # identity is candidate 1
    hint_mask = None
    if hint_reprojection is not None:
        hint_mask = (winner == len(candidates) - 1).to(reprojection.dtype)
    return reprojection_mask, hint_mask


def depth_hint_loss(pred_depth: torch.Tensor, hint: torch.Tensor, hint_valid: torch.Tensor,
                    hint_mask: torch.Tensor) -> torch.Tensor:
    """Per-pixel log(1 + |pred_depth - hint|) [B,1,H,W], zero where the hint is missing or lost
    the per-pixel selection. All inputs [B,1,H,W]; the masks are {0,1}."""
    return torch.log1p((pred_depth - hint).abs()) * hint_valid * hint_mask


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of values over the mask divided by the mask's size (+1e-7): the loss reduction."""
    return (values * mask).sum() / (mask.sum() + 1e-7)


def mask_regularisation(mask: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE pushing a predictive mask [B,N,H,W] towards 1 (Zhou et al. 2017)."""
    return F.binary_cross_entropy(mask, torch.ones_like(mask), reduction="none")
