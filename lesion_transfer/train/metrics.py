"""Voxel metrics of a validation, with numpy: ROC-AUC, PR-AUC and Dice at the best threshold."""

import numpy as np
from numpy.typing import ArrayLike

from lesion_transfer.labels import dice_curve


def roc_auc(scores: ArrayLike, truth: ArrayLike) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half)."""
    scores, truth = np.asarray(scores, float).ravel(), np.asarray(truth, bool).ravel()
    positives, negatives = truth.sum(), (~truth).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def pr_auc(scores: ArrayLike, truth: ArrayLike) -> float:
    """Average precision: precision summed over recall steps, thresholds at every score."""
    scores, truth = np.asarray(scores, float).ravel(), np.asarray(truth, bool).ravel()
    positives = truth.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, hits = scores[order], truth[order]
    true_positives = np.cumsum(hits)
    # evaluate only at the last index of each distinct score
    last = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
    precision = true_positives[last] / (last + 1)
    recall = true_positives[last] / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


# The source's validation sweeps a coarser grid than an operating point's
# (operating_point.GRID): kept as it was when the default design was frozen (2026-12-01), since
# it picks the source's epoch; one grid for both is a change to measure, not a refactor.
SOURCE_VALIDATION_THRESHOLDS = np.linspace(0.05, 0.95, 19)


def best_threshold_dice(scores: ArrayLike, truth: ArrayLike,
                        thresholds: np.ndarray = SOURCE_VALIDATION_THRESHOLDS
                        ) -> tuple[float, float]:
    """(best Dice, its threshold) over a grid of probability thresholds (the highest
    threshold among equals)."""
    curve = dice_curve(scores, truth, thresholds)
    best = int(np.flatnonzero(curve == curve.max())[-1])
    return float(curve[best]), float(thresholds[best])
