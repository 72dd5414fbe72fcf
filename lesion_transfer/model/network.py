"""What the trainer, the strategies, model files and cards need of a network, whichever
built it (this project's UNet3D, or model.foreign's ForeignNetwork around nnU-Net's or
MONAI's): the part each parameter belongs to, a head that can be replaced, and a description
that rebuilds it."""

from typing import Any

from torch import nn


class TransferNetwork(nn.Module):
    """A network the study transfers. Subclasses set `config` and implement the two hooks."""

    # what rebuilds it, with to_dict() (recorded in model files, checkpoints' signatures and
    # model cards): UNet3D's UNetConfig, ForeignNetwork's model.foreign.Architecture
    config: Any

    def part_of(self, name: str) -> str:
        """The part ("encoder", "decoder" or "head") a parameter or layer belongs to, by its
        name: what the strategies freeze and train."""
        raise NotImplementedError

    def replace_head(self, out_channels: int) -> "TransferNetwork":
        """Fresh last three layers sized for a new task; every other weight kept."""
        raise NotImplementedError
