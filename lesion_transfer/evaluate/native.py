"""Predictions back on each subject's own grid: the test subjects' label maps, and a BraTS
submission for the unlabelled cases from the fold models' ensemble. Needs ANTs (through
`to_native`), not torch."""

from pathlib import Path

import numpy as np

from lesion_transfer.evaluate.operating_point import REGION_NAMES, label_map
from lesion_transfer.evaluate.storage import (
    cache_folder,
    load_labels,
    load_probabilities,
    read_thresholds,
)
from lesion_transfer.io.atomic import atomic_path
from lesion_transfer.io.cache import read_meta


def write_native(label, meta, path):
    """A cache-space label map on the subject's own grid and affine, in BraTS values."""
    import nibabel as nib

    from lesion_transfer.preprocess.cache import to_native

    native = to_native(label, meta).astype(np.uint8)
    image = nib.Nifti1Image(native, np.asarray(meta["native_affine"]))
    image.set_data_dtype(np.uint8)
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))


def warp_predictions_to_native_stage(labels_path, test_metas, output_folder, log):
    """Every test subject's label map back on its native grid."""
    labels = load_labels(labels_path)
    output_folder = Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    for meta_path in test_metas:
        name = cache_folder(meta_path).name
        write_native(labels[name], read_meta(meta_path),
                     output_folder / f"{name}.nii.gz")
    log.info("%d native-space label maps in %s", len(test_metas), output_folder)


def make_submission_stage(probability_paths, operating_point_paths, subject_metas, output_folder,
                          log):
    """A BraTS submission: one <ID>.nii.gz per unlabelled case on its original grid; the fold
    models' region probabilities averaged, thresholded at their mean operating point."""
    folds = [load_probabilities(p) for p in probability_paths]
    points = [read_thresholds(p) for p in operating_point_paths]
    thresholds = {r: float(np.mean([p[r] for p in points])) for r in REGION_NAMES}
    log.info("ensemble of %d fold models; thresholds %s", len(folds), thresholds)
    output_folder = Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    for meta_path in subject_metas:
        name = cache_folder(meta_path).name
        mean = np.mean([fold[name] for fold in folds], axis=0)
        write_native(label_map(mean, thresholds), read_meta(meta_path),
                     output_folder / f"{name}.nii.gz")
    log.info("%d cases written to %s", len(subject_metas), output_folder)
