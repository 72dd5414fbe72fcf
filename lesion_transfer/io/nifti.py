"""NIfTI reading and writing with nibabel; writes are atomic and byte-reproducible."""

import nibabel as nib
import numpy as np

from lesion_transfer.io.atomic import atomic_path
from lesion_transfer.io.broken import reading


def save_nifti(path, data, affine, dtype=None):
    """Write `data` on the grid `affine`; nibabel gzips with a fixed mtime, so same data, same
    bytes."""
    data = np.asarray(data if dtype is None else data.astype(dtype))
    image = nib.Nifti1Image(data, np.asarray(affine, dtype=float))
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, tmp)


def load_nifti(path, dtype=np.float32):
    """Return (data, affine) of a NIfTI file."""
    with reading(path, "a NIfTI image"):
        image = nib.load(str(path))
        return np.asarray(image.dataobj, dtype=dtype), image.affine


def spacing_of(affine):
    """Voxel size in mm along each array axis."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
