"""ResNet feature encoder used by the depth network and the separate pose network."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import numpy as np
import torch
from torch import nn

from .resnet import ResNet

# torchvision's published ImageNet weights (IMAGENET1K_V1) for every supported depth; the file
# names are also the torch hub cache names, so checkpoints cached by torchvision are found.
IMAGENET_URLS: dict[int, str] = {
    18: "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    34: "https://download.pytorch.org/models/resnet34-b627a593.pth",
    50: "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    101: "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    152: "https://download.pytorch.org/models/resnet152-394f9c45.pth",
}

class PretrainedWeightsError(RuntimeError):
    """ImageNet weights could not be had; the message names --weights_init scratch."""


# Seconds a single socket operation may block while fetching ImageNet weights.
DOWNLOAD_TIMEOUT_S = 10.0


def imagenet_checkpoint_path(num_layers: int) -> str:
    """Path where torch.hub caches the torchvision ImageNet checkpoint for this depth."""
    url = IMAGENET_URLS[num_layers]
    filename = os.path.basename(urlparse(url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


def load_imagenet_state_dict(num_layers: int) -> dict[str, torch.Tensor]:
    """Load the torchvision ImageNet state dict, from the hub cache or (with a timeout) the web."""
    url = IMAGENET_URLS[num_layers]
    cached = imagenet_checkpoint_path(num_layers)
    if os.path.isfile(cached):
        return torch.load(cached, map_location="cpu", weights_only=True)

    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False)
    except OSError as err:  # URLError, HTTPError, socket.timeout and socket.gaierror are all OSErrors
        raise PretrainedWeightsError(
            f"Could not download ImageNet weights for ResNet{num_layers} ({err}). "
            "Train from scratch with --weights_init scratch, or put the torchvision "
            f"checkpoint in the torch hub cache ({cached})."
        ) from err
    finally:
        socket.setdefaulttimeout(previous_timeout)


def _multi_image_conv1(num_input_images: int) -> nn.Conv2d:
    """First ResNet conv taking 3*num_input_images channels, initialised like torchvision."""
    conv = nn.Conv2d(3 * num_input_images, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def build_resnet(num_layers: int, pretrained: bool, num_input_images: int = 1) -> ResNet:
    """ResNet whose conv1 takes 3*num_input_images channels, optionally ImageNet-initialised."""
    model = ResNet(num_layers)  # raises ValueError naming the supported depths
    if num_input_images < 1:
        raise ValueError(f"num_input_images must be >= 1, got {num_input_images!r}")
    if num_input_images > 1:
        model.conv1 = _multi_image_conv1(num_input_images)

    if pretrained:
        state = load_imagenet_state_dict(num_layers)
        if num_input_images > 1:
            # Tile the RGB filters over the stacked frames, scaled so responses keep their magnitude.
            weight = state["conv1.weight"]
            state["conv1.weight"] = torch.cat([weight] * num_input_images, dim=1) / num_input_images
        model.load_state_dict(state)
    return model


class ResnetEncoder(nn.Module):
    """ResNet encoder returning five feature maps at strides 2, 4, 8, 16 and 32."""

    def __init__(self, num_layers: int, pretrained: bool, num_input_images: int = 1) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.num_input_images = num_input_images
        self.encoder = build_resnet(num_layers, pretrained, num_input_images)
        # The classification head is never used but stays registered so that state-dict keys
        # match monodepth2's (encoder.fc.*) and released weights load unchanged. Frozen, it is
        # excluded from training: no gradient, and DDP's reducer does not wait for one.
        self.encoder.fc.requires_grad_(False)

        self.num_ch_enc = np.array([64, 64, 128, 256, 512])
        if num_layers > 34:
            self.num_ch_enc[1:] *= 4  # bottleneck blocks expand channels by 4

    def forward(self, input_image: torch.Tensor) -> list[torch.Tensor]:
        """[B,3*N,H,W] in [0,1] -> features [B,C_i,H/2^(i+1),W/2^(i+1)] for i = 0..4."""
        enc = self.encoder
        x = (input_image - 0.45) / 0.225
        x = enc.relu(enc.bn1(enc.conv1(x)))
        features = [x]
        features.append(enc.layer1(enc.maxpool(features[-1])))
        features.append(enc.layer2(features[-1]))
        features.append(enc.layer3(features[-1]))
        features.append(enc.layer4(features[-1]))
        return features
