"""Benchmark: N4's speed against its quality, on phantoms whose bias field is known. For each
fitting resolution (the shrink factor) and iteration schedule, the median CPU seconds of one
channel (ITK on one thread, as the workflow's jobs: CPU time, unlike wall time, does not grow
when other processes share the cores) and how well the field matches the truth: the
correlation of log fields inside the brain (what tests/test_preprocess.py holds N4 to, >= 0.9)
and the white-matter coefficient of variation left after correction (the phantom's is that of
its noise and tissue jitter).

    python bench/n4_settings.py --out bench/results/n4_settings.md
"""

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

# one ITK thread, as the workflow's correct_bias jobs (threads: 1) run
os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")

import numpy as np

from lesion_transfer.config import schema_defaults
from lesion_transfer.phantoms import (
    PhantomSettings,
    synthesize_glioma_subject,
    synthesize_ms_subject,
)
from lesion_transfer.preprocess import bias

WM = 3  # the phantoms' white-matter class (Phantom.tissues, lesion_transfer.phantoms.cohort)

SCHEDULES = {  # iterations per fitting level; the tolerance stays bias.CONVERGENCE's
    "4 x 50 (the default)": [50, 50, 50, 50],
    "3 x 50": [50, 50, 50],
    "2 x 50": [50, 50],
    "4 x 25": [25, 25, 25, 25],
    "3 x 25": [25, 25, 25],
}


def phantoms(count, spacing):
    ms, glioma = (PhantomSettings.from_config(
        schema_defaults("phantom", kind=kind, subjects=count, spacing_mm=spacing), 0)
        for kind in ("ms", "glioma"))
    return ([synthesize_ms_subject(ms, f"MS{i:03d}", i) for i in range(count)]
            + [synthesize_glioma_subject(glioma, f"Brats18_B_{i}", i, "HGG")
               for i in range(count)])


def measure(subjects, modalities, fit_mm, schedule):
    seconds, correlations, variations = [], [], []
    for phantom in subjects:
        mask = phantom.brain_mask > 0
        wm = phantom.tissues == WM
        for modality in modalities:
            image = phantom.images[modality].astype(np.float32)
            start = time.process_time()
            corrected, field = bias.correct_bias(image, phantom.affine, mask, "n4", fit_mm,
                                                 {**bias.CONVERGENCE, "iters": schedule})
            seconds.append(time.process_time() - start)
            truth = phantom.bias[modality][mask]
            correlations.append(np.corrcoef(np.log(field[mask]), np.log(truth))[0, 1])
            variations.append(float(np.std(corrected[wm]) / np.mean(corrected[wm])))
    return statistics.median(seconds), min(correlations), statistics.median(correlations), \
        statistics.median(variations)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2, help="of each kind (MS, glioma)")
    parser.add_argument("--spacing", type=float, default=2.0, help="the phantoms' grid (mm)")
    parser.add_argument("--fit-mm", type=float, nargs="+", default=[6.0, 8.0, 10.0])
    parser.add_argument("--modalities", nargs="+", default=["t1", "flair"])
    parser.add_argument("--out")
    args = parser.parse_args()
    subjects = phantoms(args.subjects, args.spacing)
    lines = ["# N4 settings: speed against the known bias field", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores; "
             f"{time.strftime('%Y-%m-%d')}. Command: `python bench/n4_settings.py --subjects "
             f"{args.subjects} --spacing {args.spacing:g}` ({args.subjects} MS-like and "
             f"{args.subjects} glioma phantoms at {args.spacing:g} mm, channels "
             f"{', '.join(args.modalities)}, ITK threads "
             f"{os.environ['ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS']}).", "",
             "| fit at (mm) | shrink | iterations per level | CPU s per channel | "
             "log-field r, worst | median | WM CoV after |", "|---|---|---|---|---|---|---|"]
    raw_variation = statistics.median(
        float(np.std(p.images[m][p.tissues == WM]) / np.mean(p.images[m][p.tissues == WM]))
        for p in subjects for m in args.modalities)
    for fit_mm in args.fit_mm:
        for name, schedule in SCHEDULES.items():
            seconds, worst, median, variation = measure(subjects, args.modalities, fit_mm,
                                                        schedule)
            row = (f"| {fit_mm:g} | {max(1, round(fit_mm / args.spacing))} | {name} | "
                   f"{seconds:.2f} | {worst:.3f} | {median:.3f} | {variation:.3f} |")
            print(row, flush=True)
            lines.append(row)
    lines += ["", f"White-matter coefficient of variation before correction: {raw_variation:.3f}.",
              ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
