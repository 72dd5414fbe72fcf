"""Nyul & Udupa histogram standardisation: a piecewise-linear map of each image's intensity
landmarks onto a standard scale learned from training images only."""

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike

PERCENTILES = (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99)
STANDARD_RANGE = (0.0, 100.0)


def landmarks(data: ArrayLike, mask: np.ndarray,
              percentiles: Sequence[float] = PERCENTILES) -> np.ndarray:
    return np.percentile(np.asarray(data)[mask], percentiles)


def fit_standard_scale(images: Iterable[tuple[np.ndarray, np.ndarray]],
                       percentiles: Sequence[float] = PERCENTILES,
                       standard_range: tuple[float, float] = STANDARD_RANGE) -> dict:
    """images: iterable of (data, mask). Each image's landmarks are mapped linearly so that
    its first and last land on the standard range; the scale is their mean."""
    low, high = standard_range
    mapped = []
    for data, mask in images:
        points = landmarks(data, mask, percentiles)
        span = max(points[-1] - points[0], 1e-6)
        mapped.append(low + (points - points[0]) / span * (high - low))
    if not mapped:
        raise ValueError("Nyul standardisation needs at least one training image")
    return {"percentiles": list(percentiles), "landmarks": np.mean(mapped, axis=0).tolist()}


def apply_standard_scale(data: np.ndarray, mask: np.ndarray, scale: dict) -> np.ndarray:
    """Map `data` onto the scale; linear extrapolation beyond the outer landmarks (np.interp
    would clamp the darkest and brightest voxels). Outside the mask: 0."""
    source = landmarks(data, mask, scale["percentiles"])
    target = np.asarray(scale["landmarks"])
    source = np.maximum.accumulate(source + np.arange(len(source)) * 1e-6)  # strictly rising
    values = np.interp(data, source, target)
    below, above = data < source[0], data > source[-1]
    values[below] = target[0] + (data[below] - source[0]) * _slope(source, target, 0)
    values[above] = target[-1] + (data[above] - source[-1]) * _slope(source, target, -1)
    return np.where(mask, values, 0.0).astype(np.float32)


def _slope(source: np.ndarray, target: np.ndarray, end: int) -> float:
    i, j = (0, 1) if end == 0 else (-2, -1)
    return (target[j] - target[i]) / max(source[j] - source[i], 1e-6)
