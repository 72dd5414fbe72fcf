"""Multi-channel volumes on disk and the bridge between nibabel (RAS) and ITK's two Python
faces, ANTs and SimpleITK (LPS)."""

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from lesion_transfer.io.broken import reading
from lesion_transfer.io.nifti import save_nifti, spacing_of

# NIfTI affines are RAS; ITK/ANTs physical space is LPS: x and y change sign.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@contextmanager
def ants_seed(seed: int | None) -> Iterator[None]:
    """ANTs registrations inside draw their metric's random sample points from `seed` (None:
    from the clock, ANTs' default), so the same input gives the same transform.

    That holds only when ITK runs single-threaded. Seeded on two threads, ANTs 0.6.3 gave
    another transform on every run, and with one seed every run scaled the brain 2.6 to 6.1
    times (bench/results/registration_seed.md). So a seed is refused, before any work, unless
    ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS is 1: ITK reads it once, when ANTs first runs.
    """
    if seed is None:
        yield
        return
    require_single_threaded_itk()
    before = os.environ.get("ANTS_RANDOM_SEED")
    # antsRegistration reads ANTS_RANDOM_SEED when given no --random-seed (ANTsPy passes none),
    # as a positive 32-bit integer, 0 meaning the clock: fold any seed into that range.
    os.environ["ANTS_RANDOM_SEED"] = str(1 + seed % (2**31 - 2))
    try:
        yield
    finally:
        if before is None:
            del os.environ["ANTS_RANDOM_SEED"]
        else:
            os.environ["ANTS_RANDOM_SEED"] = before


def require_single_threaded_itk() -> None:
    threads = os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
    if threads != "1":
        raise RuntimeError(
            "A seeded ANTs registration must run single-threaded: set "
            "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1 before ANTs is first used (found "
            f"{threads!r}). Seeded and multi-threaded, it gave another, sometimes grossly wrong, "
            "transform on every run")


def itk_grid(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origin, spacing, direction) of a RAS voxel-to-world affine as ITK (ANTs, SimpleITK)
    describes a grid: in LPS."""
    affine = np.asarray(affine, dtype=float)
    spacing = spacing_of(affine)
    return RAS_TO_LPS @ affine[:3, 3], spacing, RAS_TO_LPS @ affine[:3, :3] / spacing


def to_ants(data: np.ndarray, affine: np.ndarray) -> Any:
    import ants

    origin, spacing, direction = itk_grid(affine)
    return ants.from_numpy(np.ascontiguousarray(data, dtype=np.float32), origin=tuple(origin),
                           spacing=tuple(spacing), direction=direction)


def to_sitk(data: np.ndarray, affine: np.ndarray) -> Any:
    """A SimpleITK image of an (x, y, z) array on the grid to_ants gives ANTs (SimpleITK's
    arrays are (z, y, x))."""
    import SimpleITK as sitk

    origin, spacing, direction = itk_grid(affine)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    image.SetOrigin(tuple(float(v) for v in origin))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return image


def from_sitk(image: Any) -> np.ndarray:
    """The (x, y, z) array of a SimpleITK image."""
    import SimpleITK as sitk

    return np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))


def from_ants(image: Any) -> tuple[np.ndarray, np.ndarray]:
    """(data, affine) of an ANTs image (ants.ANTsImage)."""
    affine = np.eye(4)
    affine[:3, :3] = RAS_TO_LPS @ np.asarray(image.direction) * np.asarray(image.spacing)
    affine[:3, 3] = RAS_TO_LPS @ np.asarray(image.origin)
    return image.numpy(), affine


def save_channels(path: str | Path, channels: Sequence[np.ndarray], affine: np.ndarray) -> None:
    """Write a list of 3D arrays as one 4D float32 NIfTI (x, y, z, channel)."""
    save_nifti(path, np.stack(channels, axis=-1).astype(np.float32), affine)


def load_channels(path: str | Path) -> tuple[list[np.ndarray], np.ndarray]:
    """(list of 3D float32 arrays, affine) from a 4D NIfTI written by save_channels."""
    with reading(path, "a 4D NIfTI image"):
        image: Any = nib.load(str(path))  # NIfTI-1 or -2: the loader picks the class
        data = np.asarray(image.dataobj, dtype=np.float32)
    return [data[..., c] for c in range(data.shape[-1])], image.affine


def load_mask(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    with reading(path, "a NIfTI mask"):
        image: Any = nib.load(str(path))  # NIfTI-1 or -2: the loader picks the class
        return np.asarray(image.dataobj) > 0, image.affine
