"""MONAI networks as sources (issue 24): a bundle's network, read as data and built by MONAI.

A bundle as MONAI's model zoo lays it out: configs/inference.json (or .yaml) whose
`network_def` names the network (`_target_`) and its constructor's arguments,
models/model.pt (its weights: a state dict, or a checkpoint holding one under `model`),
configs/metadata.json (what the network takes and gives) and LICENSE. Only `network_def` is
read, and only as plain values: a bundle's `$` expressions and `@` references are Python that
MONAI's ConfigParser would run, and are refused here; the class is looked up in a fixed list
of MONAI's segmentation networks, never imported by name.

Parts, declared once per network (the head is "the last three task-specific layers": the
last decoder block and the output convolution):
- BasicUNet: encoder conv_0 and down_1-4; head upcat_1's convolutions and final_conv;
- SegResNet: encoder convInit and down_layers; head the last up_layers block and conv_final;
- UNet: its nested `model` (down, skip connection around the rest, up): every down layer and
  the bottom one are the encoder, the outermost up layer (which gives the classes) the head.
"""

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lesion_transfer.io.broken import BrokenFileError, reading
from lesion_transfer.model.foreign import ForeignNetwork, InputExpectations, with_weights
from lesion_transfer.model.tensor_files import read_tensor_file

NETWORKS = ("BasicUNet", "SegResNet", "UNet")  # of monai.networks.nets
CONFIGS = ("configs/inference.json", "configs/inference.yaml", "configs/inference.yml")
WEIGHTS = "models/model.pt"
# the keys of network_def that are MONAI's config syntax, not the network's arguments
SYNTAX = ("_target_", "_desc_", "_requires_", "_disabled_", "_mode_")


class MonaiBundleError(BrokenFileError):
    """A bundle that lacks a file, or whose files do not describe one network."""


@dataclass(frozen=True)
class MonaiArchitecture:
    """network_def: the network's class (one of NETWORKS) and its arguments."""

    network: str
    arguments: dict[str, Any]
    framework: str = "monai"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def network_name(self) -> str:
        """The network's class, as messages and the report name it: SegResNet, ..."""
        return self.network

    @classmethod
    def from_dict(cls, described: Mapping[str, Any]) -> "MonaiArchitecture":
        return cls(**described)

    @property
    def num_classes(self) -> int:
        return int(self.arguments["out_channels"])

    @property
    def input_channels(self) -> int:
        return int(self.arguments["in_channels"])

    def with_classes(self, num_classes: int) -> "MonaiArchitecture":
        return MonaiArchitecture(self.network, {**self.arguments, "out_channels": num_classes})

    def with_input_channels(self, channels: int) -> "MonaiArchitecture":
        return MonaiArchitecture(self.network, {**self.arguments, "in_channels": channels})

    def build(self, device: Any = None) -> nn.Module:
        from monai.networks import nets

        if device is None:
            return getattr(nets, self.network)(**self.arguments)
        with torch.device(device):
            return getattr(nets, self.network)(**self.arguments)

    def part(self, name: str, network: nn.Module) -> str:
        return {"BasicUNet": _basic_unet_part, "SegResNet": _segresnet_part,
                "UNet": _unet_part}[self.network](name, network)


@dataclass(frozen=True)
class MonaiBundle:
    """A bundle, read: its network, its weights' file and what metadata.json says of the
    input (channels by name, where it names them) and the licence."""

    folder: Path
    weights: Path
    architecture: MonaiArchitecture
    channels: tuple[str, ...] | None  # metadata.json's inputs.image.channel_def, in order
    licence: str | None  # LICENSE's first line, or metadata.json's license
    expectations: InputExpectations  # what its `preprocessing` transforms do to the input


def is_monai_bundle(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and any((path / c).exists() for c in CONFIGS)


def read_monai_bundle(folder: str | Path) -> MonaiBundle:
    folder = Path(folder)
    config_path = next((folder / c for c in CONFIGS if (folder / c).is_file()), None)
    if config_path is None:
        raise MonaiBundleError(folder, f"expected a MONAI bundle ({' or '.join(CONFIGS)} with "
                                       f"network_def, and {WEIGHTS}), found no config")
    config = _read_config(config_path)
    architecture = _architecture(config.get("network_def"), config_path)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise MonaiBundleError(weights, "expected the bundle's weights, found nothing")
    metadata = _metadata(folder / "configs" / "metadata.json")
    return MonaiBundle(folder, weights, architecture, _channels(metadata),
                       _licence(folder, metadata), _expectations(config, config_path))


def load_monai_network(bundle: MonaiBundle, device: str | torch.device = "cpu"
                       ) -> ForeignNetwork:
    """The bundle's network with its weights, checked against network_def first."""
    weights = _state_dict(read_tensor_file(bundle.weights, device), bundle.weights)
    network = with_weights(bundle.architecture, weights, bundle.weights,
                           f"network_def's {bundle.architecture.network}", MonaiBundleError)
    return network.to(device)


# --- parts ----------------------------------------------------------------------------------


def _basic_unet_part(name: str, network: nn.Module) -> str:
    first = name.split(".", 1)[0]
    if first in ("conv_0", "down_1", "down_2", "down_3", "down_4"):
        return "encoder"
    if name.startswith("upcat_1.convs.") or first == "final_conv":
        return "head"
    return "decoder"


def _segresnet_part(name: str, network: nn.Module) -> str:
    first = name.split(".", 1)[0]
    if first in ("convInit", "down_layers"):
        return "encoder"
    up_layers = network.up_layers
    assert isinstance(up_layers, nn.ModuleList)  # SegResNet's decoder blocks, in order
    if name.startswith(f"up_layers.{len(up_layers) - 1}.") or first == "conv_final":
        return "head"
    return "decoder"


def _unet_part(name: str, network: nn.Module) -> str:
    """model.0 is the first down layer, model.1 a skip connection around the next level
    (its submodule: down, the next level, up), model.2 the last up layer."""
    rest, depth = name.removeprefix("model."), 0
    while rest.startswith("1.submodule."):
        rest, depth = rest.removeprefix("1.submodule."), depth + 1
    if rest.startswith("2.") or rest == "2":
        return "head" if depth == 0 else "decoder"
    return "encoder"  # a down layer (0.), or the bottom one


# --- reading the bundle ---------------------------------------------------------------------


def _read_config(path: Path) -> dict[str, Any]:
    with reading(path, "a MONAI bundle config"):
        if path.suffix == ".json":
            config = json.loads(path.read_text())
        else:
            import yaml

            config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict):
        raise MonaiBundleError(path, f"expected a mapping, found {type(config).__name__}")
    return config


def _architecture(definition: Any, path: Path) -> MonaiArchitecture:
    if not isinstance(definition, dict) or "_target_" not in definition:
        raise MonaiBundleError(path, "expected network_def with _target_ and the network's "
                                     f"arguments, found {definition!r}")
    target = str(definition["_target_"])
    name = target.rsplit(".", 1)[-1]
    if name not in NETWORKS or target not in (name, f"monai.networks.nets.{name}"):
        raise MonaiBundleError(path, f"network_def._target_: expected one of "
                                     f"{', '.join(NETWORKS)} (monai.networks.nets), found "
                                     f"{target!r}")
    arguments = {k: v for k, v in definition.items() if k not in SYNTAX}
    for key, value in _leaves(arguments, "network_def"):
        if isinstance(value, str) and value[:1] in ("$", "@", "%"):
            raise MonaiBundleError(path, f"{key}: expected a plain value, found {value!r} (a "
                                         "MONAI expression or reference, which would run "
                                         "code: write the value itself)")
    if arguments.get("spatial_dims", 3) != 3:
        raise MonaiBundleError(path, f"network_def.spatial_dims: expected 3, found "
                                     f"{arguments['spatial_dims']!r}")
    if not {"in_channels", "out_channels"} <= set(arguments):
        raise MonaiBundleError(path, "network_def: expected in_channels and out_channels, "
                                     f"found {sorted(arguments)}")
    return MonaiArchitecture(name, arguments)


def _leaves(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _leaves(item, f"{key}.{name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{key}[{index}]")
    else:
        yield key, value


def _state_dict(saved: Any, path: Path) -> dict[str, torch.Tensor]:
    """A bundle's model.pt: the state dict itself, or a checkpoint holding it under model."""
    if isinstance(saved, dict) and isinstance(saved.get("model"), dict):
        saved = saved["model"]
    if not isinstance(saved, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in saved.values()):
        found = sorted(saved)[:6] if isinstance(saved, dict) else type(saved).__name__
        raise MonaiBundleError(path, "expected a state dict (or a checkpoint with one under "
                                     f"'model'), found {found}")
    return saved


# MONAI's intensity transforms (what a bundle's `preprocessing` may hold), by name
INTENSITY_TRANSFORMS = ("NormalizeIntensityd", "NormalizeIntensity", "ScaleIntensityd",
                        "ScaleIntensity", "ScaleIntensityRanged", "ScaleIntensityRange",
                        "ScaleIntensityRangePercentilesd", "ScaleIntensityRangePercentiles")


def _expectations(config: Mapping[str, Any], config_path: Path) -> InputExpectations:
    """The spacing (Spacingd's pixdim) and intensity scale (its intensity transform) of the
    bundle's `preprocessing`, read as plain values. NormalizeIntensityd on the nonzero voxels,
    channel by channel, is the z-score inside a skull-stripped brain (preprocess.intensity
    zscore); a min-max or range scaling is none of the study's scales. A bundle without
    `preprocessing` states nothing; one whose preprocessing has no intensity transform feeds
    its network raw intensities, which no cache holds."""
    preprocessing = config.get("preprocessing")
    if preprocessing is None:
        return InputExpectations(f"{config_path} (no preprocessing)", None, None, None)
    if isinstance(preprocessing, dict):
        preprocessing = preprocessing.get("transforms", [])
    transforms = [t for t in preprocessing if isinstance(t, dict)] \
        if isinstance(preprocessing, list) else []
    spacing: tuple[float, ...] | None = None
    intensity: str | None = None
    described = "no intensity transform (raw intensities)"
    for transform in transforms:
        name = str(transform.get("_target_", "")).rsplit(".", 1)[-1]
        if name in ("Spacingd", "Spacing") and "pixdim" in transform:
            pixdim = transform["pixdim"]
            if isinstance(pixdim, (int, float)):
                pixdim = [pixdim] * 3
            if isinstance(pixdim, list) and all(isinstance(v, (int, float)) for v in pixdim):
                spacing = tuple(float(v) for v in pixdim)
        elif name in INTENSITY_TRANSFORMS:
            options = {k: v for k, v in transform.items() if k not in ("_target_", "keys")}
            described = f"{name}({', '.join(f'{k}={v!r}' for k, v in options.items())})"
            zscore = name.startswith("NormalizeIntensity") and options.get("nonzero") is True \
                and options.get("channel_wise") is True and options.get("subtrahend") is None
            intensity = "zscore" if zscore else None
    return InputExpectations(f"{config_path} preprocessing", spacing, intensity, described)


def _metadata(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with reading(path, "a MONAI bundle's metadata.json"):
        metadata = json.loads(path.read_text())
    return metadata if isinstance(metadata, dict) else {}


def _channels(metadata: Mapping[str, Any]) -> tuple[str, ...] | None:
    image = ((metadata.get("network_data_format") or {}).get("inputs") or {}).get("image") or {}
    names = image.get("channel_def")
    if not isinstance(names, dict):
        return None
    return tuple(str(names[k]) for k in sorted(names, key=lambda k: int(k)))


def _licence(folder: Path, metadata: Mapping[str, Any]) -> str | None:
    licence = folder / "LICENSE"
    if licence.is_file():
        first = next((line.strip() for line in licence.read_text(errors="replace").splitlines()
                      if line.strip()), None)
        if first:
            return first
    stated = metadata.get("license")
    return str(stated) if stated else None
