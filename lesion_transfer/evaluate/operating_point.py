"""The operating point: per tumour region, the probability threshold that maximises the mean
Dice over the local validation subjects (never the fold's test subjects), and the label map
built from region probabilities so that ET lies inside TC inside WT."""

import numpy as np

from lesion_transfer import TARGET_LABELS
from lesion_transfer.labels import REGIONS, THRESHOLDS, dice_curve

REGION_NAMES = tuple(REGIONS)  # WT, TC, ET: the channels of a region-probability map
def region_probabilities(class_probabilities):
    """(K, ...) softmax over TARGET_LABELS -> (3, ...) probabilities of WT, TC, ET."""
    index = {label: i for i, label in enumerate(TARGET_LABELS)}
    return np.stack([sum(class_probabilities[index[c]] for c in REGIONS[r])
                     for r in REGION_NAMES])


def choose_threshold(probabilities, truths, thresholds=THRESHOLDS):
    """The threshold with the best mean Dice; ties: the middle of the longest best run.

    Returns (threshold, best mean Dice, the mean-Dice curve).
    """
    curve = np.mean([dice_curve(p, t, thresholds) for p, t in zip(probabilities, truths)],
                    axis=0)
    best = np.isclose(curve, curve.max(), rtol=0, atol=1e-9)
    runs, start = [], None
    for i, flag in enumerate(np.r_[best, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((i - start, start, i - 1))
            start = None
    length, first, last = max(runs, key=lambda run: (run[0], -run[1]))
    return float(thresholds[(first + last) // 2]), float(curve.max()), curve


def choose_operating_point(region_probability_maps, truth_labels, thresholds=THRESHOLDS):
    """region_probability_maps: per subject (3, ...) WT/TC/ET; truth_labels: BraTS values.

    Returns {region: {"threshold", "mean_dice", "curve"}}.
    """
    point = {}
    for i, region in enumerate(REGION_NAMES):
        truths = [np.isin(label, REGIONS[region]) for label in truth_labels]
        threshold, best, curve = choose_threshold([p[i] for p in region_probability_maps],
                                                  truths, thresholds)
        point[region] = {"threshold": threshold, "mean_dice": best,
                         "curve": [round(float(v), 5) for v in curve]}
    return point


def label_map(region_probability, thresholds):
    """(3, ...) WT/TC/ET probabilities + {region: threshold} -> BraTS label values, nested:
    TC only inside WT, ET only inside TC."""
    whole = region_probability[0] >= thresholds["WT"]
    core = whole & (region_probability[1] >= thresholds["TC"])
    enhancing = core & (region_probability[2] >= thresholds["ET"])
    label = np.zeros(whole.shape, np.uint8)
    label[whole] = 2
    label[core] = 1
    label[enhancing] = 4
    return label
