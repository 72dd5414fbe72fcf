"""A 3D UNet in the style of Cicek et al. 2016, readable top to bottom.

    input -> encoder (levels of two 3x3x3 convs, max-pool between) -> decoder (transposed
    conv up, concatenate the skip, two 3x3x3 convs) -> head -> logits

The head is "the last three task-specific layers" of Kaur et al.: the last decoder level's
two convolutions and the 1x1x1 classifier. Transfer replaces exactly these.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from lesion_transfer.model.network import TransferNetwork


@dataclass(frozen=True)
class UNetConfig:
    """The network's shape. width, depth and norm have no defaults here: the schema owns them
    (`train.unet`), and they are always passed by name."""

    in_channels: int = 4
    out_channels: int = 1
    width: int = field(kw_only=True)  # channels of the first level; doubled at every level down
    depth: int = field(kw_only=True)  # levels: depth - 1 poolings, inputs divisible by 2 ** it
    norm: str = field(kw_only=True)  # instance, batch, group or none

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalisation(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}: expected instance, batch, group or none")


class ConvBlock(nn.Sequential):
    """Two 3x3x3 convolutions, each followed by normalisation and a leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        bias = norm == "none"  # a bias before a normalisation is subtracted right away
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=bias),
            normalisation(norm, out_channels),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=bias),
            normalisation(norm, out_channels),
            nn.LeakyReLU(0.01, inplace=True),
        )


class Encoder(nn.Module):
    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        widths = [config.width * 2**level for level in range(config.depth)]
        inputs = [config.in_channels, *widths[:-1]]
        self.levels = nn.ModuleList(ConvBlock(i, o, config.norm) for i, o in zip(inputs, widths))
        self.pool = nn.MaxPool3d(2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for level, block in enumerate(self.levels):
            if level:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        return skips  # finest first; the last one is the bottleneck


class Decoder(nn.Module):
    """Up every level; convolve every level but the finest, whose convolutions are the head's."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        widths = [config.width * 2**level for level in range(config.depth)]
        self.ups = nn.ModuleList(
            nn.ConvTranspose3d(widths[level + 1], widths[level], 2, stride=2)
            for level in reversed(range(config.depth - 1))
        )
        self.blocks = nn.ModuleList(
            ConvBlock(2 * widths[level], widths[level], config.norm)
            for level in reversed(range(1, config.depth - 1))
        )

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        x = skips[-1]
        for i, up in enumerate(self.ups):
            x = torch.cat([skips[-2 - i], up(x)], dim=1)
            if i < len(self.blocks):
                x = self.blocks[i](x)
        return x  # the finest level's concatenation, the head's input


class Head(nn.Module):
    """The last decoder level's two convolutions and the 1x1x1 classifier."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.convs = ConvBlock(2 * config.width, config.width, config.norm)
        self.classifier = nn.Conv3d(config.width, config.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.convs(x))


class UNet3D(TransferNetwork):
    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config: UNetConfig = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.head = Head(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(x)))

    def part_of(self, name: str) -> str:
        """The part ("encoder", "decoder" or "head") a parameter or layer belongs to, by its
        name: here the first component, the three submodules."""
        return name.split(".", 1)[0]

    def replace_head(self, out_channels: int) -> "UNet3D":
        """Fresh, randomly initialised last three layers sized for a new task."""
        self.config = UNetConfig(**{**self.config.to_dict(), "out_channels": out_channels})
        self.head = Head(self.config).to(next(self.parameters()).device)
        return self
