"""Names and values every layer shares: channels, label values, tumour regions, ids; and
Dice, the overlap of two masks, which preprocessing QC, training and evaluation all measure:
of two masks, per tumour region, and over a sweep of probability thresholds."""

import numpy as np
from numpy.typing import ArrayLike

# The channel order used everywhere: source and target caches, models and model cards.
MODALITIES = ("t1", "t1ce", "t2", "flair")
# Target label values (BraTS 2018) in the order of the fine-tuned network's output channels.
TARGET_LABELS = (0, 1, 2, 4)
# The BraTS regions scored everywhere: whole tumour, tumour core, enhancing tumour.
REGIONS = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}
# The label of a voxel (or a whole subject) without a label: ignored by the loss.
UNKNOWN_LABEL = 255
# Subject and dataset ids become folder and file names: they must never leave their folder
# (no '/', no '..', no leading dot) and must survive a shell and a wildcard.
SAFE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"


def dice(a: ArrayLike, b: ArrayLike) -> float:
    """Dice overlap of two masks; 1 when both are empty (nothing to find, nothing found)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * (a & b).sum() / total)


def dice_curve(probability: ArrayLike, truth: ArrayLike, thresholds: np.ndarray) -> np.ndarray:
    """Dice of (probability >= t) against truth for every t, from two histograms (1 where
    both are empty, as `dice`)."""
    probability, truth = np.asarray(probability, float).ravel(), np.asarray(truth, bool).ravel()
    edges = np.r_[-np.inf, thresholds, np.inf]

    # voxels with probability >= t: a reverse cumulative histogram
    def at_or_above(values: np.ndarray) -> np.ndarray:
        return np.cumsum(np.histogram(values, edges)[0][::-1])[::-1][1:]

    true_positive, predicted = at_or_above(probability[truth]), at_or_above(probability)
    total = predicted + truth.sum()
    return np.where(total == 0, 1.0, 2.0 * true_positive / np.maximum(total, 1))


def region_masks(label: ArrayLike) -> dict[str, np.ndarray]:
    """{WT, TC, ET: the region's mask} of a label map in BraTS values."""
    label = np.asarray(label)
    return {region: np.isin(label, values) for region, values in REGIONS.items()}


def region_dice(prediction_label: ArrayLike, truth_label: ArrayLike) -> dict[str, float]:
    """{WT, TC, ET: Dice} of two label maps in BraTS values."""
    predicted, truth = region_masks(prediction_label), region_masks(truth_label)
    return {region: dice(predicted[region], truth[region]) for region in REGIONS}
