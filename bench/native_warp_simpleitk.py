"""Check: does SimpleITK, applying ANTs' own transform files, bring a cached label back to the
subject's native grid exactly as ANTs does (preprocess.cache.to_native, ANTs'
apply_transforms with `genericLabel`)? If it does, evaluation and submissions could drop
ANTs (3.7 s of import in every evaluation job, bench/results/job_startup.md) for SimpleITK
(0.2 s). Reported: per cached subject of a finished study, the voxels where the two differ.

    python bench/native_warp_simpleitk.py --study <a finished study's working directory>

Since the switch, the library's to_native is the SimpleITK side and ANTs' apply_transforms,
written here, the reference (tests/test_preprocess.py holds the same on two registrations).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np


def ants_warp(data, affine, shape, target_affine, transforms):
    """What register.warp_to_native did with ANTs until it read the transforms with
    SimpleITK: apply_transforms with `genericLabel`."""
    import ants

    from lesion_transfer.preprocess.volumes import from_ants, to_ants

    warped = ants.apply_transforms(to_ants(np.zeros(shape, np.float32), target_affine),
                                   to_ants(data, affine), transforms["inverse"],
                                   whichtoinvert=transforms["inverse_invert"],
                                   interpolator="genericLabel")
    return np.rint(from_ants(warped)[0]).astype(np.uint8)


def ants_to_native(label, meta, transforms):
    from lesion_transfer.preprocess.cache import uncrop

    full = uncrop(label, meta["crop_start"], meta["template_shape"])
    return ants_warp(full, np.asarray(meta["template_affine"]), meta["native_shape"],
                     np.asarray(meta["native_affine"]), transforms)


def syn_phantom(folder):
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
    by_ants = ants_warp(in_template, template_affine, shape, phantom.affine, transforms)
    by_sitk = register.warp_to_native(in_template, template_affine, shape, phantom.affine,
                                      transforms)
    return int((by_ants > 0).sum()), int((by_ants != by_sitk).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, required=True)
    parser.add_argument("--syn", type=Path, metavar="FOLDER",
                        help="also register a phantom with SyN, its transforms in FOLDER")
    args = parser.parse_args()
    started = time.process_time()
    import SimpleITK as sitk  # noqa: F401  (timed: what evaluation pays now)
    sitk_s = time.process_time() - started
    started = time.process_time()
    import ants  # noqa: F401  (timed: what evaluation paid before)
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
        by_ants = ants_to_native(label, meta, read_transforms(meta["transforms"]))
        by_sitk = to_native(label, meta)  # SimpleITK since the switch
        differ = int((by_ants != by_sitk).sum())
        identical += differ == 0
        print(f"{path.parent.parent.name}/{path.parent.name}: native {by_ants.shape}, "
              f"{int((by_ants > 0).sum())} labelled voxels, {differ} differ")
    print(f"identical on {identical} of {len(metas)} subjects; import CPU s: SimpleITK "
          f"{sitk_s:.2f}, ants {ants_s:.2f}")
    if args.syn:
        labelled, differ = syn_phantom(args.syn)
        print(f"SyN phantom: {labelled} labelled voxels, {differ} differ")


if __name__ == "__main__":
    main()
