"""The two training rules as functions of paths: pretrain on the source, fine-tune on the
target. Each writes the final model atomically, a model card and history.tsv."""

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from lesion_transfer.io.atomic import write_tsv
from lesion_transfer.io.cache import CachedSubject, load_cached
from lesion_transfer.model.files import load_model, save_model
from lesion_transfer.model.foreign import ForeignNetwork, IncompatibleSource, adapt_input_channels
from lesion_transfer.model.network import TransferNetwork
from lesion_transfer.model.sources import (
    ForeignSource,
    describe_foreign_source,
    load_foreign_network,
)
from lesion_transfer.model.strategies import ALL, STRATEGIES, Strategy
from lesion_transfer.model.unet import UNet3D, UNetConfig
from lesion_transfer.train.cards import (
    Card,
    check_compatible,
    check_same_classes,
    make_card,
    read_card,
    write_card,
)
from lesion_transfer.train.tasks import LesionTask, TumourTask
from lesion_transfer.train.trainer import (
    Fit,
    Records,
    Trainer,
    TrainingDiverged,
    TrainingResult,
    TrainSettings,
)

PRETRAIN = Strategy("pretraining on the source", False, ALL)
PRETRAIN_CONTROL = {
    "positive": Strategy("pretraining on the target's task, on the control dataset", False, ALL),
}


@dataclass(frozen=True)
class LossWeights:
    """A training block's loss weights: pos_weight (the source's binary task), class_weights
    and max_class_weight (the tumour task); None lets the task compute them from the data."""

    pos_weight: float | None
    class_weights: list[float] | None
    max_class_weight: float


@dataclass(frozen=True)
class TrainingSetup:
    """One training job's settings as the config made them, built once from the rule's
    params (workflow.training_setup): the block they came from (named in messages), the
    trainer's settings (the run's seed, the job's device), the UNet, the loss weights, the
    dataset and what the model card records as the job's config."""

    block: str  # train.pretrain, train.control_pretrain or train.finetune
    settings: TrainSettings
    unet: dict[str, Any]
    weights: LossWeights
    dataset: str
    recorded: dict[str, Any]


@dataclass(frozen=True)
class TrainingData:
    """The cache folders a job learns from and chooses its epoch on, and (fine-tuning from
    a source) the source's model file and card."""

    train: list[Path]
    validation: list[Path]
    source_model: Path | None = None
    source_card: Path | None = None  # None with a source_model: another framework's model
    source_fold: str | None = None  # which fold of an nnU-Net folder (None: its only one)


@dataclass(frozen=True)
class TrainingOutputs:
    """model.pt, model_card.json, history.tsv; the checkpoint and TensorBoard folders; the
    stream the progress bar goes to (None: none)."""

    model: Path
    card: Path
    history: Path
    checkpoints: Path
    tensorboard: Path | None = None
    progress: IO[str] | None = None


def seeded(seed: int, *stream: object) -> None:
    """Seed torch for one model's initialisation: each job its own, reproducible stream."""
    torch.manual_seed(int.from_bytes(hashlib.sha256(repr((seed, *stream)).encode()).digest()[:4],
                                     "little"))


def scramble_weights(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Permute the entries of every parameter tensor of `module` in place (seeded).

    Each tensor keeps its values, hence its mean, spread and norm, which set how a network
    trains (Raghu et al. 2019 find the scale of pretrained weights alone speeds convergence),
    while the arrangement that made them features is gone. Pretraining on shuffled labels,
    the usual negative control, still learns features of the images (Maennel et al. 2020);
    measured here, such a source beat scratch at 6 cases (bench/results/default_run.md).
    """
    with torch.no_grad():
        for parameter in module.parameters():
            flat = parameter.view(-1)
            flat.copy_(flat[torch.randperm(flat.numel(), generator=generator,
                                           device="cpu").to(flat.device)])
    return module


def write_history(history: Sequence[dict[str, float]], path: Path) -> None:
    # epochs without validation have no metrics: the columns are every epoch's keys
    columns = list(dict.fromkeys(key for row in history for key in row if key != "seconds"))
    write_tsv(history, path, [*columns, "seconds"])


def pretrain_source_stage(setup: TrainingSetup, data: TrainingData, outputs: TrainingOutputs,
                          log: logging.Logger) -> TrainingResult:
    """The source model: binary lesions, weighted BCE, on the source's training split."""
    train, validation = _load(data)
    task = LesionTask(train, setup.weights.pos_weight, setup.settings.loss)
    log.info("pretraining on %d subjects, validating on %d; positive weight %.1f", len(train),
             len(validation), task.pos_weight)
    seeded(setup.settings.seed, "source")
    model = _fresh_unet(setup, train, task)
    return _train_and_save(Fit(model, task, PRETRAIN, train, validation), setup, outputs, log,
                           {"pos_weight": task.pos_weight})


def pretrain_control_stage(control: str, setup: TrainingSetup, data: TrainingData,
                           outputs: TrainingOutputs, log: logging.Logger) -> TrainingResult:
    """A control's source model: for the positive control, the target's task (four classes,
    weighted CE) on the control dataset, with train.control_pretrain's settings. The negative
    control needs no pretraining of its own: it scrambles the study's source
    (scramble_weights)."""
    strategy = PRETRAIN_CONTROL[control]
    train, validation = _load(data)
    task = _tumour_task(setup, train)
    log.info("%s control: %s; %d training subjects of %s, %d validating", control,
             strategy.description, len(train), setup.dataset, len(validation))
    seeded(setup.settings.seed, "control", control)
    model = _fresh_unet(setup, train, task)
    return _train_and_save(Fit(model, task, strategy, train, validation), setup, outputs, log,
                           {"class_weights": task.class_weights, "control": control})


def finetune_stage(strategy_name: str, setup: TrainingSetup, data: TrainingData,
                   outputs: TrainingOutputs, log: logging.Logger) -> TrainingResult:
    """Fine-tune (or, for `scratch`, train afresh) on one fold's training subset. The source
    is this project's model, or another framework's (an nnU-Net folder, a MONAI bundle):
    then scratch trains that framework's network from its own initialisation."""
    strategy = STRATEGIES[strategy_name]
    train, validation = _load(data)
    task = _tumour_task(setup, train)
    foreign = None
    if data.source_model is not None and data.source_card is None:
        foreign = describe_foreign_source(data.source_model, data.source_fold)
    # one stream per training run, whatever the arm and size: new layers start alike in
    # every arm of a run, so that arms (and sizes) are paired within it
    seeded(setup.settings.seed, "new layers")
    fitted = {}
    if strategy.from_source and foreign is not None:
        model, fitted["source"] = _from_foreign_source(foreign, strategy, train, task, log)
    elif strategy.from_source:
        model, card = _from_own_source(data, strategy, train + validation, task, log)
        if strategy.keep_head:  # the start may be kept: the window its weights learnt at
            fitted["start_patch_size"] = card["config"]["settings"]["patch_size"]
    elif foreign is not None:
        model = _fresh_foreign(foreign, train, task)
        log.info("%s: %s's %s, freshly initialised", strategy_name, foreign.framework,
                 foreign.architecture.network_name)
    else:
        model = _fresh_unet(setup, train, task)
        log.info("%s: a fresh UNet", strategy_name)
    log.info("training on %d subjects, selecting on %d; class weights %s", len(train),
             len(validation), [round(w, 2) for w in task.class_weights])
    return _train_and_save(Fit(model, task, strategy, train, validation), setup, outputs, log,
                           {"class_weights": task.class_weights, "strategy": strategy_name,
                            **fitted})


def _from_own_source(data: TrainingData, strategy: Strategy, subjects: Sequence[CachedSubject],
                     task: TumourTask, log: logging.Logger) -> tuple[TransferNetwork, Card]:
    """This project's model: its card must fit every subject's cache (channels,
    preprocessing); its head is replaced, or kept (the positive control). Returns the
    network and the source's card."""
    # finetune_stage comes here only with this project's model file and its card
    assert data.source_model is not None and data.source_card is not None, data
    card = read_card(data.source_card)
    for subject, folder in zip(subjects, [*data.train, *data.validation]):
        check_compatible(card, data.source_card, subject.meta, folder)
    model, _ = load_model(data.source_model)
    _scramble_if_negative(model, strategy, log)
    if strategy.keep_head:
        check_same_classes(card, data.source_card, task.labels)
        log.info("starting from %s, its head kept (classes %s)", data.source_model,
                 list(task.labels))
    else:
        model.replace_head(task.out_channels)
        log.info("starting from %s, head replaced for %d classes", data.source_model,
                 task.out_channels)
    return model, card


def _from_foreign_source(foreign: ForeignSource, strategy: Strategy,
                         train: Sequence[CachedSubject], task: TumourTask, log: logging.Logger
                         ) -> tuple[TransferNetwork, dict[str, Any]]:
    """Another framework's network: its channels matched to the target's by name
    (model.foreign.adapt_input_channels), its head replaced (or kept, where it gives the
    target's number of classes). Returns the network and what its card records of the
    source."""
    channels = list(train[0].meta["channels"])
    if foreign.channels is None:
        raise IncompatibleSource(
            f"source model {foreign.path}: expected the names of the channels it was trained "
            f"on (for a MONAI bundle: configs/metadata.json's "
            f"network_data_format.inputs.image.channel_def), found none: the study matches "
            f"them to its own, {channels}, by name")
    network = load_foreign_network(foreign)
    mapping = adapt_input_channels(network, foreign.channels, channels, foreign.path)
    log.info("starting from %s (%s), channels %s", foreign.path, foreign.framework, mapping)
    _scramble_if_negative(network, strategy, log)
    if strategy.keep_head:
        if network.config.num_classes != task.out_channels:
            raise IncompatibleSource(
                f"source model {foreign.path}: expected {task.out_channels} outputs (the "
                f"target's classes) to keep its last three layers, found "
                f"{network.config.num_classes}")
    else:
        network.replace_head(task.out_channels)
    return network, foreign.card(mapping)


def _scramble_if_negative(model: nn.Module, strategy: Strategy, log: logging.Logger) -> None:
    """The negative control: the source's tensors permuted before its head is replaced (the
    new head is fresh, like every arm's)."""
    if strategy.scramble_source:
        scramble_weights(model, torch.Generator().manual_seed(torch.initial_seed()))
        log.info("the entries of each of the source's weight tensors permuted")


def _fresh_foreign(foreign: ForeignSource, train: Sequence[CachedSubject], task: TumourTask
                   ) -> ForeignNetwork:
    """scratch beside a foreign source: the same network for the target's channels and
    classes, initialised as its framework initialises it."""
    architecture = foreign.architecture.with_input_channels(len(train[0].meta["channels"]))
    return ForeignNetwork(architecture.with_classes(task.out_channels))


def _load(data: TrainingData) -> tuple[list[CachedSubject], list[CachedSubject]]:
    return ([load_cached(f) for f in data.train], [load_cached(f) for f in data.validation])


def _tumour_task(setup: TrainingSetup, train: Sequence[CachedSubject]) -> TumourTask:
    weights = setup.weights
    return TumourTask(train, weights.class_weights, weights.max_class_weight, setup.settings.loss)


def _fresh_unet(setup: TrainingSetup, train: Sequence[CachedSubject],
                task: LesionTask | TumourTask) -> UNet3D:
    return UNet3D(UNetConfig(in_channels=len(train[0].meta["channels"]),
                             out_channels=task.out_channels, **setup.unet))


def _train_and_save(fit: Fit, setup: TrainingSetup, outputs: TrainingOutputs,
                    log: logging.Logger, fitted: dict[str, Any]) -> TrainingResult:
    """The tail every training rule shares: fit (resuming from a checkpoint), then the kept
    weights, the model card and the history, each written atomically; then the checkpoint is
    removed. fitted: what the job chose for itself (loss weights, strategy or control),
    recorded in the model file and card."""
    trainer = Trainer(fit, setup.settings,
                      Records(outputs.checkpoints, log, outputs.tensorboard, outputs.progress))
    try:
        result = trainer.fit()
    except TrainingDiverged as error:
        raise TrainingDiverged(f"{error}: lower config key '{setup.block}.learning_rate' "
                               f"({setup.settings.learning_rate})") from None
    named: dict[str, Any] = {key: fitted[key] for key in ("strategy", "control") if key in fitted}
    save_model(fit.model, result.best_state, outputs.model,
               {"classes": list(fit.task.labels), **named})
    card = make_card(fit.model, fit.task, fit.train[0].meta, result.best_metrics,
                     result.best_epoch, {**setup.recorded, **fitted}, setup.dataset,
                     result.epochs_run,
                     {"device": str(trainer.device), "precision": trainer.precision,
                      "torch": torch.__version__})
    # inference slides the window the kept weights learnt at: the start's (best epoch 0, a
    # kept head) or this job's. With instance norm the window changes what a network sees:
    # the control source scored 0.84 at its 48-voxel window and 0.74 at fine-tuning's 32
    # (bench/results/default_run.md, 2026-12-01)
    kept_start = result.best_epoch == 0 and "start_patch_size" in fitted
    card["inference_patch_size"] = (fitted["start_patch_size"] if kept_start
                                    else setup.settings.patch_size)
    write_card(card, outputs.card)
    write_history(result.history, outputs.history)
    # the checkpoint only serves a killed job; the final model holds what it would resume to
    trainer.checkpoint.unlink(missing_ok=True)
    return result
