"""The operating point: the probability thresholds of the three tumour regions whose label
maps score the best mean Dice over the local validation subjects (never the fold's test
subjects), and the label map built from region probabilities so that ET lies inside TC
inside WT.

The thresholds are searched together, as the label map applies them (TC only inside what
WT's threshold keeps, ET inside both), for the score evaluation reports: the mean over WT, TC
and ET. Chosen region by region on raw probabilities, a high WT threshold (weighted
cross-entropy over-segments, so WT's alone is often 0.8-0.9) removed every enhancing voxel
the ET threshold was chosen to keep: ET Dice 0.77 promised, 0.01 scored on the test subjects
(bench/results/default_run.md, stop 33); chosen first and for WT alone, it still took TC and
ET with it (stop 34). Training validates with the same procedure, so that the epoch a model
keeps is chosen on the score evaluation will give it."""

from collections.abc import Sequence

import numpy as np

from lesion_transfer import TARGET_LABELS
from lesion_transfer.labels import REGIONS

REGION_NAMES = tuple(REGIONS)  # WT, TC, ET: the channels of a region-probability map
# the thresholds searched, every combination of the three (49^3): at 0.01 steps (99^3) the
# search took seconds a training validation, at 0.02 a fraction of one
GRID = np.round(np.arange(1, 50) / 50.0, 2)


def region_probabilities(class_probabilities: np.ndarray) -> np.ndarray:
    """(K, ...) softmax over TARGET_LABELS -> (3, ...) probabilities of WT, TC, ET."""
    index = {label: i for i, label in enumerate(TARGET_LABELS)}
    return np.stack([sum(class_probabilities[index[c]] for c in REGIONS[r])
                     for r in REGION_NAMES])


def best_index(curve: np.ndarray) -> int:
    """The index of the curve's maximum; ties: the middle of the longest run of maxima (the
    threshold farthest from where the score starts to fall)."""
    best = np.isclose(curve, curve.max(), rtol=0, atol=1e-9)
    runs, start = [], None
    for i, flag in enumerate(np.r_[best, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((i - start, start, i - 1))
            start = None
    length, first, last = max(runs, key=lambda run: (run[0], -run[1]))
    return (first + last) // 2


def _counts_at_or_above(bins: np.ndarray, grid: int) -> np.ndarray:
    """bins: (d, voxels) threshold-grid indices of the first d of WT, TC, ET (a voxel is at or
    above thresholds[k] when its index exceeds k). Returns counts[i, j, ...], the voxels at or
    above WT's threshold i - 1, TC's j - 1, ... (index 0: that region unconstrained)."""
    shape = (grid + 1,) * len(bins)
    # counted from the top of the grid down, so that plain cumulative sums (fast on a
    # contiguous array) count "at or above"; reversed once at the end
    counts = np.bincount(np.ravel_multi_index(tuple(grid - bins), shape),
                         minlength=int(np.prod(shape))).reshape(shape)
    for axis in range(len(shape)):
        np.cumsum(counts, axis, out=counts)
    return np.ascontiguousarray(counts[(slice(None, None, -1),) * len(shape)])


def _dice_tables(regions: np.ndarray, label: np.ndarray,
                 thresholds: np.ndarray) -> list[np.ndarray]:
    """One subject's Dice of its label maps at every point of the grid: WT[i], TC[i, j],
    ET[i, j, l] for thresholds i, j, l of WT, TC and ET (TC only inside WT, ET inside both);
    1 where the label map and the truth are both empty, as labels.dice."""
    regions = np.asarray(regions).reshape(len(REGION_NAMES), -1)
    label = np.asarray(label).ravel().astype(np.intp)  # read from NIfTI, it may be float
    # below WT's lowest threshold a voxel is in no region's label map: only truth counts it
    candidates = regions[0] >= thresholds[0]
    bins = np.searchsorted(thresholds, regions[:, candidates], side="right")
    candidate_labels = label[candidates]
    voxels_per_label = np.bincount(label, minlength=max(TARGET_LABELS) + 1)
    predicted = _counts_at_or_above(bins, len(thresholds))
    tables = []
    for depth, region in enumerate(REGION_NAMES, start=1):
        truth = np.isin(candidate_labels, REGIONS[region])
        found = _counts_at_or_above(bins[:depth, truth], len(thresholds))
        # the first `depth` regions at a threshold, the rest unconstrained (index 0)
        inside = (slice(1, None),) * depth
        total = (predicted[inside + (0,) * (len(REGION_NAMES) - depth)]
                 + voxels_per_label[list(REGIONS[region])].sum())
        tables.append(np.where(total == 0, 1.0, 2.0 * found[inside] / np.maximum(total, 1)))
    return tables


def choose_operating_point(region_probability_maps: Sequence[np.ndarray],
                           truth_labels: Sequence[np.ndarray],
                           thresholds: np.ndarray = GRID) -> dict[str, dict]:
    """region_probability_maps: per subject (3, ...) WT/TC/ET; truth_labels: BraTS values.

    The thresholds whose label maps (`label_map`: TC only inside WT, ET inside both) score the
    best mean Dice over the subjects and the three regions, searched over the whole grid;
    ties as `best_index`, WT's first, then TC's, then ET's. "mean_dice" is each region's mean
    Dice over the subjects at this point, "curve" the region's mean Dice at each of its
    thresholds with the outer ones as chosen. Returns {region: {"threshold", "mean_dice",
    "curve"}}.
    """
    tables = [_dice_tables(p, label, thresholds)
              for p, label in zip(region_probability_maps, truth_labels)]
    wt, tc, et = (np.mean([subject[r] for subject in tables], axis=0) for r in range(3))
    # the best of the inner regions for every outer choice, then the outer choice
    inner = tc + et.max(axis=2)
    i = best_index(wt + inner.max(axis=1))
    j = best_index(inner[i])
    k = best_index(et[i, j])
    chosen = [(i, wt), (j, tc[i]), (k, et[i, j])]
    return {region: {"threshold": float(thresholds[index]), "mean_dice": float(curve[index]),
                     "curve": [round(float(v), 5) for v in curve]}
            for region, (index, curve) in zip(REGION_NAMES, chosen)}


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
