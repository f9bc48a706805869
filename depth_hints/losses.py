"""Pure loss functions. Each returns a per-pixel map (or a scalar where the formula is one);
the caller decides how to reduce."""
from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2
SSIM_WEIGHT = 0.85  # photometric error = 0.85 * SSIM + 0.15 * L1
MISSING_HINT_PENALTY = 1000.0  # added to the hint's reprojection error where there is no hint


def _box_sum3x3(padded: torch.Tensor) -> torch.Tensor:
    """3x3 sums of [..., H+2, W+2] -> [..., H, W] (a new tensor; ``padded`` is left unchanged):
    separable sums of shifted slices, as ((a + b) + c) per direction."""
    rows = padded[..., :, :-2] + padded[..., :, 1:-1]
    rows += padded[..., :, 2:]
    out = rows[..., :-2, :] + rows[..., 1:-1, :]
    out += rows[..., 2:, :]
    return out


def _box3x3(padded: torch.Tensor) -> torch.Tensor:
    """3x3 mean of [..., H+2, W+2] -> [..., H, W]: ``_box_sum3x3`` times 1/9."""
    out = _box_sum3x3(padded)
    out *= 1.0 / 9.0
    return out


def _reflect_border_(padded: torch.Tensor) -> torch.Tensor:
    """Fill the 1-pixel border of [..., H+2, W+2] in place by reflecting its interior (the
    values of F.pad(interior, (1, 1, 1, 1), mode="reflect"), corners included)."""
    padded[..., 0, 1:-1] = padded[..., 2, 1:-1]
    padded[..., -1, 1:-1] = padded[..., -3, 1:-1]
    padded[..., :, 0] = padded[..., :, 2]
    padded[..., :, -1] = padded[..., :, -3]
    return padded


def _pool3x3(t: torch.Tensor) -> torch.Tensor:
    """3x3 mean of a reflection-padded [B,C,H,W] -> [B,C,H,W]. Separable sums of shifted
    slices: the same values as avg_pool2d(3, stride 1) to float rounding, several times
    faster forward and backward on CPU."""
    return _box3x3(F.pad(t, (1, 1, 1, 1), mode="reflect"))


def _pool3x3_adjoint_(padded: torch.Tensor) -> torch.Tensor:
    """The transpose of ``_pool3x3`` without its 1/9: ``padded`` [..., H+4, W+4] holds the
    output gradient [..., H, W] inside a 2-pixel border of zeros; returns the input gradient
    [..., H, W] (a view of a new tensor; ``padded`` is left unchanged)."""
    box = _box_sum3x3(padded)  # [..., H+2, W+2]: gradient of the reflection-padded input
    # the reflected border pixels were copies of interior rows/columns 1 and -2: add them back
    box[..., 2, :] += box[..., 0, :]
    box[..., -3, :] += box[..., -1, :]
    box[..., :, 2] += box[..., :, 0]
    box[..., :, -3] += box[..., :, -1]
    return box[..., 1:-1, 1:-1]


class SSIMTarget:
    """A target image [B,C,H,W] with its pooled SSIM moments, for several ``ssim`` /
    ``photometric_error`` calls against the same target (the training scores four scales, the
    identity and the hint against one image): the moments are pooled once."""

    def __init__(self, image: torch.Tensor):
        self.image = image
        channels = image.shape[1]
        self.mu, e_yy = torch.split(_pool3x3(torch.cat([image, image * image], 1)), channels, 1)
        self.mu_sq = self.mu * self.mu
        self.sigma = e_yy - self.mu_sq

    @staticmethod
    def of(target) -> "SSIMTarget":
        return target if isinstance(target, SSIMTarget) else SSIMTarget(target)


def _ssim_terms(x: torch.Tensor, target: SSIMTarget):
    """Pooled moments and the four factors of SSIM = N1 N2 / (D1 D2); shapes as ``ssim``.
    The arithmetic (operations and their order) is fixed: the hint pick compares these values
    across candidates, and the precomputed hints must not move."""
    y, mu_y = target.image, target.mu
    channels = x.shape[1]
    batch = torch.broadcast_shapes(x.shape, y.shape)[0]
    height, width = x.shape[-2:]
    if torch.compiler.is_compiling():
        # torch.compile cannot trace out= writes into views; it fuses the cat and pad itself
        x = x.expand(batch, -1, -1, -1)
        padded = F.pad(torch.cat([x, x * x, x * y], 1), (1, 1, 1, 1), mode="reflect")
    else:
        # [x, x*x, x*y] written straight into one reflection-padded buffer (no cat, no pad copy)
        padded = x.new_empty(batch, 3 * channels, height + 2, width + 2)
        inner = padded[..., 1:-1, 1:-1]
        x = x.expand(batch, -1, -1, -1)
        inner[:, :channels].copy_(x)
        torch.mul(x, x, out=inner[:, channels:2 * channels])
        torch.mul(x, y, out=inner[:, 2 * channels:])
        _reflect_border_(padded)
    mu_x, e_xx, e_xy = torch.split(_box3x3(padded), channels, 1)
    mu_xy = mu_x * mu_y
    mu_xx = mu_x * mu_x
    # (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x + sigma_y + C2)),
    # each product formed once (the hint pick evaluates this for many candidates)
    n1 = mu_xy * 2
    n1 += SSIM_C1
    n2 = e_xy - mu_xy
    n2 *= 2
    n2 += SSIM_C2
    d2 = e_xx - mu_xx
    d2 += target.sigma
    d2 += SSIM_C2
    d1 = mu_xx
    d1 += target.mu_sq
    d1 += SSIM_C1
    return mu_x, mu_y, n1, n2, d1, d2


def _ssim_value(n1, n2, d1, d2):
    """(1 - SSIM) / 2 before clamping, and SSIM itself: 0.5 - 0.5 * (n1 n2) / (d1 d2)."""
    s = n1 * n2
    s /= d1 * d2
    unclamped = s * -0.5
    unclamped += 0.5
    return unclamped, s


class _SSIMWithFixedTarget(torch.autograd.Function):
    """``ssim`` with a hand-written gradient for x (the target gets none): fewer
    full-resolution intermediates and kernels than autograd's graph of the same formula.
    Values identical to ``ssim``'s."""

    @staticmethod
    def forward(ctx, x, target_image, target):
        mu_x, mu_y, n1, n2, d1, d2 = _ssim_terms(x, target)
        unclamped, s = _ssim_value(n1, n2, d1, d2)
        out = torch.clamp(unclamped, 0, 1)
        ctx.save_for_backward(x, target_image, mu_x, mu_y, n1, n2, d1, d2, s, unclamped, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, y, mu_x, mu_y, n1, n2, d1, d2, s, unclamped, out = ctx.saved_tensors
        channels = x.shape[1]
        # d out / d SSIM = -0.5 where 0 <= unclamped <= 1 (clamp's backward), else 0; the 1/9
        # of the pooling and 1 / (d1 d2) are folded in: q = d loss / d SSIM / (9 d1 d2)
        q = grad * (unclamped == out)
        q /= d1 * d2
        q *= -0.5 / 9.0
        height, width = x.shape[-2:]
        padded = x.new_empty(out.shape[0], 3 * channels, height + 4, width + 4)
        for border in (padded[..., :2, :], padded[..., -2:, :], padded[..., :, :2], padded[..., :, -2:]):
            border.zero_()
        inner = padded[..., 2:-2, 2:-2]
        g_mu, g_xx, g_xy = inner[:, :channels], inner[:, channels:2 * channels], inner[:, 2 * channels:]
        # d SSIM / d mu_x = 2 [mu_y (n2 - n1) - mu_x S (d2 - d1)] / (d1 d2)
        a = n2 - n1
        a *= mu_y
        b = d2 - d1
        b *= s
        b *= mu_x
        a -= b
        torch.mul(a, q, out=g_mu)
        g_mu *= 2
        # d SSIM / d e_xx = -S / d2 = -S d1 / (d1 d2); the sign is applied in grad_x below
        torch.mul(q, s, out=g_xx)
        g_xx *= d1
        # d SSIM / d e_xy = 2 n1 / (d1 d2)
        torch.mul(q, n1, out=g_xy)
        g_xy *= 2
        adjoint = _pool3x3_adjoint_(padded)
        g_mu, g_xx, g_xy = adjoint[:, :channels], adjoint[:, channels:2 * channels], adjoint[:, 2 * channels:]
        grad_x = torch.addcmul(g_mu, x, g_xx, value=-2.0)  # e_xx = pool(x^2): 2 x, with the sign
        grad_x.addcmul_(y, g_xy)  # e_xy = pool(x y): y
        return (grad_x if grad_x.shape == x.shape else grad_x.sum_to_size(x.shape)), None, None


def ssim(x: torch.Tensor, y) -> torch.Tensor:
    """(1 - SSIM) / 2 per pixel and channel, 3x3 windows on reflection-padded images.

    x [B,C,H,W], y [B,C,H,W] or [1,C,H,W] (one target for many candidates: its moments are
    pooled once), or an ``SSIMTarget`` (moments pooled once for many calls) -> [B,C,H,W] in
    [0, 1]; 0 where x == y. When only x needs a gradient (the training: warped views against
    the target) the backward is hand-written."""
    target = SSIMTarget.of(y)
    if torch.compiler.is_compiling():
        # the compiler derives and fuses the backward of the plain formula (the hand-written
        # one writes into views, which torch.compile cannot trace)
        _, _, n1, n2, d1, d2 = _ssim_terms(x, target)
        return torch.clamp(_ssim_value(n1, n2, d1, d2)[0], 0, 1)
    if torch.is_grad_enabled() and x.requires_grad and not target.image.requires_grad:
        return _SSIMWithFixedTarget.apply(x, target.image, target)
    _, _, n1, n2, d1, d2 = _ssim_terms(x, target)
    unclamped, _ = _ssim_value(n1, n2, d1, d2)
    return unclamped.clamp_(0, 1)


def photometric_error(pred: torch.Tensor, target, use_ssim: bool = True):
    """Reprojection error [B,1,H,W]: 0.85 * SSIM + 0.15 * L1 (channel means); L1 alone
    without SSIM (``--no_ssim``). ``target``: an image [B or 1,C,H,W] or an ``SSIMTarget``.
    The trainer and the hint precompute both use this."""
    image = target.image if isinstance(target, SSIMTarget) else target
    l1 = (image - pred).abs().mean(1, keepdim=True)
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
