"""Intensity normalisation as in the paper: z-score inside the brain, then remap to [0, 1]."""

import numpy as np

# The remap uses robust ends, so that a handful of extreme voxels cannot squeeze the rest.
LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.5


def zscore_to_unit(data, mask):
    inside = data[mask]
    if inside.size == 0:
        return np.zeros_like(data, dtype=np.float32)
    z = (data - inside.mean()) / max(float(inside.std()), 1e-6)
    low, high = np.percentile(z[mask], [LOW_PERCENTILE, HIGH_PERCENTILE])
    unit = np.clip((z - low) / max(high - low, 1e-6), 0.0, 1.0)
    return np.where(mask, unit, 0.0).astype(np.float32)
