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
    """A SimpleITK image of an (x, y, z) array on the grid of a RAS affine, the grid
    volumes.to_ants gives ANTs (volumes.itk_grid)."""
    from lesion_transfer.preprocess.volumes import itk_grid

    origin, spacing, direction = itk_grid(affine)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    image.SetOrigin(tuple(float(v) for v in origin))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return image


def sitk_warp(sitk, data, affine, shape, target_affine, transforms):
    """`data` on the grid (shape, target_affine) through ANTs' inverse transform files, as
    register.warp_to_native does with ANTs (labels: genericLabel, here sitkLabelLinear).
    The composite takes them in the reverse of ANTs' list (measured: in ANTs' order a SyN
    warp and its affine gave 48,471 other voxels of 252,029)."""
    moving = sitk_image(sitk, data.astype(np.float32), affine)
    reference = sitk_image(sitk, np.zeros(shape, np.float32), target_affine)
    composite = sitk.CompositeTransform(3)
    for name, invert in reversed(list(zip(transforms["inverse"],
                                          transforms["inverse_invert"]))):
        if name.endswith(".nii.gz"):  # a SyN warp: a displacement field image
            field = sitk.ReadImage(name, sitk.sitkVectorFloat64)
            transform = sitk.DisplacementFieldTransform(field)
        else:
            transform = sitk.ReadTransform(name)
        composite.AddTransform(transform.GetInverse() if invert else transform)
    out = sitk.Resample(moving, reference, composite, sitk.sitkLabelLinear, 0.0,
                        sitk.sitkFloat32)
    return np.rint(np.transpose(sitk.GetArrayFromImage(out), (2, 1, 0))).astype(np.uint8)


def sitk_to_native(sitk, label, meta, transforms):
    from lesion_transfer.preprocess.cache import uncrop

    full = uncrop(label, meta["crop_start"], meta["template_shape"])
    return sitk_warp(sitk, full, meta["template_affine"], meta["native_shape"],
                     meta["native_affine"], transforms)


def syn_phantom(sitk, folder):
    """A phantom MS subject registered with SyN (2 mm, seeded, one thread: set
    ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1), its brain mask plus white matter warped to the
    template and back by ANTs and by SimpleITK: (labelled voxels, voxels that differ)."""
    from lesion_transfer.config import schema_defaults
    from lesion_transfer.phantoms import PhantomSettings, synthesize_ms_subject
    from lesion_transfer.preprocess import register

    settings = PhantomSettings.from_config(
        schema_defaults("phantom", kind="ms", subjects=1, spacing_mm=2.0), 5)
    phantom = synthesize_ms_subject(settings, "MS000", 0)
    template, _, template_affine = register.load_template(2.0)
    register.register_to_template(phantom.images["t1"].astype(np.float32), phantom.affine,
                                  phantom.brain_mask > 0, template, template_affine, "syn",
                                  folder, seed=1)
    transforms = register.read_transforms(folder)
    labels = (phantom.brain_mask > 0).astype(np.uint8) + (phantom.tissues == 3)
    in_template = register.warp_to_template(labels, phantom.affine, template.shape,
                                            template_affine, transforms, label=True)
    shape = phantom.images["t1"].shape
    by_ants = register.warp_to_native(in_template, template_affine, shape, phantom.affine,
                                      transforms, label=True)
    by_sitk = sitk_warp(sitk, in_template, template_affine, shape, phantom.affine, transforms)
    return int((by_ants > 0).sum()), int((by_ants != by_sitk).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, required=True)
    parser.add_argument("--syn", type=Path, metavar="FOLDER",
                        help="also register a phantom with SyN, its transforms in FOLDER")
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
    if args.syn:
        labelled, differ = syn_phantom(sitk, args.syn)
        print(f"SyN phantom: {labelled} labelled voxels, {differ} differ")


if __name__ == "__main__":
    main()
