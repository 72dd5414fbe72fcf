"""nnU-Net v2 trained-model folders as sources (issue 24): read as data, built by nnU-Net's
own architecture package, their parts declared once.

A folder as nnU-Net v2 writes it (`nnUNet_results/DatasetXXX/<trainer>__<plans>__<config>`):
plans.json, dataset.json and fold_K/checkpoint_final.pth (or checkpoint_best.pth). The
network is whatever plans.json names, built by dynamic-network-architectures (the optional
extra `[nnunet]`), never rewritten here. Nothing in the folder runs: the checkpoint is read by
torch's restricted loader (numpy's scalars, which its training log holds, are the only
classes added), and the classes plans.json names are looked up in a fixed list (nnU-Net's
UNets and torch.nn's layers), where nnU-Net itself imports whatever the file says.

Parts (what a strategy freezes): the encoder is `encoder` (the decoder's reference to it
included); the head, "the last three task-specific layers", is the last decoder stage (its
convolutions) and every segmentation layer (the deep-supervision outputs too: they predict
the source's classes); the rest of the decoder is the decoder.
"""

import contextlib
import importlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lesion_transfer.errors import Refusal
from lesion_transfer.io.broken import BrokenFileError, reading
from lesion_transfer.model.foreign import ForeignNetwork, InputExpectations, with_weights
from lesion_transfer.model.tensor_files import read_tensor_file

CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_best.pth")  # nnU-Net's order of preference
# of dynamic_network_architectures.architectures.unet: the UNets nnU-Net v2 plans
NETWORKS = ("PlainConvUNet", "ResidualEncoderUNet")
LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.InstanceNorm1d, nn.InstanceNorm2d,
          nn.InstanceNorm3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm,
          nn.LeakyReLU, nn.ReLU, nn.PReLU, nn.GELU, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
          nn.Dropout3d)
# how plans.json may name them: the full path nnU-Net writes, or the short one
_NETWORK_SPELLINGS = {spelling: network for network in NETWORKS for spelling in
                      (f"dynamic_network_architectures.architectures.unet.{network}", network)}
_LAYER_SPELLINGS = {spelling: layer for layer in LAYERS for spelling in
                    (f"{layer.__module__}.{layer.__name__}", f"torch.nn.{layer.__name__}")}
# what an nnU-Net checkpoint's log holds besides plain values: numpy scalars (they rebuild a
# number from its bytes and run nothing)
NUMPY_SCALARS = (importlib.import_module("numpy._core.multiarray").scalar, np.dtype,
                 np.dtypes.Float64DType, np.dtypes.Float32DType, np.dtypes.Int64DType,
                 np.dtypes.Int32DType, np.dtypes.BoolDType)
EXTRA = "pip install -c envs/constraints.txt -e '.[nnunet]'"


# nnU-Net's per-channel normalisation schemes, as the study's intensity scales (none is the
# paper's [0, 1] remap)
NNUNET_SCHEMES = {"ZScoreNormalization": "zscore"}


class NnunetFolderError(BrokenFileError):
    """An nnU-Net v2 model folder that lacks a file, or whose files do not describe one
    network."""


class MissingFramework(Refusal):
    """A source whose framework's package is not installed."""


@dataclass(frozen=True)
class NnunetArchitecture:
    """What builds the network: plans.json's architecture entry (class and arguments, the
    layers named as plans.json names them), and the channels and classes it was trained
    with. Recorded in checkpoints' signatures and model cards (to_dict)."""

    network_class_name: str
    arch_kwargs: dict[str, Any]
    requires_import: tuple[str, ...]  # the arch_kwargs that name a layer class
    input_channels: int
    num_classes: int
    framework: str = "nnunetv2"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "requires_import": list(self.requires_import)}

    @property
    def network_name(self) -> str:
        """The network's class, as messages and the report name it: PlainConvUNet, ..."""
        return self.network_class_name.rsplit(".", 1)[-1]

    @classmethod
    def from_dict(cls, described: Mapping[str, Any]) -> "NnunetArchitecture":
        return cls(**{**described, "requires_import": tuple(described["requires_import"])})

    def with_classes(self, num_classes: int) -> "NnunetArchitecture":
        return replace(self, num_classes=num_classes)

    def with_input_channels(self, channels: int) -> "NnunetArchitecture":
        return replace(self, input_channels=channels)

    def build(self, device: Any = None) -> nn.Module:
        """The network, built by dynamic-network-architectures and initialised as nnU-Net
        initialises it (`initialize`), without deep supervision (one output, as the trainer
        and the evaluation expect), on `device` (meta: shapes only)."""
        network_class = _network_class(self.network_class_name)
        kwargs = dict(self.arch_kwargs)
        for key in self.requires_import:
            if kwargs.get(key) is not None:
                kwargs[key] = _LAYER_SPELLINGS[kwargs[key]]
        kwargs["deep_supervision"] = False
        with torch.device(device) if device else contextlib.nullcontext():
            network = network_class(input_channels=self.input_channels,
                                    num_classes=self.num_classes, **kwargs)
        if hasattr(network, "initialize") and device != "meta":
            network.apply(network.initialize)
        return network

    @staticmethod
    def part(name: str, network: Any) -> str:
        """The encoder (the decoder's reference to it too); the head: the last decoder stage
        and every segmentation layer; the rest of the decoder."""
        if name.startswith(("encoder.", "decoder.encoder.")) or name == "encoder":
            return "encoder"
        last = len(network.decoder.stages) - 1
        if name.startswith((f"decoder.stages.{last}.", "decoder.seg_layers.")):
            return "head"
        return "decoder"


@dataclass(frozen=True)
class NnunetModel:
    """A trained-model folder, read: the network, its weights' file, and what the network
    expects of its input (plans.json and dataset.json), which the target must match."""

    folder: Path
    fold: str  # the fold_K folder read (K: a number, or "all")
    checkpoint: Path
    configuration: str
    architecture: NnunetArchitecture
    channels: tuple[str, ...]  # dataset.json's channel_names, in input order
    labels: dict[str, Any]  # dataset.json's labels: name -> value (or region)
    # the configuration's target spacing, in nnU-Net's (transposed) axis order
    spacing: tuple[float, ...]
    # one per channel: ZScoreNormalization, CTNormalization, ...
    normalization_schemes: tuple[str, ...]
    patch_size: tuple[int, ...]
    licence: str | None  # dataset.json's licence, where it states one

    def expectations(self) -> InputExpectations:
        """The configuration's spacing and per-channel normalisation, as the study reads
        them (nnU-Net's ZScoreNormalization is preprocess.intensity zscore)."""
        schemes = sorted(set(self.normalization_schemes))
        scales = {NNUNET_SCHEMES.get(scheme) for scheme in schemes}
        return InputExpectations(
            f"{self.folder / 'plans.json'} configuration {self.configuration}", self.spacing,
            scales.pop() if len(scales) == 1 else None, ", ".join(schemes))


def is_nnunet_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "plans.json").exists()


def read_nnunet_folder(folder: str | Path, fold: int | str | None = None) -> NnunetModel:
    """The folder's description and the checkpoint of `fold` (an int, "all", or None: the
    folder's only fold). Refuses, naming the file, what nnU-Net would not load."""
    folder = Path(folder)
    plans, dataset = (_json(folder / name) for name in ("plans.json", "dataset.json"))
    fold, checkpoint = _checkpoint_path(folder, fold)
    saved = _read_checkpoint(checkpoint)
    name = _configuration_name(folder, saved, checkpoint)
    configuration = _configuration(plans, name, folder / "plans.json")
    architecture = _architecture(configuration, name, dataset, folder)
    licence = dataset.get("licence", dataset.get("license"))
    return NnunetModel(
        folder, fold, checkpoint, name, architecture, _channel_names(dataset, folder),
        dict(dataset["labels"]), tuple(configuration["spacing"]),
        tuple(configuration["normalization_schemes"]), tuple(configuration["patch_size"]),
        str(licence) if licence is not None else None)


def load_nnunet_network(model: NnunetModel, device: str | torch.device = "cpu"
                        ) -> ForeignNetwork:
    """The trained network, its weights checked against plans.json's architecture before any
    memory is spent on them."""
    weights = _read_checkpoint(model.checkpoint, device)["network_weights"]
    described_by = (f"plans.json's {model.architecture.network_class_name} "
                    f"({model.architecture.input_channels} channels, "
                    f"{model.architecture.num_classes} outputs)")
    network = with_weights(model.architecture, weights, model.checkpoint, described_by,
                           NnunetFolderError)
    return network.to(device)


# --- reading the folder ---------------------------------------------------------------------


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise NnunetFolderError(path, "expected a file of nnU-Net v2's trained-model folder "
                                      f"(plans.json, dataset.json, fold_K/{CHECKPOINTS[0]}), "
                                      "found nothing")
    with reading(path, "JSON"):
        value = json.loads(path.read_text())
    if not isinstance(value, dict):
        raise NnunetFolderError(path, f"expected a JSON object, found {type(value).__name__}")
    return value


def checkpoint_of(folder: str | Path, fold: int | str | None = None) -> tuple[str, Path]:
    """(the fold, its checkpoint's path) of a trained-model folder, without reading it."""
    return _checkpoint_path(Path(folder), fold)


def _checkpoint_path(folder: Path, fold: int | str | None) -> tuple[str, Path]:
    folds = sorted(p.name.removeprefix("fold_") for p in folder.glob("fold_*") if p.is_dir())
    if fold is None and len(folds) != 1:
        raise NnunetFolderError(folder, f"expected one fold_K folder, or the fold named, found "
                                        f"{len(folds)}: {', '.join(folds) or 'none'}")
    chosen_fold = folds[0] if fold is None else str(fold)
    chosen = folder / f"fold_{chosen_fold}"
    for name in CHECKPOINTS:
        if (chosen / name).is_file():
            return chosen_fold, chosen / name
    raise NnunetFolderError(chosen, f"expected {' or '.join(CHECKPOINTS)}, found "
                                    f"{sorted(p.name for p in chosen.glob('*')) or 'nothing'}")


def _read_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    saved = read_tensor_file(path, device, also_allowed=NUMPY_SCALARS)
    weights = saved.get("network_weights") if isinstance(saved, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor)
                                                for v in weights.values()):
        found = sorted(saved)[:6] if isinstance(saved, dict) else type(saved).__name__
        raise NnunetFolderError(path, "expected an nnU-Net v2 checkpoint (a dict whose "
                                      f"'network_weights' holds the tensors), found {found}")
    return saved


def _configuration_name(folder: Path, saved: Mapping[str, Any], checkpoint: Path) -> str:
    """From the checkpoint's init_args, or the folder's name (<trainer>__<plans>__<config>)."""
    name = (saved.get("init_args") or {}).get("configuration")
    if name is None and folder.name.count("__") == 2:
        name = folder.name.rsplit("__", 1)[1]
    if not isinstance(name, str):
        raise NnunetFolderError(checkpoint, "expected init_args.configuration (or a folder "
                                            "named <trainer>__<plans>__<configuration>), "
                                            "found neither")
    return name


def _configuration(plans: Mapping[str, Any], name: str, path: Path) -> dict[str, Any]:
    """plans.json's configuration `name`, with what it inherits (inherits_from)."""
    configurations = plans.get("configurations") or {}
    if name not in configurations:
        raise NnunetFolderError(path, f"expected configuration {name!r}, found "
                                      f"{sorted(configurations) or 'none'}")
    entry = configurations[name]
    parent = entry.get("inherits_from")
    merged = {**_configuration(plans, parent, path), **entry} if parent else dict(entry)
    missing = [k for k in ("architecture", "spacing", "normalization_schemes", "patch_size")
               if k not in merged]
    if missing:
        raise NnunetFolderError(path, f"configuration {name!r}: expected "
                                      f"{', '.join(missing)}, found none (plans written before "
                                      "nnU-Net v2.3 describe the UNet by other keys: open the "
                                      "model once with a newer nnU-Net and save its plans)")
    return merged


def _architecture(configuration: Mapping[str, Any], name: str, dataset: Mapping[str, Any],
                  folder: Path) -> NnunetArchitecture:
    entry = configuration["architecture"]
    where = f"configurations.{name}.architecture"
    if not isinstance(entry, dict) or not isinstance(entry.get("arch_kwargs"), dict):
        raise NnunetFolderError(folder / "plans.json", f"{where}: expected network_class_name "
                                                       f"and arch_kwargs, found {entry!r}")
    plans = folder / "plans.json"
    name = str(entry.get("network_class_name"))
    if name not in _NETWORK_SPELLINGS:
        raise NnunetFolderError(plans, f"{where}.network_class_name: expected one of "
                                       f"{', '.join(_NETWORK_SPELLINGS)} (nothing else is built "
                                       f"from a model folder), found {name!r}")
    for key in entry.get("_kw_requires_import", ()):
        value = entry["arch_kwargs"].get(key)
        if value is not None and value not in _LAYER_SPELLINGS:
            listed = ", ".join(sorted(f"torch.nn.{layer.__name__}" for layer in LAYERS))
            raise NnunetFolderError(plans, f"{where}.arch_kwargs.{key}: expected one of "
                                           f"torch.nn's layers ({listed}), found {value!r}")
    return NnunetArchitecture(
        name, entry["arch_kwargs"],
        tuple(entry.get("_kw_requires_import", ())), len(_channel_names(dataset, folder)),
        _segmentation_outputs(dataset["labels"]))


def _channel_names(dataset: Mapping[str, Any], folder: Path) -> tuple[str, ...]:
    channels = dataset.get("channel_names", dataset.get("modality"))
    if not isinstance(channels, dict) or not channels:
        raise NnunetFolderError(folder / "dataset.json", "expected channel_names ({'0': "
                                                         f"'T1', ...}}), found {channels!r}")
    return tuple(str(channels[k]) for k in sorted(channels, key=int))


def _segmentation_outputs(labels: Mapping[str, Any]) -> int:
    """nnU-Net's output channels: one per label, or one per foreground region when labels
    are regions (lists of values, as BraTS models are trained)."""
    regions = any(isinstance(v, (list, tuple)) for v in labels.values())
    return len(labels) - 1 if regions else len(labels)


def _network_class(name: str) -> Any:
    try:
        from dynamic_network_architectures.architectures import unet
    except ImportError:
        raise MissingFramework(f"an nnU-Net v2 source needs the package "
                               f"dynamic-network-architectures, which is not installed: "
                               f"{EXTRA}") from None
    return getattr(unet, _NETWORK_SPELLINGS[name])
