"""The study's source, whatever made it: this project's model file (model.pt with its
model_card.json), an nnU-Net v2 trained-model folder, or a MONAI bundle. Every file is read as
data (model.tensor_files); which kind a path is, is decided by what lies there."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lesion_transfer.errors import Refusal
from lesion_transfer.io.atomic import file_sha256
from lesion_transfer.model.foreign import Architecture, ForeignNetwork, InputExpectations
from lesion_transfer.provenance import INTENSITY_SCALES, PAPER_SCALE

FRAMEWORKS = ("lesion-transfer", "nnunetv2", "monai")


class UnknownSource(Refusal):
    """A path that is none of the kinds of source the study reads."""


@dataclass(frozen=True)
class ForeignSource:
    """Another framework's model, described (weights unread): what builds its network, the
    channels it was trained on, its licence, and the files it is made of."""

    path: Path
    framework: str
    architecture: Architecture
    channels: tuple[str, ...] | None  # its channel names, in input order (None: not said)
    licence: str | None
    weights: Path
    files: list[Path]  # every file it is made of, for the model card's hashes
    expects: InputExpectations  # what its files say its input was
    fold: str | None = None  # an nnU-Net folder's fold

    def card(self, channel_mapping: Mapping[str, str | None]) -> dict[str, Any]:
        """What a model fine-tuned from it records of it."""
        return {"framework": self.framework, "path": str(self.path), "fold": self.fold,
                "architecture": self.architecture.to_dict(), "licence": self.licence,
                "channels": channel_mapping,
                "sha256": {str(f.relative_to(self.path)): file_sha256(f) for f in self.files}}


def framework_of(path: str | Path) -> str:
    """lesion-transfer (a model file), nnunetv2 (a folder with plans.json) or monai (a folder
    with configs/inference.json); anything else is refused, naming the path."""
    from lesion_transfer.model.monai_bundles import is_monai_bundle
    from lesion_transfer.model.nnunet import is_nnunet_folder

    path = Path(path)
    if path.is_file():
        return "lesion-transfer"
    if is_nnunet_folder(path):
        return "nnunetv2"
    if is_monai_bundle(path):
        return "monai"
    raise UnknownSource(
        f"source model {path}: expected a lesion-transfer model.pt (its model_card.json "
        f"beside it), an nnU-Net v2 trained-model folder (plans.json, dataset.json, "
        f"fold_K/checkpoint_final.pth) or a MONAI bundle (configs/inference.json, "
        f"models/model.pt), found {'a folder of neither' if path.is_dir() else 'nothing'}")


@dataclass(frozen=True)
class SourceFiles:
    """Where another framework's source lies and which files it is made of, found without
    reading any: what a cluster job's own reading of the workflow needs (the run that
    submitted it checked the source whole)."""

    path: Path
    framework: str
    fold: str | None
    files: list[Path]


def locate_foreign_source(path: str | Path, fold: str | None = None) -> SourceFiles:
    """The files of an nnU-Net folder (plans.json, dataset.json, the fold's checkpoint) or a
    MONAI bundle (its configs and weights), sorted; anything else is refused, naming the
    path."""
    path = Path(path)
    framework = framework_of(path)
    if framework == "nnunetv2":
        from lesion_transfer.model.nnunet import checkpoint_of

        fold, checkpoint = checkpoint_of(path, fold)
        return SourceFiles(path, framework, fold,
                           [path / "plans.json", path / "dataset.json", checkpoint])
    if framework == "monai":
        from lesion_transfer.model.monai_bundles import WEIGHTS

        files = [f for f in (*(path / "configs").glob("*"), path / WEIGHTS) if f.is_file()]
        return SourceFiles(path, framework, None, sorted(files))
    raise UnknownSource(f"source model {path}: expected an nnU-Net v2 trained-model folder or "
                        f"a MONAI bundle, found a lesion-transfer model file")


def describe_foreign_source(path: str | Path, fold: str | None = None) -> ForeignSource:
    """An nnU-Net folder or MONAI bundle, described without building its network."""
    located = locate_foreign_source(path, fold)
    if located.framework == "nnunetv2":
        from lesion_transfer.model.nnunet import read_nnunet_folder

        model = read_nnunet_folder(located.path, located.fold)
        return ForeignSource(located.path, located.framework, model.architecture,
                             model.channels, model.licence, model.checkpoint, located.files,
                             model.expectations(), located.fold)
    from lesion_transfer.model.monai_bundles import read_monai_bundle

    bundle = read_monai_bundle(located.path)
    return ForeignSource(located.path, located.framework, bundle.architecture, bundle.channels,
                         bundle.licence, bundle.weights, located.files, bundle.expectations)


def load_foreign_network(source: ForeignSource, device: str | torch.device = "cpu"
                         ) -> ForeignNetwork:
    """The source's network with its weights (checked against its architecture first)."""
    if source.framework == "nnunetv2":
        from lesion_transfer.model.nnunet import load_nnunet_network, read_nnunet_folder

        return load_nnunet_network(read_nnunet_folder(source.path, source.fold), device)
    from lesion_transfer.model.monai_bundles import load_monai_network, read_monai_bundle

    return load_monai_network(read_monai_bundle(source.path), device)


@dataclass(frozen=True)
class TargetInput:
    """What the study feeds a source's network: the target cache's channels (in order), its
    grid (isotropic, preprocess.spacing_mm) and the training patch (train.finetune)."""

    channels: tuple[str, ...]
    spacing_mm: float
    patch_size: tuple[int, ...]
    intensity: str = PAPER_SCALE  # the caches' scale (preprocess.intensity)


def check_foreign_source(path: str | Path, fold: str | None, target: TargetInput
                         ) -> ForeignSource:
    """Refuse, before any job, an nnU-Net folder or MONAI bundle the study cannot feed: every
    problem listed (channels it cannot match by name, another grid or intensity scale than
    the target's, a patch its network cannot take), each naming the file that says so."""
    from lesion_transfer.model.foreign import IncompatibleSource, channel_of

    source = describe_foreign_source(path, fold)
    problems: list[str] = []
    if source.channels is None:
        problems.append("its files do not name its channels (a MONAI bundle: "
                        "configs/metadata.json's network_data_format.inputs.image.channel_def)")
    else:
        unknown = [c for c in source.channels if channel_of(c) not in target.channels]
        if unknown:
            problems.append(f"channels {list(source.channels)}: expected each to be one of the "
                            f"target's {list(target.channels)} by name, found {unknown}")
    problems += _expectation_problems(source, target)
    problems += _patch_problems(source, target)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise IncompatibleSource(f"source model {path}: {len(problems)} problem(s), no job "
                                 f"started:\n{listed}")
    return source


def _expectation_problems(source: ForeignSource, target: TargetInput) -> list[str]:
    """The grid and intensity scale the source's own files say it was trained on, where they
    say it."""
    expects = source.expects
    problems: list[str] = []
    if expects.spacing is not None and any(abs(s - target.spacing_mm) > 1e-3
                                           for s in expects.spacing):
        problems.append(f"{expects.where}: spacing {list(expects.spacing)} mm, the target's "
                        f"preprocess.spacing_mm {target.spacing_mm}")
    if expects.intensity_described is not None and expects.intensity != target.intensity:
        problems.append(f"{expects.where}: intensities normalised by "
                        f"{expects.intensity_described}, the target's caches are "
                        f"{INTENSITY_SCALES[target.intensity]} "
                        f"(preprocess.intensity: {target.intensity})")
    return problems


def _patch_problems(source: ForeignSource, target: TargetInput) -> list[str]:
    """The training patch through the network, shapes only (torch's meta device): a network
    that pools more often than the patch allows fails here, not in the first job."""
    architecture = source.architecture.with_input_channels(len(target.channels))
    network = architecture.build("meta")
    try:
        network(torch.empty(2, len(target.channels), *target.patch_size, device="meta"))
    except (RuntimeError, ValueError) as error:
        first = (str(error).splitlines() or [""])[0]
        return [f"its network cannot take the training patch {list(target.patch_size)} "
                f"(train.finetune.patch_size): {first}"]
    return []
