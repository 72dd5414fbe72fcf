"""The operating point: per tumour region, the probability threshold that maximises the mean
Dice over the local validation subjects (never the fold's test subjects), and the label map
built from region probabilities so that ET lies inside TC inside WT.

Thresholds are chosen in the order the label map applies them: TC's on the core that WT's
threshold leaves, ET's on what both leave. Chosen region by region on raw probabilities, a
high WT threshold (weighted cross-entropy over-segments, so WT's is often 0.8-0.9) could
remove every enhancing voxel the ET threshold was chosen to keep: one model scored ET Dice
0.77 on its local validation subjects and 0.01 on its test subjects that way
(bench/results/default_run.md, stop 33). Training validates with the same procedure, so that
the epoch a model keeps is chosen on the score evaluation will give it."""

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from lesion_transfer import TARGET_LABELS
from lesion_transfer.labels import REGIONS, THRESHOLDS, dice_curve

REGION_NAMES = tuple(REGIONS)  # WT, TC, ET: the channels of a region-probability map


def region_probabilities(class_probabilities: np.ndarray) -> np.ndarray:
    """(K, ...) softmax over TARGET_LABELS -> (3, ...) probabilities of WT, TC, ET."""
    index = {label: i for i, label in enumerate(TARGET_LABELS)}
    return np.stack([sum(class_probabilities[index[c]] for c in REGIONS[r])
                     for r in REGION_NAMES])


def choose_threshold(probabilities: Sequence[ArrayLike], truths: Sequence[ArrayLike],
                     thresholds: np.ndarray = THRESHOLDS) -> tuple[float, float, np.ndarray]:
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


def choose_operating_point(region_probability_maps: Sequence[np.ndarray],
                           truth_labels: Sequence[np.ndarray],
                           thresholds: np.ndarray = THRESHOLDS) -> dict[str, dict]:
    """region_probability_maps: per subject (3, ...) WT/TC/ET; truth_labels: BraTS values.

    Each region's threshold is chosen inside what the thresholds before it (WT, then TC)
    keep, as `label_map` applies them; "mean_dice" is then the mean Dice of the label maps
    `label_map` builds at this point. Returns {region: {"threshold", "mean_dice", "curve"}}.
    """
    point = {}
    kept = [np.ones(np.shape(p)[1:], bool) for p in region_probability_maps]
    for i, region in enumerate(REGION_NAMES):
        truths = [np.isin(label, REGIONS[region]) for label in truth_labels]
        # outside what the outer regions kept, a voxel is below every threshold
        probabilities = [np.where(inside, p[i], 0.0)
                         for p, inside in zip(region_probability_maps, kept)]
        threshold, best, curve = choose_threshold(probabilities, truths, thresholds)
        point[region] = {"threshold": threshold, "mean_dice": best,
                         "curve": [round(float(v), 5) for v in curve]}
        kept = [p >= threshold for p in probabilities]
    return point


def tuned_region_dice(region_probability_maps: Sequence[np.ndarray],
                      truth_labels: Sequence[np.ndarray]) -> dict[str, float]:
    """{WT, TC, ET: mean Dice} over these subjects at the operating point chosen on them, and
    mean_dice over the regions: the score a model is validated with while it trains."""
    point = choose_operating_point(region_probability_maps, truth_labels)
    result = {f"dice_{region}": point[region]["mean_dice"] for region in REGION_NAMES}
    result["mean_dice"] = float(np.mean(list(result.values())))
    return result


def label_map(region_probability: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
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
