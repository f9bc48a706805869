"""U-Net style decoder that turns encoder features into sigmoid disparity maps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .layers import Conv3x3, ConvBlock, upsample

ModuleKey = tuple[str | int, ...]  # ("upconv", level, stage) or ("dispconv", scale)


class DepthDecoder(nn.Module):
    """Decode five encoder features into disparities {("disp", s): [B,C_out,H/2^s,W/2^s]}."""

    num_ch_dec = (16, 32, 64, 128, 256)

    def __init__(
        self,
        num_ch_enc: Sequence[int],
        scales: Iterable[int] = range(4),
        num_output_channels: int = 1,
        use_skips: bool = True,
    ) -> None:
        super().__init__()
        self.num_ch_enc = [int(c) for c in num_ch_enc]
        self.scales = list(scales)
        self.num_output_channels = num_output_channels
        self.use_skips = use_skips
        if len(self.num_ch_enc) != 5:
            raise ValueError(f"num_ch_enc must have 5 entries, got {len(self.num_ch_enc)}")
        bad = [s for s in self.scales if s not in range(5)]
        if bad:
            raise ValueError(f"scales must lie in 0..4, got {bad}")

        # Module order fixes the state-dict keys (decoder.0 ... decoder.N), matching monodepth2.
        modules: list[nn.Module] = []
        self._index: dict[ModuleKey, int] = {}

        def add(key: ModuleKey, module: nn.Module) -> None:
            self._index[key] = len(modules)
            modules.append(module)

        for i in range(4, -1, -1):
            ch_in = self.num_ch_enc[-1] if i == 4 else self.num_ch_dec[i + 1]
            add(("upconv", i, 0), ConvBlock(ch_in, self.num_ch_dec[i]))
            ch_in = self.num_ch_dec[i]
            if self.use_skips and i > 0:
                ch_in += self.num_ch_enc[i - 1]
            add(("upconv", i, 1), ConvBlock(ch_in, self.num_ch_dec[i]))
        for s in self.scales:
            add(("dispconv", s), Conv3x3(self.num_ch_dec[s], num_output_channels))

        self.decoder = nn.ModuleList(modules)
        self.sigmoid = nn.Sigmoid()

    def _module(self, *key: str | int) -> nn.Module:
        """Look up a decoder module by name, e.g. ("upconv", 4, 0) or ("dispconv", 0)."""
        return self.decoder[self._index[key]]

    def forward(self, input_features: Sequence[torch.Tensor]) -> dict[tuple[str, int], torch.Tensor]:
        """Features [B,C_i,H/2^(i+1),W/2^(i+1)] -> {("disp", s): [B,C_out,H/2^s,W/2^s]} in (0,1)."""
        outputs: dict[tuple[str, int], torch.Tensor] = {}
        x = input_features[-1]
        for i in range(4, -1, -1):
            x = self._module("upconv", i, 0)(x)
            x = upsample(x)
            if self.use_skips and i > 0:
                x = torch.cat([x, input_features[i - 1]], dim=1)
            x = self._module("upconv", i, 1)(x)
            if i in self.scales:
                outputs[("disp", i)] = self.sigmoid(self._module("dispconv", i)(x))
        return outputs
