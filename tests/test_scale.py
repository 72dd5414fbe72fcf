"""A paper-sized study on a cluster: how many submissions profiles/slurm would make.

The source is a manifest of 1,000 MS subjects and the target the size of BraTS 2018 (210 HGG,
75 LGG, 66 unlabelled), all pointing at a few tiny files: ingestion and the splits run for
real, the rest is a dry run of the README's SLURM command with the paper's settings.
"""

import re

import numpy as np
import pytest
import yaml
from conftest import MODALITIES, REPO, SHAPE, brats_label, run_snakemake, write_volume

pytestmark = pytest.mark.workflow

SOURCE_SUBJECTS = 1000
BRATS_2018 = {"HGG": 210, "LGG": 75, "unlabelled": 66}


def write_cohort(root):
    files = root / "files"
    for modality in MODALITIES:
        write_volume(files / f"{modality}.nii.gz")
    lesion = np.zeros(SHAPE, dtype=np.uint8)
    lesion[3:5, 3:5, 3:5] = 1
    write_volume(files / "lesion.nii.gz", lesion, dtype=np.uint8)
    write_volume(files / "seg.nii.gz", brats_label(), dtype=np.uint8)
    rows = ["subject,t1,t1ce,t2,flair,label"]
    rows += [f"MS{i:04d}," + ",".join(f"files/{m}.nii.gz" for m in MODALITIES)
             + ",files/lesion.nii.gz" for i in range(SOURCE_SUBJECTS)]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    for folder, count in BRATS_2018.items():
        for i in range(count):
            subject = f"Brats18_{folder}_{i}_1"
            parent = root / ("validation" if folder == "unlabelled" else f"training/{folder}")
            for name in (*MODALITIES, "seg") if folder != "unlabelled" else MODALITIES:
                link = parent / subject / f"{subject}_{name}.nii.gz"
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(files / ("seg.nii.gz" if name == "seg" else f"{name}.nii.gz"))
    config = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    config["datasets"] = {
        "ms": {**config["datasets"]["ms"], "location": str(root / "manifest.csv")},
        "brats2018": {**config["datasets"]["brats2018"], "location": str(root / "training"),
                      "unlabelled_location": str(root / "validation")}}
    path = root / "paper.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def planned_submissions(output):
    """(cluster jobs, jobs) of a dry run's printout: a group job is one submission."""
    groups = len(re.findall(r"^\S.*Group job ", output, re.MULTILINE))
    grouped = len(re.findall(r"^    (?:rule|checkpoint) \w+:", output, re.MULTILINE))
    alone = len(re.findall(r"^(?:rule|checkpoint) \w+:", output, re.MULTILINE))
    return groups + alone, grouped + alone


def test_a_paper_sized_study_is_hundreds_of_cluster_jobs_not_thousands(tmp_path, capsys):
    config = write_cohort(tmp_path / "data")
    study = tmp_path / "study"
    results = yaml.safe_load(config.read_text())["results"]
    run_snakemake(study, f"{results}/splits/ms.json", f"{results}/splits/brats2018.json",
                  configfile=config)
    profile = ("--profile", str(REPO / "profiles" / "slurm"))
    output = run_snakemake(study, "--dry-run", *profile, configfile=config)
    grouped_submissions, jobs = planned_submissions(output.stdout + output.stderr)
    ungrouped = run_snakemake(study, "--dry-run", *profile, "--groups", "none=none",
                              configfile=config)
    alone, _ = planned_submissions(ungrouped.stdout + ungrouped.stderr)
    with capsys.disabled():
        print(f"\npaper-sized study ({SOURCE_SUBJECTS} source subjects, BraTS 2018 size): "
              f"{jobs} jobs, {grouped_submissions} cluster submissions with the profile's "
              f"grouping, {alone} without")
    subjects = SOURCE_SUBJECTS + sum(BRATS_2018.values())
    assert alone == jobs > 8 * subjects  # one submission per subject and step without it
    assert grouped_submissions < jobs / 5 and grouped_submissions < 2 * subjects / 8 + 700
