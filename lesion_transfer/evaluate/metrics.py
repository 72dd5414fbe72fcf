"""Segmentation scores per subject and tumour region, the BraTS way.

Empty regions follow the BraTS challenge: both empty is a perfect score (Dice 1, HD95 0);
one empty is the worst (Dice 0, HD95 373.13 mm, the diagonal of the BraTS 240 x 240 x 155 mm
volume). Sensitivity with no true voxels and specificity with no negative voxels are 1 (nothing
could be missed), the convention of the BraTS toolkit.
"""


import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from lesion_transfer.io.nifti import Spacing
from lesion_transfer.labels import dice, region_masks

WORST_HD95_MM = 373.13


def surface(mask: np.ndarray) -> np.ndarray:
    """The mask's voxels that touch the background along an axis (6-connectivity)."""
    if not mask.any():
        return mask
    eroded = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1),
                                    border_value=0)
    return mask & ~eroded


def surface_distances(a: np.ndarray, b: np.ndarray, spacing: Spacing) -> np.ndarray:
    """Distances (mm) from every surface voxel of `a` to the nearest surface voxel of `b`."""
    to_b = ndimage.distance_transform_edt(~surface(b), sampling=spacing)
    return to_b[surface(a)]


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    where = np.argwhere(mask)
    return tuple(slice(lo, hi + 1) for lo, hi in zip(where.min(axis=0), where.max(axis=0),
                                                      strict=True))


def hd95(prediction: ArrayLike, truth: ArrayLike, spacing: Spacing) -> float:
    """95th percentile of the symmetric surface distances, in mm (MedPy's definition)."""
    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    if not prediction.any() and not truth.any():
        return 0.0
    if not prediction.any() or not truth.any():
        return WORST_HD95_MM
    # Both surfaces lie inside the bounding box of the two masks, and beyond it is background,
    # which the erosion's border value already assumes: the distances are those of the whole
    # volume, at a fraction of the cost (distance transforms of whole native volumes were
    # 43 % of an evaluation job of the default study).
    box = bounding_box(prediction | truth)
    prediction, truth = prediction[box], truth[box]
    distances = np.concatenate([surface_distances(prediction, truth, spacing),
                                surface_distances(truth, prediction, spacing)])
    return float(np.percentile(distances, 95))


def sensitivity(prediction: np.ndarray, truth: np.ndarray) -> float:
    positives = truth.sum()
    return 1.0 if positives == 0 else float((prediction & truth).sum() / positives)


def specificity(prediction: np.ndarray, truth: np.ndarray, within: np.ndarray) -> float:
    negatives = (~truth & within).sum()
    return 1.0 if negatives == 0 else float((~prediction & ~truth & within).sum() / negatives)


def score_regions(prediction_label: ArrayLike, truth_label: ArrayLike, spacing: Spacing,
                  brain: ArrayLike | None = None) -> dict[str, dict[str, float]]:
    """{region: {truth_voxels, dice, hd95, sensitivity, specificity}} for label maps in BraTS
    values (truth_voxels: the region's size in the truth, so tables can select the subjects
    that have it).

    Specificity counts negatives inside `brain` (the whole volume when None): outside the
    head every method is trivially right, which would push every specificity to 1.
    """
    prediction_label, truth_label = np.asarray(prediction_label), np.asarray(truth_label)
    within = np.ones(truth_label.shape, bool) if brain is None else np.asarray(brain, bool)
    scores = {}
    predicted, true = region_masks(prediction_label), region_masks(truth_label)
    for region, prediction in predicted.items():
        truth = true[region]
        scores[region] = {"truth_voxels": int(truth.sum()),
                          "dice": dice(prediction, truth),
                          "hd95": hd95(prediction, truth, spacing),
                          "sensitivity": sensitivity(prediction, truth),
                          "specificity": specificity(prediction, truth, within)}
    return scores
