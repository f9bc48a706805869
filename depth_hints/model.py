"""The trained networks as one module: depth encoder/decoder, optional pose networks.

Names match monodepth2's weight files: encoder, depth, pose_encoder, pose (, predictive_mask).
"""
from __future__ import annotations

import math

import torch
from torch import nn

import networks
from networks.resnet_encoder import PretrainedWeightsError

from . import geometry
from .errors import DepthHintsError


class WeightsInitError(DepthHintsError, RuntimeError):
    """ImageNet weights could not be had (offline); the message names --weights_init scratch.
    networks/ stays a leaf package (monodepth2's), so its error is re-raised here as ours."""


def _encoder(num_layers: int, pretrained: bool, num_input_images: int = 1) -> nn.Module:
    try:
        return networks.ResnetEncoder(num_layers, pretrained, num_input_images=num_input_images)
    except PretrainedWeightsError as e:
        raise WeightsInitError(str(e)) from None


def _transform(axisangle: torch.Tensor, translation: torch.Tensor, invert: bool) -> torch.Tensor:
    """Pose-network output -> [B,4,4] in float32, also under a (bf16) autocast."""
    with torch.autocast(axisangle.device.type, enabled=False):
        return geometry.transformation_from_parameters(axisangle.float(), translation.float(), invert)


def set_initial_depth(decoder: nn.Module, depth: float, min_depth: float, max_depth: float) -> None:
    """Bias every disparity head so that a zero feature map decodes to ``depth`` (training
    units): sigmoid(bias) = depth_to_disp(depth). monodepth2 keeps PyTorch's default bias
    (about 0), i.e. sigmoid 0.5, depth 0.2 with --min_depth 0.1 --max_depth 100 (--init_depth)."""
    if not min_depth < depth < max_depth:
        raise ValueError(f"--init_depth {depth:g} must lie inside (--min_depth {min_depth:g}, "
                         f"--max_depth {max_depth:g}); 0 keeps the default initialisation")
    sig = float(geometry.depth_to_disp(depth, min_depth, max_depth))
    bias = math.log(sig / (1.0 - sig))
    with torch.no_grad():
        for s in decoder.scales:
            decoder._module("dispconv", s).conv.bias.fill_(bias)


class DepthHintsModel(nn.Module):
    """Holds the networks of a run and turns a batch into outputs:
    ("disp", s) [B,1,H/2^s,W/2^s], ("cam_T_cam", 0, f) [B,4,4] for temporal frames f,
    ("predictive_mask", s) [B,N,h,w] with --predictive_mask; ("axisangle", 0, f) and
    ("translation", 0, f) [B,1,3] with --pose_model_type posecnn."""

    def __init__(self, num_layers: int = 18, pretrained: bool = False, frame_ids=(0, -1, 1),
                 scales=(0, 1, 2, 3), pose_model_type: str = "separate_resnet",
                 pose_model_input: str = "pairs", predictive_mask: bool = False,
                 init_depth: float = 0.0, min_depth: float = 0.1, max_depth: float = 100.0):
        super().__init__()
        self.frame_ids = tuple(frame_ids)
        self.temporal = tuple(f for f in self.frame_ids[1:] if f != "s")
        self.scales = tuple(scales)
        self.pose_model_type = pose_model_type
        self.pose_model_input = pose_model_input
        models = {"encoder": _encoder(num_layers, pretrained)}
        models["depth"] = networks.DepthDecoder(models["encoder"].num_ch_enc, self.scales)
        if init_depth:
            set_initial_depth(models["depth"], init_depth, min_depth, max_depth)
        if self.temporal:
            num_pose_frames = 2 if pose_model_input == "pairs" else len(self.temporal) + 1
            if pose_model_type == "separate_resnet":
                models["pose_encoder"] = _encoder(num_layers, pretrained,
                                                  num_input_images=num_pose_frames)
                models["pose"] = networks.PoseDecoder(models["pose_encoder"].num_ch_enc, 1, 2)
            elif pose_model_type == "shared":
                models["pose"] = networks.PoseDecoder(models["encoder"].num_ch_enc, num_pose_frames)
            elif pose_model_type == "posecnn":
                models["pose"] = networks.PoseCNN(num_pose_frames)
            else:
                raise ValueError(f"--pose_model_type {pose_model_type!r} is not one of "
                                 f"separate_resnet, shared, posecnn")
        if predictive_mask:
            models["predictive_mask"] = networks.DepthDecoder(
                models["encoder"].num_ch_enc, self.scales, num_output_channels=len(self.frame_ids) - 1)
        self.nets = nn.ModuleDict(models)

    def forward(self, inputs: dict) -> dict:
        if self.pose_model_type == "shared" and self.temporal:
            frames = [f for f in self.frame_ids if f != "s"]
            images = torch.cat([inputs[("color_aug", f, 0)] for f in frames])
            all_features = [torch.split(x, inputs[("color_aug", 0, 0)].shape[0]) for x in self.nets["encoder"](images)]
            per_frame = {f: [x[i] for x in all_features] for i, f in enumerate(frames)}
            features = per_frame[0]
        else:
            features = self.nets["encoder"](inputs[("color_aug", 0, 0)])
            per_frame = None
        outputs = dict(self.nets["depth"](features))
        if "predictive_mask" in self.nets:
            for key, value in self.nets["predictive_mask"](features).items():
                outputs[("predictive_mask", key[1])] = value
        if self.temporal:
            outputs.update(self.predict_poses(inputs, per_frame))
        return outputs

    def predict_poses(self, inputs: dict, per_frame_features=None) -> dict:
        """Relative camera transforms from the target (0) to each temporal source frame."""
        outputs = {}
        if self.pose_model_input == "pairs":
            for f in self.temporal:
                pair = (f, 0) if f < 0 else (0, f)  # always feed in temporal order
                if self.pose_model_type == "shared":
                    pose_in = [per_frame_features[pair[0]], per_frame_features[pair[1]]]
                else:
                    images = torch.cat([inputs[("color_aug", i, 0)] for i in pair], 1)
                    pose_in = [self.nets["pose_encoder"](images)] if "pose_encoder" in self.nets else images
                axisangle, translation = self.nets["pose"](pose_in)
                outputs.update(self._pose_outputs(f, axisangle[:, 0], translation[:, 0], f < 0))
        else:
            images = torch.cat([inputs[("color_aug", f, 0)] for f in (0,) + self.temporal], 1)
            pose_in = [self.nets["pose_encoder"](images)] if "pose_encoder" in self.nets else images
            axisangle, translation = self.nets["pose"](pose_in)
            for i, f in enumerate(self.temporal):
                outputs.update(self._pose_outputs(f, axisangle[:, i], translation[:, i], False))
        return outputs

    def _pose_outputs(self, f, axisangle: torch.Tensor, translation: torch.Tensor, invert: bool) -> dict:
        """("cam_T_cam", 0, f) [B,4,4]; for posecnn also the raw ("axisangle", 0, f) and
        ("translation", 0, f) [B,1,3], which the objective scales by the mean inverse depth."""
        out = {("cam_T_cam", 0, f): _transform(axisangle, translation, invert)}
        if self.pose_model_type == "posecnn":
            out[("axisangle", 0, f)] = axisangle
            out[("translation", 0, f)] = translation
        return out

    def named_networks(self) -> dict:
        """{file name: module} as saved in a weights folder."""
        return dict(self.nets.items())
