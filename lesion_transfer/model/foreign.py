"""A network another framework built (nnU-Net's, MONAI's), as the trainer and the strategies
see every network: parts by parameter name, a head that can be replaced, a description that
rebuilds it.

Each framework's module gives an architecture: a frozen dataclass with `build(device)` (the
network, built by that framework's own package), `part(name, network)` ("encoder",
"decoder" or "head" of a parameter or layer name, declared once per architecture),
`with_classes(n)`, `input_channels` and `with_input_channels(n)`, `network_name` (its
class, for messages and the report), `to_dict()` (what model
files, checkpoints and model cards record, with its `framework`) and `from_dict`
(model.files rebuilds a saved network by it).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from lesion_transfer.errors import Refusal
from lesion_transfer.io.broken import BrokenFileError
from lesion_transfer.model.network import TransferNetwork

# The names other datasets give the study's channels (lower case): BraTS 2018-2021's, BraTS
# 2023's (t1n, t1c, t2w, t2f), the Medical Segmentation Decathlon's, MONAI bundles'.
CHANNEL_NAMES = {
    "t1": ("t1", "t1w", "t1n", "t1-weighted", "t1 native"),
    "t1ce": ("t1ce", "t1c", "t1gd", "t1-gd", "t1_gd", "t1 gd", "t1post", "t1-ce", "t1ce1"),
    "t2": ("t2", "t2w", "t2-weighted"),
    "flair": ("flair", "t2f", "t2-flair", "t2flair", "t2 flair"),
}


class Architecture(Protocol):
    """What builds another framework's network (the module docstring lists each member):
    nnunet.NnunetArchitecture, monai_bundles.MonaiArchitecture."""

    @property
    def framework(self) -> str: ...
    @property
    def input_channels(self) -> int: ...
    @property
    def num_classes(self) -> int: ...
    @property
    def network_name(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    def with_classes(self, num_classes: int) -> "Architecture": ...
    def with_input_channels(self, channels: int) -> "Architecture": ...
    def build(self, device: Any = None) -> nn.Module: ...
    def part(self, name: str, network: nn.Module) -> str: ...


@dataclass(frozen=True)
class InputExpectations:
    """What a source's own files say its input was: `where` names the file (for messages);
    spacing in mm (None: not stated); intensity, the study's scale it matches
    (provenance.INTENSITY_SCALES; None: none of them), as the files describe it
    (`intensity_described`; None: not stated, nothing to check)."""

    where: str
    spacing: tuple[float, ...] | None
    intensity: str | None
    intensity_described: str | None


class IncompatibleSource(Refusal):
    """A source whose input channels cannot be matched to the target's."""


class ForeignNetwork(TransferNetwork):
    def __init__(self, architecture: Architecture) -> None:
        super().__init__()
        self.config: Architecture = architecture
        self.network = architecture.build()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def part_of(self, name: str) -> str:
        return self.config.part(name.removeprefix("network."), self.network)

    def replace_head(self, num_classes: int) -> "ForeignNetwork":
        """New head layers for `num_classes`, initialised as the framework initialises a
        network; every other weight kept."""
        kept = {k: v for k, v in self.network.state_dict().items() if self.part_of(k) != "head"}
        device = next(self.parameters()).device
        self.config = self.config.with_classes(num_classes)
        self.network = self.config.build().to(device)
        missing, unexpected = self.network.load_state_dict(kept, strict=False)
        assert not unexpected and all(self.part_of(k) == "head" for k in missing), \
            (missing, unexpected)
        return self


def with_weights(architecture: Architecture, weights: Mapping[str, torch.Tensor], path: str | Path,
                 described_by: str, error: type[BrokenFileError] = BrokenFileError
                 ) -> ForeignNetwork:
    """The architecture's network holding `weights`, which are checked against it first
    (check_shapes; a mismatch raises `error`, the reader's own kind of refusal)."""
    try:
        check_shapes(architecture, weights, path, described_by)
    except BrokenFileError as mismatch:
        raise error(mismatch.path, mismatch.detail) from None
    network = ForeignNetwork(architecture)
    network.network.load_state_dict(weights)
    return network


def check_shapes(architecture: Architecture, weights: Mapping[str, torch.Tensor],
                 path: str | Path, described_by: str) -> None:
    """Refuse weights that are not the tensors the architecture describes, naming the first
    that differs in the network's own order (the input side first), before any memory is
    spent on the network (torch's meta device)."""
    expected = {k: tuple(v.shape) for k, v in architecture.build("meta").state_dict().items()}
    held = {k: tuple(v.shape) for k, v in weights.items()}
    if held == expected:
        return
    key = [k for k in expected if held.get(k) != expected[k]] or \
        sorted(set(held) - set(expected))
    in_file = list(held.get(key[0], ())) or "missing"
    described = list(expected.get(key[0], ())) or "absent"
    raise BrokenFileError(path, f"expected the tensors {described_by} describes, found others: "
                                f"{key[0]} is {in_file} in the weights, {described} in "
                                f"{described_by}")


def channel_of(name: object) -> str | None:
    """The study's name for a source's channel name, or None."""
    spelled = str(name).strip().lower()
    return next((ours for ours, names in CHANNEL_NAMES.items() if spelled in names), None)


def input_projections(architecture: Architecture) -> list[str]:
    """The weights that take the input's channels: those whose shape changes when the
    network is built for one channel more (found, not declared: nnU-Net's first convolution
    is in its state dict twice, MONAI's residual units take the input twice)."""
    one = architecture.build("meta").state_dict()
    more = architecture.with_input_channels(architecture.input_channels + 1).build("meta")
    return [k for k, v in more.state_dict().items() if v.shape != one[k].shape]


def adapt_input_channels(network: ForeignNetwork, source_channels: Sequence[str],
                         target_channels: Sequence[str], source: str | Path
                         ) -> dict[str, str | None]:
    """The rule for a source trained on other channels: each target channel the source knows
    (by name, CHANNEL_NAMES) keeps its input weights, each other target channel starts at
    zero (the network starts out ignoring it and learns it in fine-tuning), and a source
    channel the target lacks is refused, naming `source`. Returns {target channel: the
    source's channel name or None}, which the model card records."""
    ours = [channel_of(name) for name in source_channels]
    unknown = [name for name, mine in zip(source_channels, ours)
               if mine is None or mine not in target_channels]
    if unknown:
        raise IncompatibleSource(
            f"source model {source}: channels {list(source_channels)}: expected each to be "
            f"one of the target's {list(target_channels)} (named as in "
            f"lesion_transfer.model.foreign.CHANNEL_NAMES), found {unknown}")
    mapping = {channel: (source_channels[ours.index(channel)] if channel in ours else None)
               for channel in target_channels}
    if ours == list(target_channels):
        return mapping
    projections = input_projections(network.config)
    state = network.network.state_dict()
    for key in projections:
        kept = state[key]
        adapted = torch.zeros((kept.shape[0], len(target_channels), *kept.shape[2:]),
                              dtype=kept.dtype, device=kept.device)
        for index, channel in enumerate(target_channels):
            if channel in ours:
                adapted[:, index] = kept[:, ours.index(channel)]
        state[key] = adapted
    device = next(network.parameters()).device
    network.config = network.config.with_input_channels(len(target_channels))
    network.network = network.config.build().to(device)
    network.network.load_state_dict(state)
    return mapping
