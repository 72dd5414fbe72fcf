"""Benchmark: does ANTs register the same input to the same transform twice? Each setting
(threads, seed) runs in a fresh process, because ITK fixes its thread count when it starts;
each process registers the same T1 to the template `--runs` times. Reported: the template
volume per native volume (1 / |det| of the affine's linear part) of every run, and the
seconds one registration takes.

The input is a real MS patient (../shared/realdata/open_ms/patient07, skull-stripped, native
space) at the CI configuration's 4 mm, or a phantom MS subject when realdata is absent.

    python bench/registration_seed.py --out bench/results/registration_seed.md
"""

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PATIENT = REPO.parent / "shared" / "realdata" / "open_ms" / "patient07" / "T1.nii.gz"
SETTINGS = [(2, None), (1, None), (1, 20190913), (2, 20190913), (1, 1233), (2, 1233)]

ONE_SETTING = """
import json, sys, tempfile, time
from pathlib import Path
import ants
import numpy as np
from lesion_transfer.preprocess import register, volumes

t1, spacing, runs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
seed = None if sys.argv[4] == "none" else int(sys.argv[4])
if sys.argv[5] == "unsafe":  # what ants_seed refuses, run to show why
    volumes.require_single_threaded_itk = lambda: None
if t1 == "phantom":
    from lesion_transfer.config import schema_defaults
    from lesion_transfer.phantoms import PhantomSettings, synthesize_ms_subject
    settings = PhantomSettings.from_config(schema_defaults("phantom", kind="ms", subjects=1), 5)
    subject = synthesize_ms_subject(settings, "MS000", 0)
    t1, affine = subject.images["t1"].astype(np.float32), subject.affine
else:
    from lesion_transfer.io.nifti import load_nifti
    t1, affine = load_nifti(t1)
template, _, template_affine = register.load_template(spacing)
scales, seconds = [], []
for _ in range(runs):
    folder = Path(tempfile.mkdtemp()) / "transforms"
    start = time.perf_counter()
    description = register.register_to_template(t1, affine, t1 > 0, template, template_affine,
                                                "affine", folder, seed=seed)
    seconds.append(time.perf_counter() - start)
    matrix = [n for n in description["forward"] if n.endswith(".mat")][0]
    linear = np.asarray(ants.read_transform(str(folder / matrix)).parameters[:9]).reshape(3, 3)
    scales.append(1.0 / abs(np.linalg.det(linear)))
print(json.dumps({"scales": scales, "seconds": seconds}))
"""


def run_setting(t1, spacing, runs, threads, seed):
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads)}
    env.pop("ANTS_RANDOM_SEED", None)
    unsafe = seed is not None and threads != 1
    out = subprocess.run([sys.executable, "-c", ONE_SETTING, str(t1), str(spacing), str(runs),
                          "none" if seed is None else str(seed), "unsafe" if unsafe else "safe"],
                         env=env, check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    t1 = PATIENT if PATIENT.exists() else "phantom"
    lines = [f"# ANTs registration, run again: {t1 if t1 == 'phantom' else 'open_ms patient07'}"
             f" at {args.spacing} mm, affine, {args.runs} runs per process",
             "", f"{platform.node()}, {os.cpu_count()} cores, python {platform.python_version()}",
             "", "| ITK threads | seed | template/native volume, each run | s per registration |",
             "|---|---|---|---|"]
    for threads, seed in SETTINGS:
        result = run_setting(t1, args.spacing, args.runs, threads, seed)
        scales = ", ".join(f"{s:.4f}" for s in result["scales"])
        seconds = sum(result["seconds"]) / len(result["seconds"])
        lines.append(f"| {threads} | {seed or 'none (clock)'} | {scales} | {seconds:.2f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
