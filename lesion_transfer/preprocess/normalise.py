"""Intensity normalisation: as in the paper, z-score inside the brain remapped to [0, 1]
("unit"); or the z-score alone ("zscore", nnU-Net's ZScoreNormalization on a brain mask), the
scale a source trained by nnU-Net expects (preprocess.intensity)."""

import numpy as np

# The remap uses robust ends, so that a handful of extreme voxels cannot squeeze the rest.
LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.5


def zscore_to_unit(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    inside = data[mask]
    if inside.size == 0:
        return np.zeros_like(data, dtype=np.float32)
    z = (data - inside.mean()) / max(float(inside.std()), 1e-6)
    low, high = np.percentile(z[mask], [LOW_PERCENTILE, HIGH_PERCENTILE])
    unit = np.clip((z - low) / max(high - low, 1e-6), 0.0, 1.0)
    return np.where(mask, unit, 0.0).astype(np.float32)


def zscore_in_brain(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(x - mean) / std over the brain, 0 outside it: nnU-Net's ZScoreNormalization with
    use_mask_for_norm (its choice for skull-stripped scans)."""
    inside = data[mask]
    if inside.size == 0:
        return np.zeros_like(data, dtype=np.float32)
    z = (data - inside.mean()) / max(float(inside.std()), 1e-6)
    return np.where(mask, z, 0.0).astype(np.float32)


NORMALISERS = {"unit": zscore_to_unit, "zscore": zscore_in_brain}
