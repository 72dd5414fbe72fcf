"""The workflow run with the real Snakemake: the tiny config, bad configs, bad data, lint."""

import re
import shutil

import numpy as np
import pytest
import yaml
from conftest import (
    REPO,
    SHAPE,
    copy_study,
    run_snakemake,
    write_brats2018_subject,
    write_volume,
)

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def ci_run(ci_study):
    return ci_study


def write_config(path, config):
    path.write_text(yaml.safe_dump(config))
    return path


def ci_config():
    return yaml.safe_load((REPO / "configs" / "ci.yaml").read_text())


def test_tiny_config_ingests_both_phantom_datasets(ci_run):
    import csv

    with (ci_run / "results" / "subjects" / "brats_phantom.tsv").open() as handle:
        rows = list(csv.DictReader(handle, dialect="excel-tab"))
    assert len(rows) == 9 and sum(r["labelled"] == "true" for r in rows) == 8
    assert {r["group"] for r in rows if r["labelled"] == "true"} == {"HGG", "LGG"}
    with (ci_run / "results" / "subjects" / "ms_phantom.tsv").open() as handle:
        rows = list(csv.DictReader(handle, dialect="excel-tab"))
    assert [r["subject"] for r in rows] == ["MS001", "MS002", "MS003", "MS004"]
    assert all(r["label_scheme"] == "binary" for r in rows)
    for dataset in ("ms_phantom", "brats_phantom"):
        assert (ci_run / "results" / "qc" / dataset / "raw_montage.png").stat().st_size > 10_000


PER_DATASET_RULES = ("synthesize_cohort", "ingest_dataset", "plot_dataset_montage",
                     "make_splits", "summarise_qc")
PER_SUBJECT_RULES = ("coregister_modalities", "extract_brain", "correct_bias",
                     "register_to_template", "normalise_intensity", "cache_tensors",
                     "plot_preprocessing_qc")


def test_every_job_wrote_its_log_and_benchmark_in_the_results_folder(ci_run):
    """Under results/, so two studies in one checkout keep their own."""
    logs, benchmarks = ci_run / "results" / "logs", ci_run / "results" / "benchmarks"
    for rule in PER_DATASET_RULES:
        for dataset in ("ms_phantom", "brats_phantom"):
            assert (logs / rule / f"{dataset}.log").exists()
            assert (benchmarks / rule / f"{dataset}.tsv").exists()
    for rule in PER_SUBJECT_RULES:
        assert len(list((logs / rule / "brats_phantom").glob("*.log"))) == 9
        assert len(list((benchmarks / rule / "ms_phantom").glob("*.tsv"))) == 4
    for rule in ("fit_nyul", "prepare_template"):
        assert list((benchmarks / rule).glob("*.tsv"))
    assert not (ci_run / "logs").exists() and not (ci_run / "benchmarks").exists()


def test_every_subject_is_cached_with_its_label(ci_run):
    import json

    import numpy as np

    splits = json.loads((ci_run / "results" / "splits" / "brats_phantom.json").read_text())
    assert len(splits["folds"]) == 2 and len(splits["unlabelled"]) == 1
    for dataset, count in (("ms_phantom", 4), ("brats_phantom", 9)):
        folders = sorted((ci_run / "results" / "cache" / dataset).iterdir())
        assert len(folders) == count
        for folder in folders:
            image, label = np.load(folder / "image.npy"), np.load(folder / "label.npy")
            meta = json.loads((folder / "meta.json").read_text())
            assert image.shape == (4, 60, 48, 48) and image.dtype == np.float16
            allowed = {0, 1} if dataset == "ms_phantom" else {0, 1, 2, 4}
            if meta["labelled"]:
                assert set(np.unique(label)) <= allowed and label.any()
            else:
                assert folder.name in splits["unlabelled"] and np.all(label == 255)
    qc = (ci_run / "results" / "qc" / "brats_phantom" / "preprocessing_qc.tsv").read_text()
    assert len(qc.splitlines()) == 10 and "mask_dice_with_template" in qc


def test_every_strategy_size_and_fold_is_trained(ci_run):
    import json

    models = ci_run / "results" / "models"
    source = json.loads((models / "source" / "model_card.json").read_text())
    assert source["channels"] == ["t1", "t1ce", "t2", "flair"] and source["classes"] == [0, 1]
    assert {"roc_auc", "pr_auc", "dice", "threshold"} <= set(source["metrics"])
    # what `auto` resolved to on this machine
    from lesion_transfer.devices import resolve_precision
    assert source["trained_with"]["device"] == "cpu"
    assert source["trained_with"]["precision"] == resolve_precision("auto", "cpu")
    assert list((models / "source" / "tensorboard").glob("events.out.tfevents.*"))
    from lesion_transfer.train.trainer import run_seed

    for strategy in ("scratch", "ft_last_three", "ft_all"):
        for size in (1, 2):
            for fold in (0, 1):
                for repeat, suffix in enumerate(("", "_repeat1")):  # configs/ci.yaml: 2
                    folder = models / strategy / f"n{size}" / f"fold{fold}{suffix}"
                    card = json.loads((folder / "model_card.json").read_text())
                    assert card["classes"] == [0, 1, 2, 4]
                    assert card["preprocessing_hash"] == source["preprocessing_hash"]
                    assert len((folder / "history.tsv").read_text().splitlines()) == 3
                    # repeat 0 keeps the seed of a one-run study (7 + fold); every arm and
                    # size of a run shares its seed
                    assert card["config"]["run"] == {"fold": fold, "repeat": repeat,
                                                     "seed": run_seed(7, fold, repeat)}
                    assert repeat or card["config"]["run"]["seed"] == 7 + fold
    log = (ci_run / "results" / "logs" / "finetune" / "ft_all" / "n2" / "fold1.log").read_text()
    assert "head replaced for 4 classes" in log and "epoch 2/2 loss" in log
    assert "epoch 1: 100%" in log  # the progress bar
    # the Snakefile's OpenMP policy reached the job's process before torch loaded
    assert re.search(r"CPU threads: \d+ \(OMP_WAIT_POLICY=PASSIVE\)", log), log[:2000]


STRATEGIES = ("scratch", "ft_last_three", "ft_all", "positive_control",
              "negative_control")


def subjects_table(results, dataset):
    import csv

    with (results / "subjects" / f"{dataset}.tsv").open() as handle:
        return {r["subject"]: r for r in csv.DictReader(handle, dialect="excel-tab")}


def assert_on_native_grid(path, raw_path):
    import nibabel as nib

    written, raw = nib.load(path), nib.load(raw_path)
    assert written.shape == raw.shape and np.allclose(written.affine, raw.affine), path
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2, 4}, path


def test_every_model_is_scored_at_an_operating_point_chosen_without_its_test_subjects(ci_run):
    import json

    import pandas as pd

    results = ci_run / "results"
    splits = json.loads((results / "splits" / "brats_phantom.json").read_text())
    for strategy in STRATEGIES:
        for size in (1, 2):
            for fold, split in enumerate(splits["folds"]):
                folder = results / "predictions" / strategy / f"n{size}" / f"fold{fold}"
                point = json.loads((folder / "operating_point.json").read_text())
                assert point["subjects"] == split["local_validation"]
                assert not set(point["subjects"]) & set(split["test"])
                for space in ("native", "template"):
                    scores = pd.read_csv(results / "metrics" / space / strategy / f"n{size}" /
                                         f"fold{fold}.tsv", sep="\t")
                    assert sorted(set(scores["subject"])) == split["test"]
                    assert len(scores) == 3 * len(split["test"])
                    assert scores["dice"].between(0, 1).all() and (scores["hd95"] >= 0).all()
    source = pd.read_csv(results / "metrics" / "source.tsv", sep="\t")
    assert source["subject"].iloc[-1] == "all" and source["roc_auc"].between(0, 1).all()


def test_only_what_later_stages_read_is_kept(ci_run):
    """Preprocessing intermediates are temporary (preprocess.keep_intermediates: false) and a
    finished job's checkpoint is removed; what scoring on native grids and the way back read
    stays."""
    results = ci_run / "results"
    for folder in (results / "preprocess" / "brats_phantom").iterdir():
        kept = {p.name for p in folder.iterdir()}
        assert {"label.nii.gz", "brain_mask.nii.gz", "transforms", "qc.json", "qc.png"} <= kept
        assert not kept & {"coregistered.nii.gz", "bias_corrected.nii.gz", "bias_field.nii.gz",
                           "standardised.nii.gz", "registered.nii.gz",
                           "brain_mask_template.nii.gz", "normalised.nii.gz"}, folder
    assert not list((results / "checkpoints").rglob("last.pt"))


# What each job may not load: a fresh import costs seconds (bench/results/job_startup.md), so
# imaging stages stay without torch and training stages without ANTs and deepbet.
TORCH_STACK = {"torch", "monai"}
IMAGING_RULES = ("coregister_modalities", "correct_bias", "fit_nyul", "apply_nyul",
                 "prepare_template", "register_to_template", "normalise_intensity",
                 "cache_tensors", "plot_preprocessing_qc", "summarise_qc", "synthesize_cohort")
NOT_LOADED = {**{rule: TORCH_STACK | {"deepbet"} for rule in IMAGING_RULES},
              # MONAI is the training jobs' augmentation, which configs/ci.yaml turns off
              **{rule: {"ants", "deepbet", "monai"} for rule in (
                  "pretrain_source", "pretrain_control", "finetune", "score_source")},
              # SimpleITK, not ANTs, takes label maps back to native grids
              "evaluate_model": {"ants", "monai", "deepbet"},
              "make_submission": TORCH_STACK | {"ants", "deepbet"},
              "check_datasets_disjoint": TORCH_STACK | {"ants", "deepbet"},
              "aggregate_results": TORCH_STACK | {"ants", "deepbet"}}


def libraries_loaded(log):
    lines = [line for line in log.read_text().splitlines() if "libraries loaded: " in line]
    assert lines, f"{log}: no 'libraries loaded' line"
    return set(lines[-1].split("libraries loaded: ")[1].split(", ")) - {"none"}


def test_each_job_loads_only_the_libraries_its_stage_needs(ci_run):
    for rule, forbidden in NOT_LOADED.items():
        logs = list((ci_run / "results" / "logs" / rule).rglob("*.log"))
        assert logs, rule
        for log in logs:
            assert not libraries_loaded(log) & forbidden, (log, libraries_loaded(log))
    # the phantoms' modalities share one grid: nothing to register, so ANTs stays unloaded
    for log in (ci_run / "results" / "logs" / "coregister_modalities").rglob("*.log"):
        assert "ants" not in libraries_loaded(log), log
    # brain extraction loads deepbet (and torch) only for the datasets that use it
    for dataset, uses_deepbet in (("ms_phantom", True), ("brats_phantom", False)):
        for log in (ci_run / "results" / "logs" / "extract_brain" / dataset).glob("*.log"):
            assert ("deepbet" in libraries_loaded(log)) == uses_deepbet, log


def test_parsing_the_workflow_loads_no_torch(tmp_path):
    """Every cluster job parses the workflow twice (the job step, then the rule): torch
    there cost seconds a job (3.7 s of a 2-core node), for the strategies' names."""
    import subprocess
    import sys

    probe = ("import sys\nfrom snakemake.cli import main\ntry:\n    main(sys.argv[1:])\n"
             "except SystemExit:\n    pass\nprint('loaded:', sorted(m for m in "
             f"{sorted(TORCH_STACK)!r} if m in sys.modules))")
    result = subprocess.run(
        [sys.executable, "-c", probe, "--snakefile", str(REPO / "Snakefile"), "--directory",
         str(tmp_path), "--configfile", str(REPO / "configs" / "ci.yaml"), "--dry-run",
         "--cores", "1"], capture_output=True, text=True, timeout=300)
    assert "Job stats" in result.stdout + result.stderr, result.stderr[-3000:]
    assert "loaded: []" in result.stdout, result.stdout[-3000:]


def test_native_predictions_and_submissions_lie_on_the_original_grids(ci_run):
    import json

    results = ci_run / "results"
    rows = subjects_table(results, "brats_phantom")
    splits = json.loads((results / "splits" / "brats_phantom.json").read_text())
    for fold, split in enumerate(splits["folds"]):
        native = results / "predictions" / "ft_all" / "n2" / f"fold{fold}" / "native"
        written = sorted(p.name for p in native.glob("*.nii.gz"))
        assert written == [f"{s}.nii.gz" for s in split["test"]]
        for subject in split["test"]:
            # the table names the study's own phantoms relative to its working directory
            assert_on_native_grid(native / f"{subject}.nii.gz", ci_run / rows[subject]["t1"])
    for strategy in STRATEGIES:
        for size in (1, 2):
            folder = results / "submissions" / strategy / f"n{size}"
            assert sorted(p.name for p in folder.glob("*.nii.gz")) == [
                f"{s}.nii.gz" for s in splits["unlabelled"]]
            for subject in splits["unlabelled"]:
                assert_on_native_grid(folder / f"{subject}.nii.gz",
                                      ci_run / rows[subject]["t1"])


def test_the_study_ends_with_tables_figures_and_the_html_report(ci_run):
    import pandas as pd

    results = ci_run / "results"
    summary = pd.read_csv(results / "tables" / "summary.tsv", sep="\t")
    assert list(summary["strategy"].unique()) == list(STRATEGIES)
    regions = summary[summary["region"] != "ET_present"]
    # 8 labelled subjects, each scored once per repeat (2)
    assert len(regions) == len(STRATEGIES) * 2 * 3 and (regions["n"] == 16).all()
    assert list(summary["region"][:3]) == ["WT", "TC", "ET"]
    present = summary[summary["region"] == "ET_present"]
    assert len(present) == len(STRATEGIES) * 2 and (present["n"] < 16).all()
    assert (summary["dice_ci_low"] <= summary["dice_mean"] + 1e-9).all()
    comparisons = pd.read_csv(results / "tables" / "comparisons.tsv", sep="\t")
    assert len(comparisons) == (len(STRATEGIES) - 1) * 2 * 3  # WT, TC, ET
    assert "scratch" not in set(comparisons["strategy"])
    assert (comparisons["runs"] == 4).all()  # 2 folds x 2 repeats
    assert (comparisons["p_holm"] >= comparisons["p_value"] - 1e-12).all()
    assert (comparisons["ci_low"] <= comparisons["estimate"]).all()
    assert set(comparisons["verdict"]) <= {"holds", "does not hold", "inconclusive"}
    by_grade = pd.read_csv(results / "tables" / "summary_by_grade.tsv", sep="\t")
    assert set(by_grade["grade"]) == {"HGG", "LGG"}
    overview = (results / "tables" / "dice.md").read_text()
    assert "| strategy | size | WT | TC | ET | ET_present |" in overview
    assert "on its own grid" in overview and "template space" in overview
    template = pd.read_csv(results / "tables" / "summary_template_space.tsv", sep="\t")
    assert template[["strategy", "size", "region"]].equals(summary[["strategy", "size", "region"]])
    claims = (results / "tables" / "claims.md").read_text()
    assert "## Controls" in claims and "positive control minus scratch at 1 case:" in claims
    assert "calibration, scratch minus scratch with other seeds" in claims
    calibration = pd.read_csv(results / "tables" / "calibration.tsv", sep="\t")
    assert list(calibration["size"]) == [1, 2] and (calibration["runs"] == 2).all()
    assert claims.count("| FT_All beats the baseline") == 1
    assert "tuning only the last layers" in claims
    for figure in ("learning_curve.png", "qualitative.png"):
        assert (results / "figures" / figure).stat().st_size > 20_000
    report = (results / "report.html").read_text()
    assert "learning_curve.png" in report and "comparisons.tsv" in report
    assert "claims_tests.tsv" in report


def test_nyul_scale_ignores_a_changed_validation_subject(ci_run, tmp_path):
    """Rewriting a source validation subject's scan reruns that subject, never the Nyul fit.
    Run on a copy up to the subject's cache (what the cache feeds would all retrain); the
    copy's subjects table names its own phantoms (relative paths), so the scan changed is the
    copy's."""
    import json

    import nibabel as nib
    import numpy as np

    study = copy_study(ci_run, tmp_path / "study")
    splits = json.loads((study / "results" / "splits" / "ms_phantom.json").read_text())
    held_out = splits["validation"][0]
    scales = sorted((study / "results" / "nyul" / "ms_phantom").glob("*.json"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in scales}
    cached = study / "results" / "cache" / "ms_phantom" / held_out / "image.npy"
    cached_before = cached.read_bytes()
    raw = (study / "results" / "phantoms" / "ms_phantom" / "raw" / held_out /
           f"{held_out}_t1.nii.gz")
    shared = ci_run / raw.relative_to(study)
    shared_before = shared.read_bytes(), shared.stat().st_mtime_ns
    image = nib.load(raw)
    data = np.asarray(image.dataobj).astype(np.int16)
    nib.save(nib.Nifti1Image((data * 2).astype(np.int16), image.affine), raw)
    run_snakemake(study, cached.with_name("meta.json").relative_to(study),
                  configfile=REPO / "configs" / "ci.yaml")
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in scales} == before
    assert cached.read_bytes() != cached_before  # the changed subject itself was redone
    assert json.loads(scales[0].read_text())["fitted_on"] == splits["train"]
    assert held_out not in splits["train"]
    assert (shared.read_bytes(), shared.stat().st_mtime_ns) == shared_before


def test_training_sizes_the_target_cannot_supply_stop_the_dag(tmp_path):
    config = ci_config()
    config["splits"]["sizes"] = [2, 30]
    result = run_snakemake(tmp_path, configfile=write_config(tmp_path / "c.yaml", config),
                           check=False)
    assert result.returncode != 0
    assert "brats_phantom" in result.stderr and "[2, 30]" in result.stderr
    assert "\nrefused: " in result.stderr and "Traceback" not in result.stderr
    assert 'File "' not in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "results").exists()


def test_a_cluster_job_does_not_look_at_the_data_again(tmp_path):
    """The checks of the data and of a handed-in model run where the study is planned (the
    test above); a cluster job parses the workflow again (`--mode remote`, as an executor
    plugin starts it) and does not repeat them."""
    config = ci_config()
    config["splits"]["sizes"] = [2, 30]
    path = write_config(tmp_path / "c.yaml", config)
    planned = run_snakemake(tmp_path / "a", "--dry-run", configfile=path, check=False)
    assert planned.returncode == 1 and "refused: dataset brats_phantom" in planned.stderr
    in_a_job = run_snakemake(tmp_path / "b", "--dry-run", "--mode", "remote", configfile=path,
                             check=False)
    assert "refused: " not in in_a_job.stderr, in_a_job.stderr[-3000:]


def test_a_second_run_has_nothing_to_do(ci_run):
    result = run_snakemake(ci_run, "-n", configfile=REPO / "configs" / "ci.yaml")
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["datasets"]["ms_phantom"]["phantom"].update(subjectz=3), "subjectz"),
    (lambda c: c.update(colour="blue"), "colour"),
    (lambda c: c.update(seed="abc"), "seed"),
    (lambda c: c["datasets"]["brats_phantom"].update(format="nifti"), "format"),
])
def test_bad_config_stops_before_any_job(tmp_path, edit, key):
    config = ci_config()
    edit(config)
    result = run_snakemake(tmp_path, configfile=write_config(tmp_path / "c.yaml", config),
                           check=False)
    assert result.returncode != 0
    assert key in result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["preprocess"].update(crop_shape=[61, 48, 48]),
     "'preprocess.crop_shape' [61, 48, 48] and 'train.unet.depth' 3: expected every side to "
     "divide by 2^2 = 4"),
    (lambda c: c["train"]["finetune"].update(patch_size=[128, 128, 128]),
     "'train.finetune.patch_size' [128, 128, 128] and 'preprocess.crop_shape' [60, 48, 48]: "
     "expected a patch no larger than the cached crop"),
    (lambda c: c["train"]["pretrain"].update(patch_size=[30, 32, 32]),
     "'train.pretrain.patch_size' [30, 32, 32] and 'train.unet.depth' 3"),
    (lambda c: c["train"].update(strategies=["scratch", "ft_everything"]),
     "config key 'train.strategies': expected names among scratch, "),
    (lambda c: c.update(results=""),
     "config key 'results': expected a folder for every output, found an empty path"),
    (lambda c: c.update(results="/"), "config key 'results': expected a folder for every "
                                      "output, found '/', the filesystem's root"),
    (lambda c: c.update(report={"baseline": "scrach"}),
     "config keys 'report.baseline' and 'train.strategies': expected the baseline to be one "
     "of the study's arms"),
    (lambda c: c["train"]["finetune"].update(learning_rate=float("inf")),
     "config key 'train.finetune.learning_rate': expected a finite number, found inf"),
    (lambda c: c["preprocess"].update(spacing_mm=float("nan")),
     "config key 'preprocess.spacing_mm': expected a finite number, found nan"),
    (lambda c: c["train"]["finetune"].update(augmentation={"gamma_range": [1.5, 0.7]}),
     "config key 'train.finetune.augmentation.gamma_range': expected a range [low, high] "
     "with low <= high, found [1.5, 0.7]"),
    (lambda c: c["train"].update(repeats=0),
     "config key 'train.repeats': 0 is less than the minimum of 1"),
])
def test_settings_that_cannot_work_fail_the_dry_run(tmp_path, edit, message):
    """Refused before any job, the message once and nothing else: no traceback."""
    config = ci_config()
    edit(config)
    result = run_snakemake(tmp_path, "--dry-run",
                           configfile=write_config(tmp_path / "c.yaml", config), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output[-3000:]
    assert output.count(message) == 1 and "Traceback" not in output, output[-3000:]
    assert 'File "' not in output and "\nrefused: " in result.stderr
    assert not (tmp_path / "results").exists()


def test_use_must_name_one_source_and_one_target(tmp_path):
    config = ci_config()
    config["use"] = ["ms_phantom", "nowhere"]
    result = run_snakemake(tmp_path, configfile=write_config(tmp_path / "c.yaml", config),
                           check=False)
    assert result.returncode != 0 and "config key 'use'" in result.stderr
    assert "nowhere" in result.stderr


def test_bad_data_fails_ingestion_with_every_problem_and_no_table(tmp_path):
    """Real data (no phantom): a NaN voxel and a missing modality, reported together."""
    data = tmp_path / "data"
    for subject in ("ms1", "ms2"):
        for modality in ("t1", "t1ce", "t2", "flair", "label"):
            write_volume(data / subject / f"{modality}.nii.gz",
                         np.eye(SHAPE[0], SHAPE[1])[:, :, None].repeat(SHAPE[2], 2)
                         if modality == "label" else None)
    nan_image = np.ones(SHAPE, dtype=np.float32)
    nan_image[0, 0, 0] = np.nan
    write_volume(data / "ms2" / "t2.nii.gz", nan_image, dtype=np.float32)
    manifest = data / "manifest.csv"
    manifest.write_text("subject,t1,t1ce,t2,flair,label\n" + "".join(
        f"{s},{s}/t1.nii.gz,{'' if s == 'ms1' else s + '/t1ce.nii.gz'},{s}/t2.nii.gz,"
        f"{s}/flair.nii.gz,{s}/label.nii.gz\n" for s in ("ms1", "ms2")))
    for subject in ("Brats18_W_1", "Brats18_X_1", "Brats18_Y_1", "Brats18_Z_1"):
        write_brats2018_subject(data / "brats", subject, "HGG")
    config = {"use": ["ms", "brats"], "splits": {"folds": 2, "local_validation": 1, "sizes": [1]},
              "datasets": {
        "ms": {"role": "source", "format": "manifest", "location": str(manifest)},
        "brats": {"role": "target", "format": "brats", "location": str(data / "brats")}}}
    result = run_snakemake(tmp_path, "--keep-going",
                           configfile=write_config(tmp_path / "c.yaml", config), check=False)
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "ingest_dataset" / "ms.log").read_text()
    assert "2 problem(s)" in log
    assert "subject ms1" in log and "'t1ce'" in log
    assert "subject ms2" in log and str(data / "ms2" / "t2.nii.gz") in log
    assert "subject ms2" in result.stderr  # the console shows it too
    assert not (tmp_path / "results" / "subjects" / "ms.tsv").exists()
    assert (tmp_path / "results" / "subjects" / "brats.tsv").exists()



def handed_source_model(ci_run, folder, edit_card=None):
    """The tiny study's source model as another lab would hand it over: model.pt and card."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    source = ci_run / "results" / "models" / "source"
    shutil.copy(source / "model.pt", folder / "model.pt")
    card = json.loads((source / "model_card.json").read_text())
    if edit_card:
        edit_card(card)
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder / "model.pt"


def test_without_a_control_dataset_the_positive_control_pretrains_on_the_targets_reserve(
        ci_run, tmp_path):
    """Real data has no phantom control cohort: `splits.control_reserve` holds target subjects
    out of every fold, and the positive control pretrains on them only."""
    import json

    from conftest import copy_study

    study = copy_study(ci_run, tmp_path / "study")
    config = ci_config()
    config["use"] = ["ms_phantom", "brats_phantom"]
    config["splits"].update(control_reserve=2, sizes=[1])
    config["train"].update(strategies=["scratch", "positive_control"], repeats=1)
    run_snakemake(study, "results/tables/claims.md",
                  configfile=write_config(tmp_path / "c.yaml", config))
    results = study / "results"
    splits = json.loads((results / "splits" / "brats_phantom.json").read_text())
    reserve = splits["control_reserve"]
    held = {*reserve["train"], *reserve["validation"]}
    assert len(reserve["train"]) == len(reserve["validation"]) == 1
    for fold in splits["folds"]:
        assert not held & {*fold["test"], *fold["local_validation"], *fold["training_order"]}
    card = json.loads((results / "models" / "controls" / "positive" / "model_card.json")
                      .read_text())
    assert card["dataset"] == "brats_phantom" and card["classes"] == [0, 1, 2, 4]
    log = (study / "results" / "logs" / "pretrain_control" / "positive.log").read_text()
    assert "1 training subjects of brats_phantom, 1 validating" in log
    claims = (results / "tables" / "claims.md").read_text()
    assert "positive control minus scratch at 1 case" in claims


def test_a_handed_source_model_replaces_pretraining(ci_run, tmp_path):
    config = ci_config()
    config["train"]["source_model"] = str(handed_source_model(ci_run, tmp_path / "handed"))
    result = run_snakemake(tmp_path / "study", "--dry-run",
                           configfile=write_config(tmp_path / "c.yaml", config))
    output = result.stdout + result.stderr
    assert "pretrain_source" not in output and "synthesize_cohort" in output
    # the source dataset gets no QC table: nothing registers or caches it whole any more
    assert re.search(r"^summarise_qc\s+2$", output, re.MULTILINE), output[-3000:]


@pytest.mark.parametrize("problem, message", [
    ("missing", "config key 'train.source_model' "),
    ("spacing", "spacing_mm: source 2.0, target 4.0"),
    ("unet", "config key 'train.unet' "),
])
def test_a_handed_source_model_that_cannot_fit_fails_the_dry_run(ci_run, tmp_path, problem,
                                                                  message):
    def edit(card):
        if problem == "spacing":
            card["preprocessing"]["spacing_mm"] = 2.0
            card["preprocessing_hash"] = "0" * 16
        if problem == "unet":
            card["unet"]["width"] = 8

    config = ci_config()
    model = handed_source_model(ci_run, tmp_path / "handed", edit)
    if problem == "missing":
        model = tmp_path / "nowhere" / "model.pt"
    config["train"]["source_model"] = str(model)
    result = run_snakemake(tmp_path / "study", "--dry-run",
                           configfile=write_config(tmp_path / "c.yaml", config), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output[-3000:]
    assert "refused: " in output and "Traceback" not in output and 'File "' not in output
    assert str(model.parent) in output
    assert not (tmp_path / "study" / "results").exists()


def test_a_control_dataset_copied_from_the_target_is_refused_naming_both(ci_study, tmp_path):
    """The positive control pretrained on the target's own scans would see the test subjects:
    the copies are other files, so only their bytes give them away. The check runs as soon as
    the datasets are ingested and writes nothing."""
    study = copy_study(ci_study, tmp_path / "study")
    training = "MICCAI_BraTS_2018_Data_Training"
    copied = shutil.copytree(study / "results" / "phantoms" / "brats_phantom" / training,
                             tmp_path / "control" / training)
    config = ci_config()
    config["use"] = ["ms_phantom", "brats_phantom", "copied_target"]
    config["datasets"]["copied_target"] = {"role": "control", "format": "brats",
                                           "location": str(copied)}
    result = run_snakemake(study, "results/checks/datasets_disjoint.tsv",
                           configfile=write_config(tmp_path / "c.yaml", config), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    log = (study / "results" / "logs" / "check_datasets_disjoint" /
           "check_datasets_disjoint.log").read_text()
    assert "refused: datasets of this study: " in log and "Traceback" not in log
    first = next(line for line in log.splitlines() if line.startswith("  - "))
    assert first.startswith("  - datasets brats_phantom, copied_target: files ")
    assert "(brats_phantom subject " in first and f"{copied}/" in first
    assert first.endswith("found the same bytes in 2 places")
    assert not (study / "results" / "checks" / "datasets_disjoint.tsv").exists()
    assert (ci_study / "results" / "checks" / "datasets_disjoint.tsv").read_text().startswith(
        "dataset\tscans_checked\n")
