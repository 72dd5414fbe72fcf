"""Brain extraction. Methods: `none` (already skull-stripped: the non-zero voxels),
`deepbet` (a CNN whose weights ship inside its wheel: runs offline on a CPU), `given`
(the user's own masks, a `mask` column of the manifest)."""

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def mask_from_nonzero(channels: Sequence[np.ndarray]) -> np.ndarray:
    """Skull-stripped data: every voxel where some modality is non-zero, holes filled."""
    mask = np.zeros(channels[0].shape, dtype=bool)
    for channel in channels:
        mask |= channel != 0
    return ndimage.binary_fill_holes(mask)


def mask_with_deepbet(t1: np.ndarray, affine: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """deepbet on the T1 (it reorients internally and returns the mask on our grid)."""
    import nibabel as nib
    from deepbet import BrainExtraction

    extractor = BrainExtraction(no_gpu=True)
    _, mask, _ = extractor.run(nib.Nifti1Image(np.asarray(t1, dtype=np.float32), affine),
                               threshold=threshold)
    return np.asarray(mask.dataobj) > 0


def extract_brain(method: str, channels: Sequence[np.ndarray], affine: np.ndarray,
                  given_mask: np.ndarray | None = None) -> np.ndarray:
    if method == "none":
        return mask_from_nonzero(channels)
    if method == "deepbet":
        return mask_with_deepbet(channels[0], affine)
    if method == "given":
        if given_mask is None:
            raise ValueError("brain extraction 'given' needs a mask column in the manifest")
        return np.asarray(given_mask) > 0
    raise ValueError(f"unknown brain extraction method {method!r}: expected none, deepbet, given")
