"""The two tasks the trainer knows: binary lesions (source) and BraTS tumour labels
(target). A task gives the loss and the validation metrics; the trainer does the rest."""

import numpy as np
import torch
from torch import nn

from lesion_transfer.model.inference import predict_volume
from lesion_transfer.train import metrics
from lesion_transfer.train.data import (
    TARGET_LABELS,
    brain_of,
    class_frequencies,
    classes_to_label,
)


class LesionTask:
    """Source: one output channel, weighted binary cross-entropy."""

    labels = (0, 1)
    out_channels = 1
    selection_metric = "pr_auc"

    def __init__(self, train_subjects, pos_weight=None):
        if pos_weight is None:
            negative, positive = class_frequencies(train_subjects, self.labels)
            pos_weight = float(negative / max(positive, 1.0))
        self.pos_weight = pos_weight
        self.loss_function = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight),
                                                  reduction="none")

    def loss(self, logits, classes):
        known = classes >= 0
        target = classes.clamp_min(0).float()
        losses = self.loss_function.to(logits.device)(logits[:, 0].float(), target)
        return (losses * known).sum() / known.sum().clamp_min(1)

    def validate(self, model, subjects, patch_size, device, autocast):
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


class TumourTask:
    """Target: background, 1, 2, 4 as four output channels, weighted cross-entropy."""

    labels = TARGET_LABELS
    out_channels = len(TARGET_LABELS)
    selection_metric = "mean_dice"

    def __init__(self, train_subjects, class_weights, max_class_weight):
        if class_weights is None:
            counts = class_frequencies(train_subjects, self.labels)
            frequency = counts / counts.sum()
            # inverse frequency, background 1; capped, since a class that a small training
            # subset barely holds would otherwise get a weight in the thousands
            class_weights = np.minimum(frequency[0] / np.maximum(frequency, 1e-6),
                                       max_class_weight).tolist()
        self.class_weights = [float(w) for w in class_weights]
        self.loss_function = nn.CrossEntropyLoss(weight=torch.tensor(self.class_weights),
                                                 ignore_index=-1)

    def loss(self, logits, classes):
        return self.loss_function.to(logits.device)(logits.float(), classes)

    def validate(self, model, subjects, patch_size, device, autocast):
        per_region = {name: [] for name in metrics.REGIONS}
        for subject in subjects:
            logits = predict_volume(model, subject.image, patch_size, device=device,
                                    autocast=autocast)
            prediction = classes_to_label(logits.argmax(0).numpy(), self.labels)
            for name, value in metrics.region_dice(prediction, np.asarray(subject.label)).items():
                per_region[name].append(value)
        result = {f"dice_{name}": float(np.mean(v)) for name, v in per_region.items()}
        result["mean_dice"] = float(np.mean(list(result.values())))
        return result
