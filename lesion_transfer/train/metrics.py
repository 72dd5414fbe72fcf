"""Metrics with numpy: voxel ROC-AUC and PR-AUC, Dice, Dice at the best threshold, and the
tumour regions."""

import numpy as np

# BraTS regions over label values
from lesion_transfer.labels import REGIONS, dice


def roc_auc(scores, truth):
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


def pr_auc(scores, truth):
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


THRESHOLDS = np.linspace(0.05, 0.95, 19)


def best_threshold_dice(scores, truth, thresholds=THRESHOLDS):
    """(best Dice, its threshold) over a grid of probability thresholds."""
    results = [(dice(np.asarray(scores) >= t, truth), float(t)) for t in thresholds]
    return max(results)


def region_dice(prediction_label, truth_label):
    return {name: dice(np.isin(prediction_label, values), np.isin(truth_label, values))
            for name, values in REGIONS.items()}
