"""Benchmark: HD95 computed inside the bounding box of the two masks (evaluate.metrics.hd95)
against distance transforms of the whole volume (what it did before), on a finished study's
label maps on native grids: seconds per subject and region, and whether the two agree
exactly.

    python bench/hd95.py --study <a finished study's working directory> [--subjects 12]
        [--dataset brats_phantom]

The predictions are results/predictions/<arm>/<size>/<run>/native/*.nii.gz of the first model
folder found; the truths the `label` files of the target dataset's subjects table.
"""

import argparse
import platform
import subprocess
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from lesion_transfer.evaluate.metrics import hd95, surface
from lesion_transfer.io.ingest import read_subjects_table
from lesion_transfer.labels import region_masks


def whole_volume_hd95(a, b, spacing):
    def to(x, y):
        return ndimage.distance_transform_edt(~surface(y), sampling=spacing)[surface(x)]
    return float(np.percentile(np.r_[to(a, b), to(b, a)], 95))


def labels_of(study, dataset):
    """{subject: label path} from the dataset's subjects table (relative: to the study)."""
    rows = read_subjects_table(study / "results" / "subjects" / f"{dataset}.tsv")
    return {row["subject"]: study / row["label"] for row in rows if row["label"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--study", type=Path, required=True)
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--dataset", default="brats_phantom", help="the target's name")
    args = parser.parse_args()
    folder = next((args.study / "results" / "predictions").glob("*/*/*/native"))
    truths = labels_of(args.study, args.dataset)
    timings = {"box": [], "whole volume": []}
    differ = compared = 0
    for prediction_path in sorted(folder.glob("*.nii.gz"))[:args.subjects]:
        subject = prediction_path.name.removesuffix(".nii.gz")
        image = nib.load(truths[subject])
        spacing = image.header.get_zooms()[:3]
        predicted = region_masks(np.asarray(nib.load(prediction_path).dataobj))
        true = region_masks(np.asarray(image.dataobj))
        for region, a in predicted.items():
            b = true[region]
            if not (a.any() and b.any()):
                continue
            start = time.perf_counter()
            boxed = hd95(a, b, spacing)
            middle = time.perf_counter()
            whole = whole_volume_hd95(a, b, spacing)
            timings["box"].append(middle - start)
            timings["whole volume"].append(time.perf_counter() - middle)
            compared += 1
            differ += boxed != whole
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"{folder} ({compared} subject-regions, grid {a.shape}), commit {commit}, "
          f"{platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d %H:%M')}")
    print("| HD95 computed | median s per region | total s |\n|---|---|---|")
    for name, values in timings.items():
        print(f"| {name} | {np.median(values):.3f} | {sum(values):.1f} |")
    print(f"regions where the two differ: {differ} of {compared}")


if __name__ == "__main__":
    main()
