"""Model files: a network's description (this project's UNet settings, or another
framework's architecture) beside its weights, written atomically, read as data
(model.tensor_files) and rebuilt."""

import math
from pathlib import Path
from typing import Any

import torch

from lesion_transfer.io.atomic import atomic_path
from lesion_transfer.model.foreign import with_weights
from lesion_transfer.model.monai_bundles import MonaiArchitecture
from lesion_transfer.model.network import TransferNetwork
from lesion_transfer.model.nnunet import NnunetArchitecture
from lesion_transfer.model.tensor_files import BrokenModelFile, read_tensor_file
from lesion_transfer.model.unet import UNet3D, UNetConfig


def save_model(model: TransferNetwork, state: dict[str, torch.Tensor], path: str | Path,
               extra: dict[str, Any]) -> None:
    """The model's settings, its weights (`state`) and plain `extra` values, atomically:
    `unet` for this project's UNet, `architecture` for another framework's network
    (model.foreign), which records its framework."""
    described = model.config.to_dict()
    key = "architecture" if "framework" in described else "unet"
    with atomic_path(path) as tmp:
        torch.save({key: described, "state_dict": state, **extra}, tmp)


def load_model(path: str | Path, device: str | torch.device = "cpu"
               ) -> tuple[TransferNetwork, dict[str, Any]]:
    """(the network with the file's weights, the file's contents): a UNet3D, or another
    framework's network rebuilt from its recorded architecture."""
    saved = read_tensor_file(path, device)
    if isinstance(saved, dict) and {"architecture", "state_dict"} <= set(saved):
        return _foreign_network(path, saved), saved
    if not isinstance(saved, dict) or not {"unet", "state_dict"} <= set(saved):
        raise BrokenModelFile(path, f"expected a lesion-transfer model (keys 'unet' or "
                                    f"'architecture', and 'state_dict'), found "
                                    f"{type(saved).__name__}"
                                    f"{sorted(saved)[:6] if isinstance(saved, dict) else ''}")
    model = UNet3D(_settings_that_match_the_tensors(path, saved))
    model.load_state_dict(saved["state_dict"])
    return model, saved


def _foreign_network(path: str | Path, saved: dict[str, Any]) -> TransferNetwork:
    """The network an `architecture` entry describes (its framework's own package builds
    it), its weights checked against it first."""
    described = saved["architecture"]
    frameworks: dict[str, Any] = {"nnunetv2": NnunetArchitecture, "monai": MonaiArchitecture}
    framework = described.get("framework") if isinstance(described, dict) else None
    if framework not in frameworks:
        raise BrokenModelFile(path, f"expected an architecture of one of the frameworks "
                                    f"{', '.join(frameworks)}, found {framework!r}")
    try:
        architecture = frameworks[framework].from_dict(described)
    except (TypeError, KeyError) as error:
        raise BrokenModelFile(path, f"expected a {framework} architecture, found "
                                    f"{described!r} ({error!r})") from None
    weights = {k.removeprefix("network."): v for k, v in saved["state_dict"].items()}
    return with_weights(architecture, weights, path, f"its {framework} architecture",
                        BrokenModelFile)


def _settings_that_match_the_tensors(path: str | Path, saved: dict[str, Any]) -> UNetConfig:
    """The file's UNet settings, once the network they describe has been laid out without
    memory (torch's meta device) and found to hold exactly the file's tensors: settings that
    do not match (a hand-edited width, another architecture) are refused before anything is
    allocated, however large the network they describe."""
    try:
        config = UNetConfig(**saved["unet"])
        with torch.device("meta"):
            expected = {key: tuple(value.shape)
                        for key, value in UNet3D(config).state_dict().items()}
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as error:
        raise BrokenModelFile(path, f"expected UNet settings lesion-transfer can build, found "
                                    f"'unet' {saved['unet']!r} ({error})") from None
    tensors = saved["state_dict"]
    held = {key: tuple(value.shape) for key, value in tensors.items()
            if isinstance(value, torch.Tensor)} if isinstance(tensors, dict) else {}
    if held != expected:
        key = sorted(set(expected) ^ set(held)) or [k for k in expected if expected[k] != held[k]]
        values = sum(math.prod(shape) for shape in expected.values())
        raise BrokenModelFile(path, f"expected the tensors its settings 'unet' {saved['unet']!r} "
                                    f"describe ({values:,} values), found others: {key[0]} is "
                                    f"{list(held.get(key[0], ())) or 'missing'} in the file, "
                                    f"{list(expected.get(key[0], ())) or 'absent'} in the "
                                    f"settings")
    return config
