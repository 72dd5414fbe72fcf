"""The two tasks the trainer knows: binary lesions (source) and BraTS tumour labels
(target). A task gives the loss and the validation metrics; the trainer does the rest."""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch
from torch import nn

from lesion_transfer.io.cache import CachedSubject
from lesion_transfer.labels import TARGET_LABELS
from lesion_transfer.model.inference import predict_volume
from lesion_transfer.operating_point import region_probabilities, tuned_region_dice
from lesion_transfer.train import metrics
from lesion_transfer.train.data import brain_of, class_frequencies

LOSSES = ("weighted_ce", "dice_ce")  # the schema's train.*.loss
Autocast = Callable[[], AbstractContextManager[Any]] | None


def soft_dice_loss(probabilities: torch.Tensor, target: torch.Tensor, known: torch.Tensor
                   ) -> torch.Tensor:
    """nnU-Net's batch soft Dice, negated: per channel of `probabilities` (N, C, ...), Dice
    between it and the one-hot `target` (same shape), summed over the batch and the voxels
    where `known`, then averaged over the channels. A channel absent from the whole batch
    scores 0 unless the prediction is empty too (the 1e-5 smoothing), as in nnU-Net."""
    known = known.unsqueeze(1).to(probabilities.dtype)
    axes = [0, *range(2, probabilities.ndim)]
    intersection = (probabilities * target * known).sum(axes)
    total = (probabilities * known).sum(axes) + (target * known).sum(axes)
    return -((2 * intersection + 1e-5) / (total + 1e-5)).mean()


def _check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {', '.join(LOSSES)}, found {loss!r}")


class LesionTask:
    """Source: one output channel, weighted binary cross-entropy."""

    labels = (0, 1)
    out_channels = 1
    selection_metric = "pr_auc"

    def __init__(self, train_subjects: Sequence[CachedSubject], pos_weight: float | None,
                 loss: str) -> None:
        _check_loss(loss)
        if pos_weight is None:
            negative, positive = class_frequencies(train_subjects, self.labels)
            pos_weight = float(negative / max(positive, 1.0))
        self.pos_weight = pos_weight
        self.loss_name = loss
        # dice_ce: nnU-Net's BCE is unweighted; the Dice term carries the rare class
        weight = torch.tensor(pos_weight if loss == "weighted_ce" else 1.0)
        self.loss_function = nn.BCEWithLogitsLoss(pos_weight=weight, reduction="none")

    def loss(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        known = classes >= 0
        target = classes.clamp_min(0).float()
        logits = logits[:, 0].float()
        losses = self.loss_function.to(logits.device)(logits, target)
        loss = (losses * known).sum() / known.sum().clamp_min(1)
        if self.loss_name == "dice_ce":
            loss = loss + soft_dice_loss(torch.sigmoid(logits).unsqueeze(1),
                                         target.unsqueeze(1), known)
        return loss

    def validate(self, model: nn.Module, subjects: Sequence[CachedSubject],
                 patch_size: Sequence[int] | None, device: str | torch.device,
                 autocast: Autocast) -> dict[str, float]:
        scores, truths = [], []
        for subject in subjects:
            logits = predict_volume(model, subject.image, patch_size, device=device,
                                    autocast=autocast)
            brain = brain_of(subject.image)
            scores.append(torch.sigmoid(logits[0]).numpy()[brain])
            truths.append(np.asarray(subject.label)[brain] == 1)
        scores, truths = np.concatenate(scores), np.concatenate(truths)
        best_dice, threshold = metrics.best_threshold_dice(scores, truths)
        return {"roc_auc": metrics.roc_auc(scores, truths),
                "pr_auc": metrics.pr_auc(scores, truths), "dice": best_dice,
                "threshold": threshold}


def predict_regions(model: nn.Module, image: Any, patch_size: Sequence[int] | None,
                    device: str | torch.device, autocast: Autocast) -> np.ndarray:
    """(3, ...) probabilities of WT, TC, ET for one image: the sliding window's logits,
    their softmax over TARGET_LABELS, summed per region. What validation picks epochs by and
    what evaluation thresholds and scores (evaluate.stages)."""
    logits = predict_volume(model, image, patch_size, device=device, autocast=autocast)
    return region_probabilities(torch.softmax(logits, 0).numpy())


class TumourTask:
    """Target: background, 1, 2, 4 as four output channels, weighted cross-entropy."""

    labels = TARGET_LABELS
    out_channels = len(TARGET_LABELS)
    selection_metric = "mean_dice"

    def __init__(self, train_subjects: Sequence[CachedSubject],
                 class_weights: Sequence[float] | None, max_class_weight: float,
                 loss: str) -> None:
        _check_loss(loss)
        self.loss_name = loss
        if class_weights is None:
            counts = class_frequencies(train_subjects, self.labels)
            frequency = counts / counts.sum()
            # inverse frequency, background 1; capped, since a class that a small training
            # subset barely holds would otherwise get a weight in the thousands
            class_weights = np.minimum(frequency[0] / np.maximum(frequency, 1e-6),
                                       max_class_weight).tolist()
        self.class_weights = [float(w) for w in class_weights]
        # dice_ce: nnU-Net's cross-entropy is unweighted; the Dice term carries rare classes
        weight = self.class_weights if loss == "weighted_ce" else [1.0] * len(self.labels)
        self.loss_function = nn.CrossEntropyLoss(weight=torch.tensor(weight), ignore_index=-1)

    def loss(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        loss = self.loss_function.to(logits.device)(logits, classes)
        if self.loss_name == "dice_ce":
            known = classes >= 0
            one_hot = nn.functional.one_hot(classes.clamp_min(0), len(self.labels))
            one_hot = one_hot.movedim(-1, 1).to(logits.dtype)
            # the foreground classes only, as nnU-Net (background is most of every patch)
            loss = loss + soft_dice_loss(logits.softmax(1)[:, 1:], one_hot[:, 1:], known)
        return loss

    def validate(self, model: nn.Module, subjects: Sequence[CachedSubject],
                 patch_size: Sequence[int] | None, device: str | torch.device,
                 autocast: Autocast) -> dict[str, float]:
        """Mean Dice per region at the operating point chosen on these subjects, as evaluation
        scores the kept model: an argmax of weighted cross-entropy over-segments and scored
        epochs unlike the thresholded maps evaluation scores, so the epoch it kept was noise
        (bench/results/default_run.md, stop 34)."""
        probabilities = [predict_regions(model, s.image, patch_size, device, autocast)
                         for s in subjects]
        return tuned_region_dice(probabilities, [np.asarray(s.label) for s in subjects])
