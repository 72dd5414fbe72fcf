"""Benchmark: median seconds per preprocessing stage and per subject, on phantom subjects
(source and target) and on the real case, at the default (2 mm) and the paper's (1 mm)
working spacing. Runs the same stage functions the workflow's rules call, files included.

    python bench/preprocessing.py --subjects 3 --spacings 2 1 --out bench/results/preprocessing.md
"""

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

from lesion_transfer import MODALITIES
from lesion_transfer.config import schema_defaults
from lesion_transfer.io.nifti import save_nifti
from lesion_transfer.phantoms import (
    PhantomSettings,
    synthesize_glioma_subject,
    synthesize_ms_subject,
)
from lesion_transfer.preprocess import stages

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "TCGA-FG-6692" / "native"
CROP = {2.0: (120, 96, 96), 1.0: (240, 192, 192)}


def write_phantom(phantom, folder):
    raw = {}
    for modality in MODALITIES:
        raw[modality] = folder / f"{modality}.nii.gz"
        save_nifti(raw[modality], phantom.images[modality], phantom.affine)
    raw["label"] = folder / "label.nii.gz"
    save_nifti(raw["label"], phantom.label, phantom.affine, dtype="uint8")
    return raw


def run_chain(raw, scheme, method, spacing, folder, template):
    """Every stage once; returns {stage: seconds}."""
    f = {n: folder / f"{n}.nii.gz" for n in ("coregistered", "label", "mask", "corrected",
                                             "field", "standardised", "registered",
                                             "mask_template", "normalised")}
    scales = [folder / f"nyul_{m}.json" for m in MODALITIES]
    steps = [
        ("coregister_modalities", lambda: stages.coregister_modalities_stage(
            scheme, None, raw=raw, out_image=f["coregistered"], out_label=f["label"])),
        ("extract_brain", lambda: stages.extract_brain_stage(
            method, image=f["coregistered"], out_mask=f["mask"])),
        ("correct_bias", lambda: stages.correct_bias_stage(
            stages.BiasCorrection("n4", 4.0), image=f["coregistered"], mask=f["mask"],
            out_image=f["corrected"], out_field=f["field"])),
        ("fit_nyul (1 subject)", lambda: stages.fit_nyul_stage(
            ["s"], images=[f["corrected"]], masks=[f["mask"]], out_paths=scales)),
        ("apply_nyul", lambda: stages.apply_nyul_stage(
            image=f["corrected"], mask=f["mask"], scales=scales, out_image=f["standardised"])),
        ("register_to_template", lambda: stages.register_to_template_stage(
            stages.Registration("affine", None), image=f["standardised"], mask=f["mask"],
            template=stages.Template(*template),
            outputs=stages.Registered(f["registered"], f["mask_template"],
                                      folder / "transforms", folder / "qc.json"))),
        ("normalise_intensity", lambda: stages.normalise_intensity_stage(
            image=f["registered"], mask=f["mask_template"], out_image=f["normalised"])),
        ("cache_tensors", lambda: stages.cache_tensors_stage(
            stages.Caching(CROP.get(spacing, (120, 96, 96)), template[1], {}),
            image=f["normalised"], native_label=f["label"], transforms=folder / "transforms",
            out_folder=folder / "cache")),
    ]
    times = {}
    for name, step in steps:
        start = time.perf_counter()
        step()
        times[name] = time.perf_counter() - start
    return times


def phantom_of(kind, spacing):
    """One subject's settings: the schema's defaults, the kind and the spacing."""
    return PhantomSettings.from_config(
        schema_defaults("phantom", kind=kind, subjects=1, spacing_mm=spacing), 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--spacings", type=float, nargs="+", default=[2.0, 1.0])
    parser.add_argument("--out", default="bench/results/preprocessing.md")
    args = parser.parse_args()
    rows = []
    for spacing in args.spacings:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            template = (tmp / "template.nii.gz", tmp / "template_mask.nii.gz")
            stages.prepare_template_stage(spacing, template=None, template_mask=None,
                                          out_template=template[0], out_mask=template[1])
            cohorts = {
                "phantom source (raw head, deepbet)": (
                    "ms", lambda i, spacing=spacing: synthesize_ms_subject(
                        phantom_of(kind="ms", spacing=spacing),
                        f"MS{i:03d}", i), "binary", "deepbet"),
                "phantom target (BraTS-like, none)": (
                    "glioma", lambda i, spacing=spacing: synthesize_glioma_subject(
                        phantom_of(kind="glioma", spacing=spacing),
                        f"Brats18_B_{i}", i, "HGG"), "brats", "none"),
            }
            for cohort, (_, make, scheme, method) in cohorts.items():
                runs = []
                for i in range(args.subjects):
                    folder = tmp / f"{cohort[:7]}{i}"
                    start = time.perf_counter()
                    phantom = make(i)
                    synth = time.perf_counter() - start
                    raw = write_phantom(phantom, folder)
                    times = run_chain(raw, scheme, method, spacing, folder, template)
                    times["(phantom synthesis)"] = synth
                    runs.append(times)
                    print(cohort, spacing, i, {k: round(v, 1) for k, v in times.items()},
                          flush=True)
                rows.append((cohort, spacing, runs))
            if REALDATA.exists():
                raw = {m: REALDATA / f"{m}.nii.gz" for m in MODALITIES}
                times = run_chain(raw, "brats", "deepbet", spacing, tmp / "real", template)
                print("real", spacing, {k: round(v, 1) for k, v in times.items()}, flush=True)
                rows.append(("real case TCGA-FG-6692 (4 grids, skull)", spacing, [times]))
    write_report(rows, args)


def write_report(rows, args):
    lines = ["# Preprocessing benchmark", "",
             f"Machine: {platform.processor() or platform.machine()}, "
             f"{__import__('os').cpu_count()} cores, no GPU. Command: "
             f"`python bench/preprocessing.py --subjects {args.subjects} --spacings "
             f"{' '.join(str(s) for s in args.spacings)}`", "",
             "Median wall-clock seconds per stage (one subject at a time, files included).", ""]
    stages_seen = list(rows[0][2][0])
    header = "| cohort | spacing (mm) | subjects | " + " | ".join(stages_seen) + " | chain total |"
    lines += [header, "|" + "---|" * (len(stages_seen) + 4)]
    for cohort, spacing, runs in rows:
        medians = [statistics.median(r.get(s, float("nan")) for r in runs) for s in stages_seen]
        total = statistics.median(sum(v for k, v in r.items() if not k.startswith("("))
                                  for r in runs)
        lines.append(f"| {cohort} | {spacing:g} | {len(runs)} | "
                     + " | ".join(f"{m:.1f}" for m in medians) + f" | {total:.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
