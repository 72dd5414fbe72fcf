"""Check: does SimpleITK, applying ANTs' own transform files, bring a cached label back to the
subject's native grid exactly as ANTs does (preprocess.cache.to_native, ANTs'
apply_transforms with `genericLabel`)? If it does, evaluation and submissions could drop
ANTs (3.7 s of import in every evaluation job, bench/results/job_startup.md) for SimpleITK
(0.2 s). Reported: per cached subject of a finished study, the voxels where the two differ.

    python bench/native_warp_simpleitk.py --study <a finished study's working directory>

Nothing in the library uses SimpleITK for this yet; the question is what this measures.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np


def sitk_image(sitk, data, affine):
    """A SimpleITK image of an (x, y, z) array on the grid of a RAS affine (as volumes.to_ants
    builds ANTs': LPS origin and direction)."""
    from lesion_transfer.io.nifti import spacing_of
    from lesion_transfer.preprocess.volumes import RAS_TO_LPS

    affine = np.asarray(affine, float)
    spacing = spacing_of(affine)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    image.SetOrigin(tuple(float(v) for v in RAS_TO_LPS @ affine[:3, 3]))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in (RAS_TO_LPS @ affine[:3, :3] / spacing).ravel()))
    return image


def sitk_to_native(sitk, label, meta, transforms):
    from lesion_transfer.preprocess.cache import uncrop

    full = uncrop(label, meta["crop_start"], meta["template_shape"]).astype(np.float32)
    moving = sitk_image(sitk, full, meta["template_affine"])
    reference = sitk_image(sitk, np.zeros(meta["native_shape"], np.float32),
                           meta["native_affine"])
    composite = sitk.CompositeTransform(3)
    for name, invert in zip(transforms["inverse"], transforms["inverse_invert"]):
        transform = sitk.ReadTransform(name)
        composite.AddTransform(transform.GetInverse() if invert else transform)
    out = sitk.Resample(moving, reference, composite, sitk.sitkLabelLinear, 0.0,
                        sitk.sitkFloat32)
    return np.rint(np.transpose(sitk.GetArrayFromImage(out), (2, 1, 0))).astype(np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, required=True)
    args = parser.parse_args()
    started = time.process_time()
    import SimpleITK as sitk
    sitk_s = time.process_time() - started
    started = time.process_time()
    import ants  # noqa: F401  (timed: what evaluation pays today)
    ants_s = time.process_time() - started

    from lesion_transfer.preprocess.cache import to_native
    from lesion_transfer.preprocess.register import read_transforms

    identical = 0
    metas = sorted(args.study.glob("results/cache/*/*/meta.json"))
    for path in metas:
        meta = json.loads(path.read_text())
        meta["transforms"] = str(args.study / "results" / meta["transforms"])
        label = np.load(path.parent / "label.npy")
        label = np.where(label == 255, 0, label).astype(np.uint8)  # 255: unknown (unlabelled)
        by_ants = to_native(label, meta)
        by_sitk = sitk_to_native(sitk, label, meta, read_transforms(meta["transforms"]))
        differ = int((by_ants != by_sitk).sum())
        identical += differ == 0
        print(f"{path.parent.parent.name}/{path.parent.name}: native {by_ants.shape}, "
              f"{int((by_ants > 0).sum())} labelled voxels, {differ} differ")
    print(f"identical on {identical} of {len(metas)} subjects; import CPU s: SimpleITK "
          f"{sitk_s:.2f}, ants {ants_s:.2f}")


if __name__ == "__main__":
    main()
