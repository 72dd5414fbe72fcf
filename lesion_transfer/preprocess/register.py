"""Registration to the template with ANTs, and the template itself (nilearn's MNI152 2009,
shipped inside the package: nothing downloads).

The way back to a subject's grid (warp_to_native) reads ANTs' transform files with
SimpleITK: the same labels voxel for voxel (tests/test_preprocess.py, affine and SyN;
bench/results/native_warp_simpleitk.md), and evaluation jobs, which need only that, import
SimpleITK in 0.1 s instead of ANTs in 3.4 s."""

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lesion_transfer.io.broken import BrokenFileError, reading
from lesion_transfer.preprocess.volumes import (
    ants_seed,
    from_ants,
    from_sitk,
    to_ants,
    to_sitk,
)

TRANSFORM_TYPES = {"rigid": "Rigid", "affine": "Affine", "syn": "SyN"}


def load_template(spacing_mm: float, template_path: str | Path | None = None,
                  mask_path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T1 brain, brain mask, affine) at `spacing_mm`: nilearn's MNI152 unless paths are given."""
    import ants
    import nibabel as nib

    if template_path:
        image: Any = nib.load(template_path)  # NIfTI-1 or -2: the loader picks the class
        t1, affine = np.asarray(image.dataobj, dtype=np.float32), image.affine
        mask_file: Any = nib.load(mask_path) if mask_path else None
        mask = np.asarray(mask_file.dataobj) > 0 if mask_file is not None else t1 > 0
    else:
        from nilearn import datasets

        image = datasets.load_mni152_template(resolution=1)
        mask = datasets.load_mni152_brain_mask(resolution=1).get_fdata() > 0
        t1, affine = image.get_fdata().astype(np.float32), image.affine  # stored uint8: as float
    t1 = np.where(mask, t1, 0.0)
    resampled = ants.resample_image(to_ants(t1, affine), (spacing_mm,) * 3, interp_type=0)
    t1, affine = from_ants(resampled)
    mask_image = ants.resample_image_to_target(to_ants(mask.astype(np.float32), image.affine),
                                               resampled, interpolator="linear")
    return t1.astype(np.float32), from_ants(mask_image)[0] > 0.5, affine


def register_to_template(t1: np.ndarray, affine: np.ndarray, mask: np.ndarray,
                         template_t1: np.ndarray, template_affine: np.ndarray, transform: str,
                         folder: str | Path, seed: int | None = None) -> dict[str, Any]:
    """Register a brain-extracted T1 to the template; transforms are kept in `folder`.

    With `seed` (see volumes.ants_seed) the same input gives the same transform, as a rerun
    must; without, ANTs seeds from the clock.

    Returns the transform description written to folder/transforms.json.
    """
    import ants

    folder = Path(folder)
    with ants_seed(seed):
        building = folder.with_name(f".{folder.name}.building")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        registration = ants.registration(
            fixed=to_ants(template_t1, template_affine),
            moving=to_ants(np.where(mask, t1, 0.0), affine),
            type_of_transform=TRANSFORM_TYPES[transform],
            outprefix=str(building / "to_template_"),
        )
    description: dict[str, Any] = {
        "type": transform,
        "forward": [Path(p).name for p in registration["fwdtransforms"]],
        "inverse": [Path(p).name for p in registration["invtransforms"]],
    }
    # ANTs lists an affine once for both directions: it must be inverted on the way back.
    description["inverse_invert"] = [name.endswith(".mat") for name in description["inverse"]]
    (building / "transforms.json").write_text(json.dumps(description, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    building.rename(folder)
    return description


def read_transforms(folder: str | Path) -> dict[str, Any]:
    """transforms.json with its files' paths; each must be a file of the folder itself (ANTs
    would open whatever a name like '../../x' points at)."""
    folder = Path(folder)
    path = folder / "transforms.json"
    with reading(path, "ANTs' transforms described in JSON"):
        description = json.loads(path.read_text())
    for direction in ("forward", "inverse"):
        outside = [n for n in description[direction] if Path(n).name != n or n in ("", "..")]
        if outside:
            raise BrokenFileError(path, f"expected the names of files in {folder}, found "
                                        f"{', '.join(map(repr, outside))}")
        description[direction] = [str(folder / n) for n in description[direction]]
    return description


def warp_to_template(data: np.ndarray, affine: np.ndarray, template_shape: Sequence[int],
                     template_affine: np.ndarray, transforms: dict[str, Any],
                     label: bool = False) -> np.ndarray:
    import ants

    fixed = to_ants(np.zeros(template_shape, np.float32), template_affine)
    warped = ants.apply_transforms(fixed, to_ants(data, affine), transforms["forward"],
                                   interpolator="genericLabel" if label else "linear")
    result = from_ants(warped)[0]
    return np.rint(result).astype(np.uint8) if label else result.astype(np.float32)


def warp_to_native(data: np.ndarray, template_affine: np.ndarray, native_shape: Sequence[int],
                   native_affine: np.ndarray, transforms: dict[str, Any]) -> np.ndarray:
    """A label map on the template's grid back on the subject's (native_shape,
    native_affine), through the inverse transforms ANTs wrote, by ITK's generic label
    interpolator with linear weights (ANTs' `genericLabel`)."""
    import SimpleITK as sitk

    moving = to_sitk(data.astype(np.float32), template_affine)
    reference = to_sitk(np.zeros(tuple(native_shape), np.float32), native_affine)
    composite = sitk.CompositeTransform(3)
    # SimpleITK's composite takes ANTs' list in reverse order (in ANTs' order a SyN warp
    # and its affine gave 48,471 other voxels of 252,029: bench/results/native_warp_simpleitk.md)
    for name, invert in reversed(list(zip(transforms["inverse"], transforms["inverse_invert"]))):
        if not Path(name).is_file():
            raise FileNotFoundError(f"{name}: ANTs' transform, named in transforms.json, is "
                                    "missing")
        with reading(name, "a transform written by ANTs"):
            if name.endswith(".nii.gz"):  # SyN: a displacement field
                transform = sitk.DisplacementFieldTransform(
                    sitk.ReadImage(name, sitk.sitkVectorFloat64))
            else:
                transform = sitk.ReadTransform(name)
        composite.AddTransform(transform.GetInverse() if invert else transform)
    warped = sitk.Resample(moving, reference, composite, sitk.sitkLabelLinear, 0.0,
                           sitk.sitkFloat32)
    return np.rint(from_sitk(warped)).astype(np.uint8)
