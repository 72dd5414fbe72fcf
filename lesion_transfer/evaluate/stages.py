"""The evaluation rules that run models or read caches, as functions of paths: a fine-tuned
model evaluated in one job (predict, choose the operating point, score in template space,
score on native grids: `native`), the source model scored (submissions: `native`)."""

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lesion_transfer.devices import autocast_context, resolve_device, resolve_precision
from lesion_transfer.evaluate.metrics import score_regions
from lesion_transfer.evaluate.native import SCORE_COLUMNS, score_on_native_grids
from lesion_transfer.evaluate.storage import (
    read_thresholds,
    save_labels,
    save_probabilities,
    write_table,
)
from lesion_transfer.io.atomic import write_text
from lesion_transfer.io.cache import CachedSubject, cache_folder, load_cached
from lesion_transfer.model.files import load_model
from lesion_transfer.model.inference import predict_volume
from lesion_transfer.model.network import TransferNetwork
from lesion_transfer.model.sources import ForeignSource, describe_foreign_source
from lesion_transfer.operating_point import (
    REGION_NAMES,
    choose_operating_point,
    label_map,
)
from lesion_transfer.train import metrics as voxel_metrics
from lesion_transfer.train.cards import read_card
from lesion_transfer.train.data import brain_of
from lesion_transfer.train.tasks import predict_regions


def load_subjects(meta_paths: Sequence[Path]) -> list[CachedSubject]:
    return [load_cached(cache_folder(p)) for p in meta_paths]


def model_for_inference(model_path: Path, card_path: Path, device: torch.device
                        ) -> tuple[TransferNetwork, list[int] | None]:
    """The model on its device, and the window its weights were trained with (the card
    records it; cards written before it did: the job's training patch)."""
    model, _ = load_model(model_path, device)
    card = read_card(card_path)
    return model, card.get("inference_patch_size", card["config"]["settings"].get("patch_size"))


# --- rules ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Evaluation:
    """One fine-tuned model to evaluate: its files, the key every row of its scores carries
    (strategy, size, fold, repeat) and where it runs (the job's device, the precision)."""

    model: Path
    card: Path
    key: dict[str, Any]
    device: str
    precision: str


@dataclass(frozen=True)
class EvaluationSubjects:
    """The fold's subjects as cache meta.json paths (test, local validation, unlabelled), and
    each test subject's native label and brain mask NIfTI ({subject: path})."""

    test: list[Path]
    validation: list[Path]
    unlabelled: list[Path]
    truths: dict[str, Path]
    brains: dict[str, Path]


@dataclass(frozen=True)
class EvaluationOutputs:
    """probabilities: the unlabelled subjects' only (the submissions read them; the others'
    live in memory, which keeps 4-6 MB a model off the disk); operating_point; labels and
    template_scores (template space); native (folder) and native_scores."""

    probabilities: Path
    operating_point: Path
    labels: Path
    template_scores: Path
    native: Path
    native_scores: Path


def evaluate_model_stage(evaluation: Evaluation, subjects: EvaluationSubjects,
                         outputs: EvaluationOutputs, log: logging.Logger) -> None:
    """One fine-tuned model, evaluated in one job, so torch loads once per model:
    probabilities of every subject it serves, the operating point (local validation only),
    label maps and scores in template space, then on each test subject's own grid."""
    probabilities = predict_probabilities(
        evaluation.model, evaluation.card,
        [*subjects.test, *subjects.validation, *subjects.unlabelled],
        evaluation.device, evaluation.precision, log)
    unlabelled = [cache_folder(p).name for p in subjects.unlabelled]
    save_probabilities({name: probabilities[name] for name in unlabelled},
                       outputs.probabilities)
    write_operating_point(probabilities, subjects.validation, outputs.operating_point, log)
    score_in_template_space(probabilities, outputs.operating_point, subjects.test,
                            {"scores": outputs.template_scores, "labels": outputs.labels},
                            evaluation.key, log)
    score_on_native_grids(outputs.labels, subjects.test, subjects.truths, subjects.brains,
                          outputs.native, outputs.native_scores, evaluation.key, log)


def predict_probabilities(model_path: Path, card_path: Path, cache_metas: Sequence[Path],
                          device: str, precision: str, log: logging.Logger
                          ) -> dict[str, np.ndarray]:
    """{subject: region probabilities} of every given subject, from one fine-tuned model."""
    torch_device = resolve_device(device)
    precision = resolve_precision(precision, torch_device)
    model, patch = model_for_inference(model_path, card_path, torch_device)
    log.info("predicting %d subjects on %s (%s), window %s", len(cache_metas), torch_device,
             precision, patch or "whole volume")
    maps = {}
    for subject in load_subjects(cache_metas):
        maps[subject.name] = predict_regions(
            model, subject.image, patch, torch_device,
            autocast=lambda: autocast_context(torch_device, precision))
    return maps


def write_operating_point(probabilities: Mapping[str, np.ndarray], validation_metas: Sequence[Path],
                          output: Path, log: logging.Logger) -> None:
    """Thresholds per region chosen on the fold's local validation subjects only."""
    subjects = load_subjects(validation_metas)
    point = choose_operating_point([probabilities[s.name] for s in subjects],
                                   [np.asarray(s.label) for s in subjects])
    for region in REGION_NAMES:
        log.info("%s: threshold %.2f, mean Dice %.3f on %d local validation subjects", region,
                 point[region]["threshold"], point[region]["mean_dice"], len(subjects))
    write_text(output, json.dumps({"subjects": [s.name for s in subjects], "regions": point},
                                  indent=1))


def score_in_template_space(probabilities: Mapping[str, np.ndarray], operating_point_path: Path,
                            test_metas: Sequence[Path], outputs: Mapping[str, Path],
                            model_key: Mapping[str, Any], log: logging.Logger) -> None:
    """Label maps of the fold's test subjects at the operating point, and their scores.

    outputs: scores (TSV, one row per subject and region), labels (.npz, cache space).
    These scores are in the cache's (template) space at the working spacing, after the
    registration rescaled each brain: for training and diagnosis, not for comparison with
    other work (the headline scores are on each subject's own grid: evaluate.native).
    """
    thresholds = read_thresholds(operating_point_path)
    rows: list[dict[str, Any]] = []
    labels: dict[str, np.ndarray] = {}
    for subject in load_subjects(test_metas):
        labels[subject.name] = label_map(probabilities[subject.name], thresholds)
        spacing = subject.meta["preprocessing"]["spacing_mm"]
        scores = score_regions(labels[subject.name], np.asarray(subject.label), [spacing] * 3,
                               brain=brain_of(subject.image))
        for region, values in scores.items():
            rows.append({**model_key, "subject": subject.name, "region": region, **values})
    for region in REGION_NAMES:
        mean = np.mean([r["dice"] for r in rows if r["region"] == region])
        log.info("%s: mean Dice %.3f over %d test subjects", region, mean, len(labels))
    save_labels(labels, outputs["labels"])
    write_table(rows, outputs["scores"], SCORE_COLUMNS)


@dataclass(frozen=True)
class ModelFiles:
    """A trained model: model.pt and the model_card.json beside it."""

    model: Path
    card: Path


def describe_source_stage(path: Path, fold: str | None, output: Path) -> ForeignSource:
    """Another framework's source (an nnU-Net folder and its fold, a MONAI bundle), as the
    report shows it instead of its scores (the study does not know that network's task or
    output activation): what it is, where it came from, its licence, and each file's
    SHA-256. Returns the source, described."""
    source = describe_foreign_source(path, fold)
    rows = [{"what": "framework", "value": source.framework},
            {"what": "path", "value": str(source.path)},
            {"what": "fold", "value": source.fold if source.fold is not None else ""},
            {"what": "network", "value": source.architecture.network_name},
            {"what": "channels", "value": ", ".join(source.channels or ())},
            {"what": "licence", "value": source.licence or "not stated"}]
    rows += [{"what": f"sha256 {name}", "value": digest}
             for name, digest in source.card({})["sha256"].items()]
    write_table(rows, output, ("what", "value"))
    return source


def score_source_stage(source: ModelFiles, device: str, log: logging.Logger, *, validation: list,
                       output: Path) -> None:
    """Voxel ROC-AUC and PR-AUC inside the brain of each source validation subject (their
    cache meta.json paths), and pooled (the paper reports a validation AUC of 0.77)."""
    torch_device = resolve_device(device)
    model, patch = model_for_inference(source.model, source.card, torch_device)
    rows, pooled_scores, pooled_truths = [], [], []
    for subject in load_subjects(validation):
        logits = predict_volume(model, subject.image, patch, device=torch_device)
        brain = brain_of(subject.image)
        scores = torch.sigmoid(logits[0]).numpy()[brain]
        truth = np.asarray(subject.label)[brain] == 1
        pooled_scores.append(scores)
        pooled_truths.append(truth)
        rows.append({"subject": subject.name, "lesion_voxels": int(truth.sum()),
                     "roc_auc": voxel_metrics.roc_auc(scores, truth),
                     "pr_auc": voxel_metrics.pr_auc(scores, truth)})
    scores, truth = np.concatenate(pooled_scores), np.concatenate(pooled_truths)
    rows.append({"subject": "all", "lesion_voxels": int(truth.sum()),
                 "roc_auc": voxel_metrics.roc_auc(scores, truth),
                 "pr_auc": voxel_metrics.pr_auc(scores, truth)})
    log.info("source validation, pooled: ROC-AUC %.3f, PR-AUC %.3f", rows[-1]["roc_auc"],
             rows[-1]["pr_auc"])
    write_table(rows, output, ("subject", "lesion_voxels", "roc_auc", "pr_auc"))


