"""NIfTI reading and writing with nibabel; writes are atomic and byte-reproducible."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from lesion_transfer.io.atomic import atomic_path
from lesion_transfer.io.broken import reading

# a voxel's size in mm: one number for every axis, or one per axis
Spacing = float | Sequence[float] | np.ndarray


def save_nifti(path: str | Path, data: ArrayLike, affine: ArrayLike,
               dtype: DTypeLike | None = None) -> None:
    """Write `data` on the grid `affine`; nibabel gzips with a fixed mtime, so same data, same
    bytes."""
    data = np.asarray(data) if dtype is None else np.asarray(data).astype(dtype)
    image = nib.Nifti1Image(data, np.asarray(affine, dtype=float))
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, tmp)


def load_nifti(path: str | Path,
               dtype: DTypeLike = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Return (data, affine) of a NIfTI file."""
    with reading(path, "a NIfTI image"):
        image: Any = nib.load(str(path))  # NIfTI-1 or -2: the loader picks the class
        return np.asarray(image.dataobj, dtype=dtype), image.affine


def spacing_of(affine: ArrayLike) -> np.ndarray:
    """Voxel size in mm along each array axis."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
