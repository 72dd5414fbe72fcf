"""Predictions back on each subject's own grid, where readers compare scores: the test
subjects' label maps, scored there against their original labels (the study's headline), and a
BraTS submission for the unlabelled cases from the fold models' ensemble. Tumour is kept only
inside the subject's brain: a weak model scores poorly, it never labels the skull or the air.
Needs SimpleITK (through `to_native`), neither ANTs nor torch."""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lesion_transfer.evaluate.metrics import score_regions
from lesion_transfer.evaluate.storage import (
    load_labels,
    load_probabilities,
    read_thresholds,
    write_table,
)
from lesion_transfer.io.cache import cache_folder, read_meta
from lesion_transfer.io.nifti import load_nifti, save_nifti, spacing_of
from lesion_transfer.operating_point import REGION_NAMES, label_map

# a model's key (arm, size and training run: fold, repeat), then a subject's scores per region
MODEL_KEY = ("strategy", "size", "fold", "repeat")
SCORE_COLUMNS = (*MODEL_KEY, "subject", "region", "truth_voxels", "dice", "hd95", "sensitivity",
                 "specificity")
NATIVE_SCORE_COLUMNS = (*SCORE_COLUMNS, "spacing_mm")


def native_label(label: np.ndarray, meta: Mapping[str, Any], brain: np.ndarray) -> np.ndarray:
    """A cache-space label map on the subject's own grid, BraTS values, zero outside `brain`
    (the subject's brain mask on that grid)."""
    from lesion_transfer.preprocess.cache import to_native

    native = to_native(label, meta).astype(np.uint8)
    brain = np.asarray(brain, bool)
    if brain.shape != native.shape:
        raise ValueError(f"brain mask of shape {brain.shape} on a native grid of shape "
                         f"{native.shape}")
    native[~brain] = 0
    return native


def native_scores(prediction: np.ndarray, truth: np.ndarray, affine: np.ndarray,
                  brain: np.ndarray) -> dict[str, dict[str, float]]:
    """{region: scores} of a native label map against the original label, distances in mm of
    that grid (its own, possibly anisotropic, spacing), specificity within the brain."""
    return score_regions(prediction, truth, spacing_of(affine), brain=brain)


def score_on_native_grids(labels_path: Path, test_metas: Sequence[Path], truths: Mapping[str, Path],
                          brains: Mapping[str, Path], output_folder: Path, scores_path: Path,
                          model_key: Mapping[str, Any], log: logging.Logger) -> None:
    """Every test subject's label map on its own grid (written to `output_folder`), scored
    against its original label. truths, brains: {subject: NIfTI path} on the native grid."""
    labels = load_labels(labels_path)
    output_folder = Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for meta_path in test_metas:
        name = cache_folder(meta_path).name
        brain, affine = load_nifti(brains[name], dtype=np.uint8)
        truth, _ = load_nifti(truths[name], dtype=np.uint8)
        prediction = native_label(labels[name], read_meta(meta_path), brain)
        save_nifti(output_folder / f"{name}.nii.gz", prediction, affine, dtype=np.uint8)
        spacing = "x".join(f"{s:g}" for s in spacing_of(affine))
        for region, values in native_scores(prediction, truth, affine, brain).items():
            rows.append({**model_key, "subject": name, "region": region, **values,
                         "spacing_mm": spacing})
    for region in REGION_NAMES:
        mean = np.mean([r["dice"] for r in rows if r["region"] == region])
        log.info("%s: mean Dice %.3f over %d test subjects, each on its own grid", region, mean,
                 len(test_metas))
    write_table(rows, scores_path, NATIVE_SCORE_COLUMNS)


@dataclass(frozen=True)
class Ensemble:
    """The fold models of one arm and size: each one's probabilities of the unlabelled cases
    (.npz) and its operating point (JSON), in the same order."""

    probabilities: list
    operating_points: list


def make_submission_stage(ensemble: Ensemble, log: logging.Logger, *, subjects: list, brains: dict,
                          output_folder: Path) -> None:
    """A BraTS submission: one <ID>.nii.gz per unlabelled case on its original grid; the fold
    models' region probabilities averaged, thresholded at their mean operating point, tumour
    only inside the case's brain. subjects: the cases' cache meta.json paths; brains:
    {subject: brain mask NIfTI on its native grid}."""
    folds = [load_probabilities(p) for p in ensemble.probabilities]
    points = [read_thresholds(p) for p in ensemble.operating_points]
    thresholds = {r: float(np.mean([p[r] for p in points])) for r in REGION_NAMES}
    log.info("ensemble of %d fold models; thresholds %s", len(folds), thresholds)
    output_folder = Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    for meta_path in subjects:
        name = cache_folder(meta_path).name
        brain, affine = load_nifti(brains[name], dtype=np.uint8)
        mean = np.mean([fold[name] for fold in folds], axis=0)
        label = native_label(label_map(mean, thresholds), read_meta(meta_path), brain)
        save_nifti(output_folder / f"{name}.nii.gz", label, affine, dtype=np.uint8)
    log.info("%d cases written to %s", len(subjects), output_folder)
