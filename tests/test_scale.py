"""A paper-sized study on a cluster: how many submissions profiles/slurm would make.

The source is a manifest of 1,000 MS subjects and the target the size of BraTS 2018 (210 HGG,
75 LGG, 66 unlabelled), all pointing at a few tiny files: ingestion and the splits run for
real, the rest is a dry run through profiles/slurm with the paper's settings.
"""

import math
import re

import numpy as np
import pytest
import yaml
from conftest import (
    MODALITIES,
    REPO,
    SHAPE,
    brats_label,
    local_rules,
    run_snakemake,
    write_volume,
)

pytestmark = pytest.mark.workflow

SOURCE_SUBJECTS = 1000
BRATS_2018 = {"HGG": 210, "LGG": 75, "unlabelled": 66}


def write_cohort(root):
    """Every subject's scans are its own (ingestion refuses one scan in two subjects); the
    labels are shared links, which it allows."""
    files = root / "files"
    lesion = np.zeros(SHAPE, dtype=np.uint8)
    lesion[3:5, 3:5, 3:5] = 1
    write_volume(files / "lesion.nii.gz", lesion, dtype=np.uint8)
    write_volume(files / "seg.nii.gz", brats_label(), dtype=np.uint8)
    rows = ["subject,t1,t1ce,t2,flair,label"]
    for i in range(SOURCE_SUBJECTS):
        scans = [write_volume(files / f"MS{i:04d}" / f"{m}.nii.gz") for m in MODALITIES]
        rows.append(f"MS{i:04d}," + ",".join(str(s.relative_to(root)) for s in scans)
                    + ",files/lesion.nii.gz")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    for folder, count in BRATS_2018.items():
        for i in range(count):
            subject = f"Brats18_{folder}_{i}_1"
            parent = root / ("validation" if folder == "unlabelled" else f"training/{folder}")
            for modality in MODALITIES:
                write_volume(parent / subject / f"{subject}_{modality}.nii.gz")
            if folder != "unlabelled":
                (parent / subject / f"{subject}_seg.nii.gz").symlink_to(files / "seg.nii.gz")
    config = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    config["datasets"] = {
        "ms": {**config["datasets"]["ms"], "location": str(root / "manifest.csv")},
        "brats2018": {**config["datasets"]["brats2018"], "location": str(root / "training"),
                      "unlabelled_location": str(root / "validation")}}
    path = root / "paper.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def job_counts(output):
    """{rule: jobs} of a dry run's job stats."""
    table = output.split("Job stats:")[1].split("total")[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def sbatch_calls(counts, profile):
    """sbatch calls the profile makes for these jobs: one per job, but one per
    `slurm-array-limit` jobs of an array rule (at best: a rule's jobs that become ready at
    different times are submitted in more, smaller arrays)."""
    arrays = {r.strip() for r in profile["slurm-array-jobs"].split(",")}
    limit = profile["slurm-array-limit"]
    return sum(math.ceil(n / limit) if rule in arrays else n
               for rule, n in counts.items() if rule not in {"all", *local_rules()})


def test_a_paper_sized_study_is_hundreds_of_sbatch_calls_not_thousands(tmp_path, capsys):
    """Each subject's eight preprocessing steps go as job arrays; the README states the totals
    printed here."""
    config = write_cohort(tmp_path / "data")
    study = tmp_path / "study"
    results = yaml.safe_load(config.read_text())["results"]
    run_snakemake(study, f"{results}/splits/ms.json", f"{results}/splits/brats2018.json",
                  configfile=config)
    profile_dir = REPO / "profiles" / "slurm"
    output = run_snakemake(study, "--dry-run", "--profile", str(profile_dir), configfile=config)
    counts = job_counts(output.stdout + output.stderr)
    profile = yaml.safe_load((profile_dir / "config.yaml").read_text())
    calls = sbatch_calls(counts, profile)
    jobs = sum(n for rule, n in counts.items() if rule not in {"all", *local_rules()})
    subjects = SOURCE_SUBJECTS + sum(BRATS_2018.values())
    with capsys.disabled():
        print(f"\npaper-sized study ({SOURCE_SUBJECTS} source subjects, BraTS 2018 size, "
              f"{subjects} subjects): {jobs} cluster jobs, {calls} sbatch calls with the "
              f"profile's job arrays")
    assert counts["coregister_modalities"] == counts["cache_tensors"] == subjects
    assert jobs > 8 * subjects and calls < jobs / 10
