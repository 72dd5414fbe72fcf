"""One trainer for pretraining and fine-tuning.

Hooks: the task gives loss() and validate(); the strategy says which parts train at each
epoch. Each epoch ends with a checkpoint (weights, optimiser, scaler, epoch, RNG states,
history, best model so far) written atomically outside the rule's declared outputs, so that a
killed job run again continues where it stopped and ends with the same number of epochs.
"""

import contextlib
import copy
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from lesion_transfer.devices import (
    autocast_context,
    resolve_device,
    resolve_precision,
    training_memory_format,
)
from lesion_transfer.errors import Refusal
from lesion_transfer.io.atomic import atomic_path
from lesion_transfer.io.cache import CachedSubject
from lesion_transfer.model.network import TransferNetwork
from lesion_transfer.model.strategies import Strategy, apply_strategy, set_train_mode
from lesion_transfer.model.tensor_files import BrokenModelFile, read_tensor_file
from lesion_transfer.train.augment import augmentation
from lesion_transfer.train.data import PatchSampler, TrainingBatches, batches
from lesion_transfer.train.tasks import LesionTask, TumourTask


class NonFiniteStep(ArithmeticError):
    """Inside a training step: what was not finite (the trainer adds where)."""


class TrainingDiverged(Refusal):
    """A loss or gradient that is NaN or infinite: every later step would be too."""


LOADER_WORKERS = "LESION_TRANSFER_LOADER_WORKERS"  # overrides the default below, like nnU-Net's
#                                                   nnUNet_n_proc_DA (0: no worker processes)


def loader_workers(device: torch.device) -> int:
    """Processes that make batches beside training. On a GPU: one per thread the job has
    beyond the first (at most 8), so the GPU never waits on the CPU. On the CPU none: the step
    already uses every thread, and a worker only takes cores from it (bench/loader.py). The
    batches are the same whatever the number, so it is not a setting that reruns anything;
    LESION_TRANSFER_LOADER_WORKERS overrides it."""
    import os

    if os.environ.get(LOADER_WORKERS):
        return int(os.environ[LOADER_WORKERS])
    if device.type != "cuda":
        return 0
    return min(8, max(1, torch.get_num_threads() - 1))


@dataclass(frozen=True)
class TrainSettings:
    """One training job's settings. No defaults here: the config schema owns them (every key
    of a train.pretrain / train.finetune block is filled in when the config is read)."""

    epochs: int
    iterations_per_epoch: int
    batch_size: int
    patch_size: tuple[int, ...] | None  # None: whole cached volumes
    learning_rate: float
    source_lr_scale: float  # the source's layers train at learning_rate times this
    weight_decay: float
    foreground_fraction: float
    validate_every: int  # epochs between validations; the last epoch always validates
    patience: int | None  # stop after this many epochs without a better validation; None: never
    device: str
    precision: str  # auto, bf16, fp16 or fp32: devices.resolve_precision
    seed: int
    augmentation: dict[str, Any]  # the block's `augmentation` (train.augment.augmentation reads it)
    loss: str  # weighted_ce or dice_ce: train.tasks reads it
    lr_schedule: str  # constant or poly
    keep: str  # best (the best validation's weights) or last
    weight_average_epochs: int  # with keep last: the model averages the last this many epochs
    foreground_sampling: str  # each_class or any_voxel: train.data.PatchSampler

    @classmethod
    def from_config(cls, block: Mapping[str, Any], seed: int, device: str, precision: str
                    ) -> "TrainSettings":
        """From a schema-filled train.pretrain or train.finetune block."""
        names = [f for f in cls.__dataclass_fields__ if f not in ("device", "precision", "seed")]
        # augmentation is compared by value in the checkpoint's signature: a plain dict
        values = {name: block[name] for name in names}
        if values["patch_size"] is not None:
            values["patch_size"] = tuple(values["patch_size"])
        return cls(**values, seed=seed, device=device, precision=precision)


def run_seed(seed: int, fold: int, repeat: int) -> int:
    """The seed of training run (fold, repeat) of a fine-tuning arm: its batch order and
    augmentation, and (train.stages) the initialisation of its new layers, the same for every
    arm and size. Repeat 0 keeps the seed a study with one run had (seed + fold)."""
    if repeat == 0:
        return seed + fold
    digest = hashlib.sha256(repr(("training run", seed, fold, repeat)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def lay_out(model: torch.nn.Module, memory_format: torch.memory_format) -> None:
    """The model's 5-D weights in `memory_format` (devices.training_memory_format)."""
    # Module.to takes memory_format (torch's documentation), though its type stubs omit it
    model.to(memory_format=memory_format)  # type: ignore[call-overload]


def _digest(arrays: Iterable[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


# a fit's progress, as its checkpoint holds it: epoch, history, best_epoch, best_metrics,
# best_state, optimizer, stopped_at, average_sum, average_count
State = dict[str, Any]


@dataclass
class TrainingResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    epochs_run: int = 0  # below the maximum when training stopped early


@dataclass
class Fit:
    """What a Trainer fits: the model, its task (loss, validation score) and strategy (what
    trains when), the cached subjects it learns from and those that choose its epoch. The
    model says which part each of its parameters belongs to (part_of) and describes itself
    (config.to_dict(), recorded in the checkpoint's signature and the model card)."""

    model: TransferNetwork
    task: LesionTask | TumourTask
    strategy: Strategy
    train: Sequence[CachedSubject]
    validation: Sequence[CachedSubject]


@dataclass(frozen=True)
class Records:
    """Where a fit keeps what outlives a step: its checkpoint folder (resuming a killed job),
    its log, TensorBoard's folder and the progress bar's stream (None: neither)."""

    checkpoints: Path
    log: logging.Logger
    tensorboard: Path | None = None
    progress: IO[str] | None = None


class Trainer:
    def __init__(self, fit: Fit, settings: TrainSettings, records: Records) -> None:
        self.model = fit.model
        self.task = fit.task
        self.strategy = fit.strategy
        self.train_subjects = fit.train
        self.validation_subjects = fit.validation
        self.settings = settings
        self.checkpoint = Path(records.checkpoints) / "last.pt"
        self.log = records.log
        self.tensorboard_dir = records.tensorboard
        self.progress_stream = records.progress
        self.device = resolve_device(settings.device)
        self.precision = resolve_precision(settings.precision, self.device)
        self.memory_format = training_memory_format(self.device, self.precision)
        self.model.to(self.device)
        lay_out(self.model, self.memory_format)
        torch.manual_seed(settings.seed)
        random.seed(settings.seed)
        sampler = PatchSampler(fit.train, settings.patch_size or fit.train[0].label.shape,
                               settings.foreground_fraction, fit.task.labels,
                               augmentation(settings.augmentation), settings.foreground_sampling)
        self.batches = TrainingBatches(sampler, settings.batch_size, settings.seed)
        self.workers = loader_workers(self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.signature = self._signature()

    # --- hooks a subclass may override ----------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return autocast_context(self.device, self.precision)

    def make_optimizer(self, trainable: Sequence[str]) -> torch.optim.Optimizer:
        """Adam over the parts that train. Started from a source, its layers (all but the new
        head) form a group of their own at source_lr_scale of the learning rate; a kept head
        is the source's too, so then every layer trains at that scale."""
        parameters = apply_strategy(self.model, trainable)
        scale = self.settings.source_lr_scale
        if not self.strategy.from_source or scale == 1:
            groups: list[dict[str, Any]] = [{"params": parameters, "lr_scale": 1.0}]
        elif self.strategy.keep_head:
            groups = [{"params": parameters, "lr_scale": scale}]
        else:
            named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
            new = [p for n, p in named if self.model.part_of(n) == "head"]
            kept = [p for n, p in named if self.model.part_of(n) != "head"]
            groups = [g for g in ({"params": new, "lr_scale": 1.0},
                                  {"params": kept, "lr_scale": scale}) if g["params"]]
        return torch.optim.Adam(groups, lr=self.settings.learning_rate,
                                weight_decay=self.settings.weight_decay)

    def learning_rate(self, epoch: int) -> float:
        """The epoch's learning rate: constant, or nnU-Net's poly decay to 0 at the end."""
        if self.settings.lr_schedule == "poly":
            return self.settings.learning_rate * (1 - epoch / self.settings.epochs) ** 0.9
        return self.settings.learning_rate

    def train_step(self, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                   classes: torch.Tensor) -> float:
        images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
        classes = classes.to(self.device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.model(images)
        loss = self.task.loss(logits, classes)
        self.scaler.scale(loss).backward()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteStep(f"the loss is {value}")
        # fp16's scaler skips a step whose gradients overflowed, as it should: check the others
        if not self.scaler.is_enabled():
            gradients = [p.grad for p in self.model.parameters() if p.grad is not None]
            norm = float(torch.nn.utils.get_total_norm(gradients)) if gradients else 0.0
            if not math.isfinite(norm):
                raise NonFiniteStep(f"the loss is {value:.4g} but the gradient's norm is {norm}")
        self.scaler.step(optimizer)
        self.scaler.update()
        return value

    def validate(self) -> dict[str, float]:
        return self.task.validate(self.model, self.validation_subjects,
                                  self.settings.patch_size, self.device, self.autocast)

    # --- the loop -------------------------------------------------------------------------

    def fit(self) -> TrainingResult:
        state = self._resume()
        self.log.info("batches made by %d loader worker process%s (%s)", self.workers,
                      "" if self.workers == 1 else "es", LOADER_WORKERS + " overrides it")
        writer = self._tensorboard()
        trainable = self.strategy.trainable_at(state["epoch"], self.settings.epochs)
        optimizer = self.make_optimizer(trainable)
        if state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
        if state["epoch"] == 0 and self.strategy.keep_head and self.settings.keep == "best":
            self._validate_the_start(state)
        for epoch in range(state["epoch"], self.settings.epochs):
            if state.get("stopped_at"):
                break
            now_trainable = self.strategy.trainable_at(epoch, self.settings.epochs)
            if now_trainable != trainable:
                trainable = now_trainable
                optimizer = self.make_optimizer(trainable)
                self.log.info("epoch %d: now training %s", epoch + 1, ", ".join(trainable))
            started = time.time()
            for group in optimizer.param_groups:
                group["lr"] = self.learning_rate(epoch) * group["lr_scale"]
            set_train_mode(self.model, trainable)
            losses = self._train_epoch(optimizer, epoch)
            row = {"epoch": epoch + 1, "loss": float(np.mean(losses))}
            self._add_to_average(state, epoch)
            if self._validates(epoch):
                scores = self.validate()
                row.update({k: float(v) for k, v in scores.items()})
                if self.settings.keep == "best":
                    self._keep_if_best(state, epoch, scores)
            row["seconds"] = time.time() - started
            state["history"].append(row)
            best = state["best_metrics"].get(self.task.selection_metric, float("nan"))
            self.log.info("epoch %d/%d loss %.4f %s %s%s lr %.2g %.1fs", epoch + 1,
                          self.settings.epochs, row["loss"], self.task.selection_metric,
                          f"{row[self.task.selection_metric]:.4f}"
                          if self.task.selection_metric in row else "-",
                          f" (best {best:.4f} at {state['best_epoch']})"
                          if self.settings.keep == "best" else "",
                          self.learning_rate(epoch), row["seconds"])
            if writer:
                for key, value in row.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, epoch + 1)
                writer.flush()
            state["epoch"] = epoch + 1
            if self._stops(state):
                state["stopped_at"] = epoch + 1
                self.log.info("stopping early after epoch %d: no better %s for %d epochs "
                              "(best %.4f at epoch %d)", epoch + 1, self.task.selection_metric,
                              epoch + 1 - state["best_epoch"], best, state["best_epoch"])
            self._save_checkpoint(state, optimizer)
        if writer:
            writer.close()
        if self.settings.keep == "last":
            self._keep_last(state)
        # what is saved and what runs next does not depend on the layout training chose
        lay_out(self.model, torch.contiguous_format)
        kept = {key: value.contiguous() for key, value in state["best_state"].items()}
        return TrainingResult(kept, state["best_epoch"], state["best_metrics"],
                              state["history"], state["epoch"])

    def _train_epoch(self, optimizer: torch.optim.Optimizer, epoch: int) -> list[float]:
        """The epoch's steps; the first non-finite loss or gradient stops training before the
        weights it would spoil are stepped, checkpointed or saved."""
        losses: list[float] = []
        for step, (images, classes) in enumerate(self._progress(epoch), 1):
            try:
                losses.append(self.train_step(optimizer, images, classes))
            except NonFiniteStep as problem:
                raise TrainingDiverged(
                    f"training stopped at epoch {epoch + 1}/{self.settings.epochs}, step "
                    f"{step}/{self.settings.iterations_per_epoch}: expected a finite loss and "
                    f"gradient, found {problem} (learning rate {self.learning_rate(epoch):.3g}); "
                    f"no model was written") from None
        return losses

    def _validate_the_start(self, state: State) -> None:
        """A whole pretrained network (its head kept) is a model before any step: validated
        as epoch 0, it is kept when no epoch of fine-tuning does better."""
        started = time.time()
        scores = self.validate()
        self._keep_if_best(state, -1, scores)
        state["history"].append({"epoch": 0, **{k: float(v) for k, v in scores.items()},
                                 "seconds": time.time() - started})
        self.log.info("epoch 0 (the start, before any step) %s %.4f", self.task.selection_metric,
                      scores[self.task.selection_metric])

    def _add_to_average(self, state: State, epoch: int) -> None:
        """Sum the weights at the end of each of the last weight_average_epochs epochs."""
        averaged = self.settings.weight_average_epochs
        if averaged < 2 or epoch < self.settings.epochs - averaged:
            return
        weights = {k: v.detach().float().clone() for k, v in self.model.state_dict().items()}
        if not state.get("average_sum"):  # None until the first averaged epoch
            state["average_sum"], state["average_count"] = weights, 1
        else:
            for key, value in weights.items():
                state["average_sum"][key] += value
            state["average_count"] += 1

    def _keep_last(self, state: State) -> None:
        """keep last: the last epoch's weights, or the mean of the last epochs' (then
        validated again, so that the card's metrics are the kept model's)."""
        metrics = state["history"][-1]
        if state.get("average_sum"):
            current = self.model.state_dict()
            self.model.load_state_dict({
                k: (v / state["average_count"]).to(current[k].dtype)
                for k, v in state["average_sum"].items()})
            self.log.info("the model is the mean of the weights after each of the last %d "
                          "epochs", state["average_count"])
            metrics = self.validate()
        state.update(best_epoch=state["epoch"],
                     best_metrics={k: float(v) for k, v in metrics.items()
                                   if k not in ("epoch", "loss", "seconds")},
                     best_state=copy.deepcopy(self.model.state_dict()))

    def _validates(self, epoch: int) -> bool:
        return (epoch + 1) % self.settings.validate_every == 0 or \
            epoch + 1 == self.settings.epochs

    def _stops(self, state: State) -> bool:
        """Early stopping: `patience` epochs since the best validation (checked only at
        validations, so that the stop is on a measured plateau, not on a skipped epoch)."""
        patience, epochs = self.settings.patience, self.settings.epochs
        if patience is None or state["epoch"] >= epochs or np.isnan(
                state["history"][-1].get(self.task.selection_metric, np.nan)):
            return False
        # a phased strategy (lp_ft) gets its patience again when its last phase starts
        last_phase = self.strategy.trainable_at(epochs - 1, epochs)
        phase_start = next(e for e in range(epochs)
                           if self.strategy.trainable_at(e, epochs) == last_phase)
        return state["epoch"] - max(state["best_epoch"], phase_start) >= patience

    def _keep_if_best(self, state: State, epoch: int, scores: Mapping[str, float]) -> None:
        score = scores[self.task.selection_metric]
        # best_state is None until the first validation (best_epoch 0 may be the start's)
        if state["best_state"] is None or \
                score > state["best_metrics"][self.task.selection_metric]:
            state.update(best_epoch=epoch + 1,
                         best_metrics={k: float(v) for k, v in scores.items()},
                         best_state=copy.deepcopy(self.model.state_dict()))

    def _progress(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's batches (made by the loader's workers), behind a progress bar."""
        from tqdm import tqdm

        iterations = self.settings.iterations_per_epoch
        steps = range(epoch * iterations, (epoch + 1) * iterations)
        return tqdm(batches(self.batches, steps, self.workers,
                            pin_memory=self.device.type == "cuda"), total=iterations,
                    desc=f"epoch {epoch + 1}", file=self.progress_stream, mininterval=5.0,
                    ncols=80, ascii=True, disable=self.progress_stream is None)

    def _tensorboard(self) -> Any:
        if self.tensorboard_dir is None:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.tensorboard_dir))

    # --- checkpoints ----------------------------------------------------------------------

    def _signature(self) -> str:
        """What a checkpoint must share with this run to be resumed."""
        description = {
            "settings": {k: v for k, v in asdict(self.settings).items() if k != "device"},
            "model": self.model.config.to_dict(),
            "strategy": asdict(self.strategy),
            "train": [s.name for s in self.train_subjects],
            "validation": [s.name for s in self.validation_subjects],
            # what the weights depend on beyond the settings: the starting weights (a source
            # model's, or a fresh seeded UNet's) and which write of each subject's cache
            "initial_weights": _digest(t.detach().cpu().numpy()
                                       for t in self.model.state_dict().values()),
            "data": [s.fingerprint for s in [*self.train_subjects, *self.validation_subjects]],
        }
        return hashlib.sha256(json.dumps(description, sort_keys=True, default=str)
                              .encode()).hexdigest()

    def _resume(self) -> State:
        fresh: State = {"epoch": 0, "history": [], "best_epoch": 0, "best_metrics": {},
                 "best_state": None, "stopped_at": 0}
        if not self.checkpoint.exists():
            return fresh
        try:
            saved = read_tensor_file(self.checkpoint, self.device)
        except BrokenModelFile as error:
            self.log.info("checkpoint unreadable, starting afresh: %s", error)
            return fresh
        if saved.get("signature") != self.signature:
            self.log.info("checkpoint %s belongs to other settings, starting weights or data: "
                          "starting afresh", self.checkpoint)
            return fresh
        self.model.load_state_dict(saved["model"])
        self.scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["torch_rng"].cpu())
        random.setstate(saved["python_rng"])
        if torch.cuda.is_available() and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        self.log.info("resuming from checkpoint %s: epoch %d of %d done, starting at epoch %d",
                      self.checkpoint, saved["epoch"], self.settings.epochs, saved["epoch"] + 1)
        return {key: saved.get(key, 0) for key in ("epoch", "history", "best_epoch",
                                                   "best_metrics", "best_state", "optimizer",
                                                   "stopped_at", "average_sum",
                                                   "average_count")}

    def _save_checkpoint(self, state: State, optimizer: torch.optim.Optimizer) -> None:
        payload = {
            "signature": self.signature,
            "epoch": state["epoch"],
            "history": state["history"],
            "best_epoch": state["best_epoch"],
            "best_metrics": state["best_metrics"],
            "best_state": state["best_state"],
            "stopped_at": state.get("stopped_at", 0),
            "average_sum": state.get("average_sum"),
            "average_count": state.get("average_count", 0),
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        with atomic_path(self.checkpoint) as tmp:
            torch.save(payload, tmp)
