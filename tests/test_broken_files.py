"""A truncated intermediate file (cached tensor, NIfTI, model) stops the job that reads it with
a message naming the file and the rule that wrote it, and the command the message gives
repairs it (on copies of the tiny study)."""

import json
import os
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
    if kind == "cached tensor":
        # a cache written before meta.json recorded its arrays' sizes: the reader names it
        # (a recorded one is rebuilt before it is read: the test below)
        meta_path = (study / broken).parent / "meta.json"
        stat = meta_path.stat()
        meta = json.loads(meta_path.read_text())
        meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "arrays"}))
        os.utime(meta_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
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


@pytest.mark.parametrize("change", ["truncated, same mtime", "same size, other bytes"])
def test_a_cached_array_whose_bytes_changed_is_rebuilt_by_a_plain_rerun(study, change):
    """The next run rebuilds it; what was trained on it reruns only if it comes out other."""
    from lesion_transfer.io.cache import stale_arrays

    subject = first_test_subject(study)
    folder = study / "results" / "cache" / "brats_phantom" / subject
    written = (folder / "meta.json").read_bytes()
    if change == "truncated, same mtime":
        truncate(folder / "image.npy")
    else:
        array = folder / "label.npy"
        data = bytearray(array.read_bytes())
        data[-1] ^= 1                          # one voxel's label, written after the cache
        array.write_bytes(bytes(data))
    reason = "image.npy holds" if "truncated" in change else "label.npy holds other bytes"
    plan = run_snakemake(study, "-n", configfile=CONFIG)
    output = plan.stdout + plan.stderr
    assert f"stale, the cache results/cache/brats_phantom/{subject} ({reason}" in output
    assert "a run that is not a dry run rebuilds it" in output
    assert stale_arrays(folder) != []                  # a dry run changes nothing
    run_snakemake(study, f"results/cache/brats_phantom/{subject}/meta.json", configfile=CONFIG)
    assert stale_arrays(folder) == []
    # rebuilt byte for byte (the preprocessing is seeded): Snakemake compares the new meta.json
    # with the one every model was trained on, finds it the same, and keeps them all
    assert (folder / "meta.json").read_bytes() == written
    plan = run_snakemake(study, "-n", configfile=CONFIG)
    assert "Nothing to be done" in plan.stdout + plan.stderr
