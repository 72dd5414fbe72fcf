"""A truncated intermediate file (cached tensor, NIfTI, model) stops the job that reads it with
a message naming the file and the rule that wrote it, and the command the message gives
repairs it (on copies of the tiny study)."""

import json
import re

import pytest
from conftest import REPO, copy_study, run_snakemake

pytestmark = pytest.mark.workflow
CONFIG = REPO / "configs" / "ci.yaml"


@pytest.fixture
def study(ci_study, tmp_path):
    return copy_study(ci_study, tmp_path / "study")


def first_test_subject(study):
    splits = json.loads((study / "results" / "splits" / "brats_phantom.json").read_text())
    return splits["folds"][0]["test"][0]


def truncate(path):
    """Broken behind Snakemake's back (a disk fault, an interrupted copy that kept the
    timestamps): same mtime, so nothing upstream reruns and repairs it before it is read."""
    import os

    stat = path.stat()
    path.write_bytes(path.read_bytes()[: stat.st_size // 3])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("kind", ["cached tensor", "NIfTI", "model"])
def test_a_truncated_file_is_named_with_its_rule_and_the_named_command_repairs_it(study, kind):
    subject = first_test_subject(study)
    predictions = "results/predictions/scratch/n1/fold0/unlabelled_probabilities.npz"
    evaluation_log = "results/logs/evaluate_model/scratch/n1/fold0.log"
    broken, writer, reader, log = {
        "cached tensor": (f"results/cache/brats_phantom/{subject}/image.npy", "cache_tensors",
                          predictions, evaluation_log),
        # a NIfTI that stays after preprocessing (the intermediates are temporary)
        "NIfTI": (f"results/preprocess/brats_phantom/{subject}/brain_mask.nii.gz",
                  "extract_brain", "results/metrics/native/scratch/n1/fold0.tsv",
                  evaluation_log),
        "model": ("results/models/scratch/n1/fold0/model.pt", "finetune", predictions,
                  evaluation_log),
    }[kind]
    truncate(study / broken)
    failed = run_snakemake(study, "--force", reader, configfile=CONFIG, check=False)
    assert failed.returncode != 0
    assert "Traceback" not in failed.stdout + failed.stderr, failed.stderr[-3000:]
    message = (study / log).read_text()
    assert f"{broken}: expected" in message and "truncated or corrupted" in message, message
    assert f"It was written by rule {writer}" in message, message
    command = re.search(r"`snakemake (--cores 1 --force \S+)`", message).group(1).split()
    assert command[-1] == broken
    run_snakemake(study, *command, configfile=CONFIG)  # what the message says to run
    run_snakemake(study, "--force", reader, configfile=CONFIG)  # the reader now succeeds
    assert "failed" not in (study / log).read_text()
