"""Quality control: per-subject measures after registration, outlier flags per dataset."""

from collections.abc import Sequence
from typing import Any

import numpy as np

from lesion_transfer.labels import dice


def normalised_cross_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    x, y = a[mask].astype(float), b[mask].astype(float)
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / max(np.sqrt((x**2).sum() * (y**2).sum()), 1e-12))


def registration_qc(t1_template_space: np.ndarray, mask_template_space: np.ndarray,
                    template_t1: np.ndarray, template_mask: np.ndarray, native_mask: np.ndarray,
                    native_affine: np.ndarray) -> dict[str, float]:
    voxel_ml = abs(np.linalg.det(np.asarray(native_affine)[:3, :3])) / 1000.0
    return {
        "similarity_to_template": normalised_cross_correlation(
            t1_template_space, template_t1, template_mask),
        "mask_dice_with_template": dice(mask_template_space, template_mask),
        "brain_volume_ml": float(native_mask.sum() * voxel_ml),
    }


def flag_outliers(rows: list[dict[str, Any]], measures: Sequence[str], threshold: float = 3.5
                  ) -> list[dict[str, Any]]:
    """Robust z-score (median, MAD) per measure; a row is an outlier if any |z| > threshold."""
    for measure in measures:
        values = np.array([row[measure] for row in rows], dtype=float)
        median = np.median(values)
        spread = 1.4826 * np.median(np.abs(values - median))
        for row, value in zip(rows, values):
            z = 0.0 if spread == 0 else (value - median) / spread
            row[f"{measure}_z"] = round(float(z), 2)
    for row in rows:
        flagged = [m for m in measures if abs(row[f"{m}_z"]) > threshold]
        row["outlier"] = ",".join(flagged)
    return rows
