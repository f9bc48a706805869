"""The training objective: view synthesis from predicted depth and poses, and the loss.

Composes the pure pieces of ``geometry`` and ``losses`` into one function of (batch, network
outputs) so that the trainer holds no math. Shapes: the batch keys of datasets/mono_dataset.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import geometry, losses

IDENTITY_NOISE = 1e-5  # tie-breaking noise on the identity reprojection (auto-masking)
PREDICTIVE_MASK_WEIGHT = 0.2


@dataclass(frozen=True)
class LossConfig:
    """The options the objective reads."""
    frame_ids: tuple = (0, -1, 1)
    scales: tuple = (0, 1, 2, 3)
    min_depth: float = 0.1
    max_depth: float = 100.0
    use_ssim: bool = True
    avg_reprojection: bool = False
    automask: bool = True
    v1_multiscale: bool = False
    use_depth_hints: bool = False
    disparity_smoothness: float = 1e-3
    predictive_mask: bool = False
    pose_model_type: str = "separate_resnet"
    pose_model_input: str = "pairs"

    @classmethod
    def from_options(cls, opt) -> "LossConfig":
        return cls(frame_ids=tuple(opt.frame_ids), scales=tuple(opt.scales), min_depth=opt.min_depth,
                   max_depth=opt.max_depth, use_ssim=not opt.no_ssim,
                   avg_reprojection=opt.avg_reprojection, automask=not opt.disable_automasking,
                   v1_multiscale=opt.v1_multiscale, use_depth_hints=opt.use_depth_hints,
                   disparity_smoothness=opt.disparity_smoothness, predictive_mask=opt.predictive_mask,
                   pose_model_type=opt.pose_model_type, pose_model_input=opt.pose_model_input)

    @property
    def source_frames(self) -> tuple:
        return tuple(self.frame_ids[1:])


def _resize_nearest(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="nearest")


def posecnn_transform(axisangle: torch.Tensor, translation: torch.Tensor, depth: torch.Tensor,
                      invert: bool) -> torch.Tensor:
    """PoseCNN output -> [B,4,4] with the translation scaled by the target's mean inverse depth,
    as monodepth2 does for ``--pose_model_type posecnn`` (from Wang et al. 2018).

    axisangle, translation [B,1,3]; depth [B,1,H,W] of the scale being synthesised."""
    mean_inv_depth = (1.0 / depth.float()).mean(dim=(2, 3)).reshape(-1, 1, 1)  # [B,1,1]
    return geometry.transformation_from_parameters(axisangle.float(),
                                                   translation.float() * mean_inv_depth, invert)


def _source_transform(inputs: dict, outputs: dict, frame_id, depth: torch.Tensor, cfg: LossConfig):
    """source_T_target [B,4,4] for one source frame at the scale of ``depth``."""
    if frame_id == "s":
        return inputs["stereo_T"]
    if cfg.pose_model_type == "posecnn":
        invert = cfg.pose_model_input == "pairs" and frame_id < 0
        return posecnn_transform(outputs[("axisangle", 0, frame_id)],
                                 outputs[("translation", 0, frame_id)], depth, invert)
    return outputs[("cam_T_cam", 0, frame_id)]


def identity_tie_break(identity: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """identity [B,1,H,W] + N(0, 1) * IDENTITY_NOISE drawn on its device in its dtype (a
    ``generator`` must belong to that device), so ties between identity and prediction break
    at random without a host-to-device copy."""
    noise = torch.randn(identity.shape, generator=generator, device=identity.device, dtype=identity.dtype)
    return identity + noise * IDENTITY_NOISE


def _reduce_sources(errors: torch.Tensor, average: bool) -> torch.Tensor:
    """[B,N,H,W] errors over N source views -> [B,1,H,W] (minimum, or mean)."""
    return errors.mean(1, keepdim=True) if average else errors.min(1, keepdim=True)[0]


def synthesise_views(inputs: dict, outputs: dict, cfg: LossConfig) -> None:
    """Adds ("depth", 0, s) and the warped sources ("color", f, s) to ``outputs``.

    Disparities are upsampled to full resolution (or kept per scale with v1_multiscale)."""
    height, width = inputs[("color", 0, 0)].shape[-2:]
    for s in cfg.scales:
        disp = outputs[("disp", s)]
        source_scale = s if cfg.v1_multiscale else 0
        if not cfg.v1_multiscale:
            disp = geometry.upsample_to(disp, height, width)
        _, depth = geometry.disp_to_depth(disp, cfg.min_depth, cfg.max_depth)
        outputs[("depth", 0, s)] = depth
        for f in cfg.source_frames:
            outputs[("color", f, s)] = geometry.warp(
                inputs[("color", f, source_scale)], depth, inputs[("K", source_scale)],
                inputs[("inv_K", source_scale)], _source_transform(inputs, outputs, f, depth, cfg))


def _scoring_target(image: torch.Tensor, cfg: LossConfig):
    """The target view as photometric_error takes it: with SSIM, its moments pooled once for
    every error scored against it (same values as pooling them per call)."""
    return losses.SSIMTarget(image) if cfg.use_ssim else image


def hint_reprojection(inputs: dict, cfg: LossConfig, target=None) -> torch.Tensor:
    """Photometric error of the other stereo view warped with the depth hint [B,1,H,W];
    +1000 where there is no hint, so a missing hint never wins the selection. ``target``: the
    full-resolution target as ``_scoring_target`` gives it (default: made here)."""
    warped = geometry.warp(inputs[("color", "s", 0)], inputs["depth_hint"], inputs[("K", 0)],
                           inputs[("inv_K", 0)], inputs["stereo_T"])
    if target is None:
        target = _scoring_target(inputs[("color", 0, 0)], cfg)
    error = losses.photometric_error(warped, target, cfg.use_ssim)
    return error + losses.MISSING_HINT_PENALTY * (1 - inputs["depth_hint_mask"])


def compute_losses(inputs: dict, outputs: dict, cfg: LossConfig, generator=None) -> dict:
    """Total loss and its parts from a batch and the network outputs (after synthesise_views).

    Returns {"loss": scalar, ("loss", s): scalar, ("hint_loss", s), ("reprojection_mask", s),
    ("hint_mask", s) [B,1,h,w] ...}. ``generator`` (on the batch's device) seeds the auto-masking tie-break noise."""
    result: dict = {}
    total = 0.0
    height, width = inputs[("color", 0, 0)].shape[-2:]

    # Full-resolution terms that do not depend on the scale are computed once.
    identity_full = hint_full = None
    full_target = _scoring_target(inputs[("color", 0, 0)], cfg)
    if cfg.automask and not cfg.v1_multiscale:
        identity_full = _identity_errors(inputs, cfg, 0, full_target)
    if cfg.use_depth_hints:
        hint_full = hint_reprojection(inputs, cfg, full_target)

    for s in cfg.scales:
        source_scale = s if cfg.v1_multiscale else 0
        target = full_target if source_scale == 0 else _scoring_target(inputs[("color", 0, s)], cfg)
        h, w = inputs[("color", 0, source_scale)].shape[-2:]
        errors = torch.cat([losses.photometric_error(outputs[("color", f, s)], target, cfg.use_ssim)
                            for f in cfg.source_frames], 1)
        loss = 0.0
        if cfg.predictive_mask:
            mask = outputs[("predictive_mask", s)]
            if not cfg.v1_multiscale:
                mask = geometry.upsample_to(mask, h, w)
            errors = errors * mask
            loss = loss + PREDICTIVE_MASK_WEIGHT * losses.mask_regularisation(mask).mean()
        reprojection = _reduce_sources(errors, cfg.avg_reprojection)

        identity = None
        if cfg.automask:
            identity = identity_full if identity_full is not None else _identity_errors(inputs, cfg, s, target)
            identity = identity_tie_break(identity, generator)

        hint_error = _resize_nearest(hint_full, h, w) if hint_full is not None else None
        reprojection_mask, hint_mask = losses.select_losses(reprojection, identity, hint_error)
        loss = loss + losses.masked_mean(reprojection, reprojection_mask)

        if hint_mask is not None:
            depth = outputs[("depth", 0, s)]
            hint = _resize_nearest(inputs["depth_hint"], h, w)
            valid = _resize_nearest(inputs["depth_hint_mask"], h, w)
            per_pixel = losses.depth_hint_loss(geometry.upsample_to(depth, h, w), hint, valid, hint_mask)
            hint_loss = per_pixel.sum() / (hint_mask.sum() + 1e-7)
            loss = loss + hint_loss
            result[("hint_loss", s)] = hint_loss.detach()
            result[("hint_mask", s)] = hint_mask.detach()

        disp = outputs[("disp", s)]
        color = inputs[("color", 0, s)]
        smooth = losses.edge_aware_smoothness(losses.mean_normalised(disp), color)
        loss = loss + cfg.disparity_smoothness * smooth / (2 ** s)

        result[("loss", s)] = loss.detach()
        result[("reprojection_mask", s)] = reprojection_mask.detach()
        total = total + loss
    result["loss"] = total / len(cfg.scales)
    return result


def training_losses(inputs: dict, outputs: dict, cfg: LossConfig, generator=None) -> dict:
    """The whole objective of one batch: ``synthesise_views`` (adds to ``outputs``), then
    ``compute_losses``; what ``--compile`` compiles as one graph."""
    synthesise_views(inputs, outputs, cfg)
    return compute_losses(inputs, outputs, cfg, generator)


def _identity_errors(inputs: dict, cfg: LossConfig, scale: int, target) -> torch.Tensor:
    """Photometric error of the unwarped sources against ``target`` (the frame-0 image at
    ``scale``, as ``_scoring_target`` gives it), reduced over sources."""
    errors = torch.cat([losses.photometric_error(inputs[("color", f, scale)], target, cfg.use_ssim)
                        for f in cfg.source_frames], 1)
    return _reduce_sources(errors, cfg.avg_reprojection)
