"""Skull and scalp around a brain, so that brain extraction has real work to do."""


import numpy as np
from scipy import ndimage

from lesion_transfer.io.nifti import Spacing
from lesion_transfer.phantoms.fields import smooth_noise


def head_layers(brain: np.ndarray, spacing: Spacing, rng: np.random.Generator,
                csf_mm: float = 2.5, skull_mm: float = 6.0, scalp_mm: float = 5.5
                ) -> dict[str, np.ndarray]:
    """Fractions of extra-cerebral CSF, skull and scalp outside a brain mask.

    Each layer's thickness wanders smoothly (about 1.5 mm) around the head.
    """
    outside = ndimage.distance_transform_edt(brain < 0.5, sampling=spacing).astype(np.float32)
    depth = outside + 1.5 * smooth_noise(brain.shape, spacing, 30.0, rng)
    edges = np.cumsum([csf_mm, skull_mm, scalp_mm])
    layers = {
        "csf": (outside > 0) & (depth <= edges[0]),
        "skull": (depth > edges[0]) & (depth <= edges[1]),
        "scalp": (depth > edges[1]) & (depth <= edges[2]),
    }
    sigma = 0.5  # voxels: partial volume at the layer boundaries
    return {
        name: np.clip(ndimage.gaussian_filter(mask.astype(np.float32), sigma), 0.0, 1.0)
        * (brain < 0.5)
        for name, mask in layers.items()
    }

