"""ResNet-18/34/50/101/152 (He et al. 2016; bottleneck stride on the 3x3 conv, "v1.5").

Written here so that building the encoder does not import torchvision (whose package import
costs seconds at start-up). Module names, state-dict keys and the random initialisation match
torchvision's ``resnetNN(weights=None)`` exactly: under the same seed the two state dicts are
equal bit for bit, and torchvision ImageNet checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import torch
from torch import nn

# Blocks per stage (layer1..layer4) for every supported depth, and whether it uses bottlenecks.
DEPTHS: dict[int, tuple[tuple[int, int, int, int], bool]] = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
    101: ((3, 4, 23, 3), True),
    152: ((3, 8, 36, 3), True),
}


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    """Bias-free square conv padded to keep the size at stride 1 (kernel 1 or 3)."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a skip: [B,C_in,H,W] -> [B,planes,H/stride,W/stride]."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        # Registration order fixes the state-dict key order: conv1, bn1, conv2, bn2, downsample.
        self.conv1 = _conv(in_ch, planes, 3, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + skip)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, with a skip:
    [B,C_in,H,W] -> [B,4*planes,H/stride,W/stride]."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv(in_ch, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv(planes, planes * self.expansion, 1)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + skip)


class ResNet(nn.Module):
    """ImageNet ResNet: stem (7x7/2 conv, 3x3/2 max-pool), four stages, pooled 1000-way fc.

    ``forward``: [B,3,H,W] -> logits [B,num_classes]. The depth encoder calls the stages itself.
    """

    def __init__(self, num_layers: int, num_classes: int = 1000) -> None:
        super().__init__()
        if num_layers not in DEPTHS:
            raise ValueError(f"num_layers must be one of {sorted(DEPTHS)}, got {num_layers!r}")
        blocks, bottleneck = DEPTHS[num_layers]
        block = Bottleneck if bottleneck else BasicBlock
        # Creation order matters: each default init draws from the global RNG in this order.
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = 64
        stages = []
        for index, (count, planes) in enumerate(zip(blocks, (64, 128, 256, 512))):
            stages.append(_stage(block, in_ch, planes, count, stride=1 if index == 0 else 2))
            in_ch = planes * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        # He-normal convs (fan-out) and unit/zero BatchNorm, visited in self.modules() order.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _stage(block: type[BasicBlock] | type[Bottleneck], in_ch: int, planes: int, count: int,
           stride: int) -> nn.Sequential:
    """``count`` blocks; the first changes stride/width, through a 1x1 conv + BN skip if needed."""
    out_ch = planes * block.expansion
    downsample = None
    if stride != 1 or in_ch != out_ch:
        # Built before the first block: it draws its default init from the RNG first.
        downsample = nn.Sequential(_conv(in_ch, out_ch, 1, stride), nn.BatchNorm2d(out_ch))
    layers = [block(in_ch, planes, stride, downsample)]
    layers += [block(out_ch, planes) for _ in range(count - 1)]
    return nn.Sequential(*layers)
