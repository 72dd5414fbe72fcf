"""The MNI152 2009 template and tissue maps that nilearn ships (no download)."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class TissueTemplate:
    """Tissue fractions on the template grid; csf + gm + wm == brain inside the brain."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    depth: np.ndarray  # distance (mm) from each brain voxel to the brain's surface
    affine: np.ndarray

    @property
    def brain_centre(self) -> np.ndarray:
        """World coordinates (mm) of the brain's centre of mass."""
        centre_voxel = np.array(ndimage.center_of_mass(self.brain))
        return self.affine[:3, :3] @ centre_voxel + self.affine[:3, 3]


@lru_cache(maxsize=4)
def load_tissue_template(smoothing_mm: float = 0.0) -> TissueTemplate:
    """Load the 1 mm template; `smoothing_mm` low-passes it before sampling on a coarser grid."""
    from nilearn import datasets

    def read(loader: Callable[..., Any]) -> np.ndarray:
        return np.asarray(loader(resolution=1).get_fdata(), dtype=np.float32)

    # The nilearn template is stored as uint8 scaled to [0, 1]: read it as float.
    brain = (read(datasets.load_mni152_brain_mask) > 0).astype(np.float32)
    gm = read(datasets.load_mni152_gm_template) * brain
    wm = read(datasets.load_mni152_wm_template) * brain
    t1 = read(datasets.load_mni152_template) * brain
    affine = datasets.load_mni152_template(resolution=1).affine
    if smoothing_mm > 0:
        sigma = smoothing_mm / 2.355  # FWHM in mm to sigma in 1 mm voxels
        gm, wm, t1, brain = (ndimage.gaussian_filter(v, sigma) for v in (gm, wm, t1, brain))
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    depth = ndimage.distance_transform_edt(brain > 0.5).astype(np.float32)
    return TissueTemplate(t1=t1, gm=gm, wm=wm, csf=csf, brain=brain, depth=depth, affine=affine)
