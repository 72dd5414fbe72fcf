"""What the trainer, the strategies, model files and cards need of a network, whichever
built it (this project's UNet3D, or model.foreign's ForeignNetwork around nnU-Net's or
MONAI's): the part each parameter belongs to, a head that can be replaced, and a description
that rebuilds it."""

from typing import Any, Protocol

from torch import nn


class Description(Protocol):
    """What rebuilds a network (UNetConfig, or another framework's architecture): recorded
    in model files, checkpoints' signatures and model cards."""

    def to_dict(self) -> dict[str, Any]: ...


class TransferNetwork(nn.Module):
    """A network the study transfers. Subclasses set `config` and implement the two hooks."""

    config: Any  # a Description; each subclass narrows it (UNetConfig, an Architecture)

    def part_of(self, name: str) -> str:
        """The part ("encoder", "decoder" or "head") a parameter or layer belongs to, by its
        name: what the strategies freeze and train."""
        raise NotImplementedError

    def replace_head(self, out_channels: int) -> "TransferNetwork":
        """Fresh last three layers sized for a new task; every other weight kept."""
        raise NotImplementedError
