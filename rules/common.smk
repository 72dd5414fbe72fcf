# Input functions, wildcard constraints and the config helpers every rule file uses.

import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from lesion_transfer.config import schema_violation, sorted_keys

SCHEMA = os.path.join(workflow.basedir, "schemas", "config.schema.yaml")


def refuse(message):
    """A setting the study cannot use: its message alone, once, and no job runs (the message
    names the key, what was expected and what was found; a traceback would bury it)."""
    print(f"refused: {message}", file=sys.stderr)
    sys.exit(1)


try:
    validate(config, SCHEMA)
except WorkflowError as error:
    refuse(schema_violation(config, SCHEMA) or error)

# Params are compared as text: with every key sorted, reordering a config file reruns nothing.
_ordered = sorted_keys(config)
config.clear()
config.update(_ordered)

from lesion_transfer import SAFE_ID_PATTERN
from lesion_transfer.config import (
    check_baseline,
    check_finite_numbers,
    check_precision,
    check_ranges,
    check_results_folder,
    check_strategies,
    check_training_shapes,
    check_weight_choice,
    complete_control_pretraining,
    dataset_specs,
    with_manifest_columns,
)
from lesion_transfer.devices import gpus_per_job, openmp_wait_policy, usable_cores
from lesion_transfer.errors import Refusal
from lesion_transfer.model.strategies import CONTROL_SOURCES, STRATEGIES
from lesion_transfer.provenance import PAPER_SCALE, shared_settings
from lesion_transfer.workflow import REPEAT_SUFFIX_PATTERN, repeat_suffix

try:
    check_finite_numbers(config)
    check_ranges(config, SCHEMA)
    check_results_folder(config, os.getcwd())
    DATASET_SPECS = dataset_specs(config)
    complete_control_pretraining(config, SCHEMA)
    check_training_shapes(config)
    check_strategies(config)
    check_baseline(config)
    check_precision(config)
    check_weight_choice(config)
except Refusal as error:
    refuse(error)
DATASETS = list(DATASET_SPECS)


wildcard_constraints:
    dataset="|".join(DATASETS),
    strategy="|".join(config["train"]["strategies"]),
    size=r"\d+",
    fold=r"\d+",
    repeat=REPEAT_SUFFIX_PATTERN,
    subject=SAFE_ID_PATTERN,
    control="|".join(CONTROL_SOURCES),


def results(path):
    """A path inside the configured results folder."""
    return f"{config['results']}/{path}"


def is_phantom(dataset):
    return bool(DATASET_SPECS[dataset].get("phantom"))


def ingest_inputs(wildcards):
    """A phantom's generated folder, or the user's own files where the dataset lives."""
    spec = DATASET_SPECS[wildcards.dataset]
    if is_phantom(wildcards.dataset):
        return {"data": results(f"phantoms/{wildcards.dataset}")}
    inputs = {"data": spec["location"]}
    if spec.get("unlabelled_location"):
        inputs["unlabelled"] = spec["unlabelled_location"]
    if spec.get("grade_mapping"):
        inputs["grade_mapping"] = spec["grade_mapping"]["path"]
    return inputs


def phantom_params(wildcards):
    return DATASET_SPECS[wildcards.dataset]["phantom"]


# --- after ingestion (checkpoints): subjects and splits ----------------------------------

from lesion_transfer import MODALITIES
from lesion_transfer.config import role_of
from lesion_transfer.io.ingest import label_scheme_of, read_subjects_table
from lesion_transfer.splits import pretraining_split, read_splits, training_subset

SOURCE = role_of(DATASET_SPECS, "source")
TARGET = role_of(DATASET_SPECS, "target")
CONTROL = role_of(DATASET_SPECS, "control")  # None: no positive control in this study


def subject_rows(dataset):
    """The ingested subjects of a dataset (waits for its ingest_dataset checkpoint)."""
    table = checkpoints.ingest_dataset.get(dataset=dataset).output[0]
    return {row["subject"]: row for row in read_subjects_table(table)}


def splits_of(dataset):
    return read_splits(checkpoints.make_splits.get(dataset=dataset).output[0])


def preprocessed(dataset, subject, name):
    """A subject's file of one preprocessing step (wildcards as "{dataset}", "{subject}")."""
    return results(f"preprocess/{dataset}/{subject}/{name}")


def intermediate(path):
    """A preprocessing image that nothing reads once the cache is written: temporary, unless
    the config keeps them for inspection."""
    return path if config["preprocess"]["keep_intermediates"] else temp(path)


def cached(dataset, subject, name="meta.json"):
    """A subject's cache file: meta.json (written last: the cache's stand-in as an input),
    image.npy or label.npy."""
    return results(f"cache/{dataset}/{subject}/{name}")


def raw_files(wildcards):
    """A subject's raw modality files (and label, mask) as the subjects table lists them."""
    row = subject_rows(wildcards.dataset)[wildcards.subject]
    files = {m: row[m] for m in MODALITIES}
    for optional in ("label", "mask"):
        if row.get(optional):
            files[optional] = row[optional]
    return files


def label_scheme(wildcards):
    return label_scheme_of(DATASET_SPECS[wildcards.dataset], wildcards.subject)


def extraction_method(dataset):
    """BraTS data is already skull-stripped; a manifest's raw heads go through deepbet."""
    spec = DATASET_SPECS[dataset]
    return spec.get("brain_extraction") or (
        "none" if spec["format"] == "brats" else "deepbet"
    )


def brain_extraction_method(wildcards):
    return extraction_method(wildcards.dataset)


def given_mask(wildcards):
    if brain_extraction_method(wildcards) != "given":
        return []
    return subject_rows(wildcards.dataset)[wildcards.subject]["mask"]


def nyul_scales():
    return [results(f"nyul/{SOURCE}/{m}.json") for m in MODALITIES]


def nyul_fitting_inputs(wildcards):
    """Bias-corrected images and masks of the source's training subjects only."""
    train = splits_of(SOURCE)["train"]
    return {
        "splits": results(f"splits/{SOURCE}.json"),
        "images": [preprocessed(SOURCE, s, "bias_corrected.nii.gz") for s in train],
        "masks": [preprocessed(SOURCE, s, "brain_mask.nii.gz") for s in train],
    }


def registration_input(wildcards):
    """Nyul-standardised images; the target's only when the config maps it onto that scale."""
    standardise = wildcards.dataset == SOURCE or config["preprocess"]["nyul_target"]
    name = "standardised.nii.gz" if standardise else "bias_corrected.nii.gz"
    return preprocessed(wildcards.dataset, wildcards.subject, name)


def cached_subjects(wildcards):
    """Every subject's cache and QC montage, for every dataset the study preprocesses whole."""
    files = []
    for dataset in PREPROCESSED_DATASETS:
        for subject in subject_rows(dataset):
            files.append(cached(dataset, subject))
            files.append(preprocessed(dataset, subject, "qc.png"))
    return files


def registration_qc_files(wildcards):
    subjects = list(subject_rows(wildcards.dataset))
    return [preprocessed(wildcards.dataset, s, "qc.json") for s in subjects]


def check_split_sizes():
    """Configured sizes the target cannot supply stop the run at DAG build, before any job."""
    from lesion_transfer.io.ingest import find_subjects
    from lesion_transfer.io.layouts import LayoutError
    from lesion_transfer.splits import check_target_sizes

    spec = DATASET_SPECS[TARGET]
    if spec.get("phantom"):
        labelled = spec["phantom"]["subjects"]
    else:
        try:
            labelled = sum(
                s.labelled for s in find_subjects(with_manifest_columns(spec))
            )
        except (LayoutError, OSError):
            return  # ingestion reports a missing or malformed dataset, naming the files
    split = config["splits"]
    check_target_sizes(
        TARGET,
        labelled,
        split["folds"],
        split["local_validation"],
        split["sizes"],
        split["control_reserve"],
    )


# What looks at the data and at a handed-in model runs in the main process only: a cluster
# job parses this file again, and what it would find was found before the job was submitted.
if workflow.is_main_process:
    try:
        check_split_sizes()
    except Refusal as error:
        refuse(error)


def rebuild_stale_caches():
    """A cached array whose bytes changed after it was written (truncated, edited, restored
    from elsewhere) would be read by every job that trains or evaluates on it: its cache is
    rebuilt in this run (and the jobs that read it rerun if it comes out other than it was:
    Snakemake compares meta.json, which holds the arrays' checksums). A dry run changes
    nothing and says so.
    """
    from lesion_transfer.io.cache import discard_stale_caches

    for line in discard_stale_caches(results("cache"), workflow.output_settings.dryrun):
        logger.warning(line)


if workflow.is_main_process:
    rebuild_stale_caches()


def preprocessing_settings(dataset):
    """Everything that shapes a cache: recorded in meta.json and hashed into model cards."""
    spec = DATASET_SPECS[dataset]
    return {
        "dataset": dataset,
        "role": spec["role"],
        "brain_extraction": extraction_method(dataset),
        "nyul": dataset == SOURCE or config["preprocess"]["nyul_target"],
        # the settings that make two caches comparable: provenance owns their list (and
        # leaves out the paper's intensity scale, which studies before the setting lacked)
        **shared_settings(config["preprocess"]),
    }


def intensity_params():
    """preprocess.intensity for rule normalise_intensity, only where it is not the paper's
    scale: a params entry the rule did not have would rerun every finished study."""
    scale = config["preprocess"]["intensity"]
    return {} if scale == PAPER_SCALE else {"scale": scale}


# --- training ------------------------------------------------------------------------------

STRATEGY_NAMES = config["train"]["strategies"]
# A training job holds one GPU unless it computes on the CPU: with `train.device: cpu`, or
# where this machine runs the jobs and shows no GPU (devices.gpus_per_job). Inference asks for
# what training asks for: without a GPU it runs beside training, on what training leaves.
GPUS_PER_TRAINING_JOB = gpus_per_job(config["train"]["device"], workflow.local_exec)
GPUS_PER_INFERENCE_JOB = GPUS_PER_TRAINING_JOB

# Training on this machine's CPU runs one job per core on one thread each, whatever --cores
# says: on 2 cores two 1-thread fine-tunings take 170 s together where one 2-thread job takes
# 124 s (bench/results/cpu_training.md). `cpu_training` counts them; --resources may set it.
TRAINS_ON_CPU_HERE = workflow.local_exec and GPUS_PER_TRAINING_JOB == 0
CPU_TRAINING_PER_JOB = 1 if TRAINS_ON_CPU_HERE else 0
TRAINING_THREADS = 1 if TRAINS_ON_CPU_HERE else config["threads"]
if TRAINS_ON_CPU_HERE:
    workflow.global_resources.setdefault("cpu_training", usable_cores())
    if workflow.is_main_process:
        logger.info(
            "Training on this machine's CPU: "
            f"{workflow.global_resources.get('cpu_training').value} jobs at once "
            "(cpu_training), one thread each"
        )


def training_jobs_at_once():
    """How many training jobs Snakemake may run at once on one machine: on a cluster each
    has cores of its own (1); here, on the CPU, one per core (`cpu_training`), and with GPUs
    as many as `--resources gpu=N` lets in (None: nothing limits them)."""
    if not workflow.local_exec:
        return 1
    if TRAINS_ON_CPU_HERE:
        return int(workflow.global_resources.get("cpu_training").value)
    limit = workflow.global_resources.get("gpu").value
    if limit is None:
        return None
    return int(limit) // GPUS_PER_TRAINING_JOB


def given_source_model():
    """`train.source_model` checked at DAG build (dry runs included), or None."""
    from lesion_transfer.train.cards import check_given_source_model

    given = config["train"].get("source_model")
    if given and not os.path.isdir(given) and workflow.is_main_process:
        check_given_source_model(
            given, config["train"]["unet"], preprocessing_settings(TARGET), MODALITIES
        )
    return given


def foreign_source():
    """Another framework's model as the source (`train.source_model` a folder: an nnU-Net v2
    trained model, a MONAI bundle), described, and checked against what the study feeds it
    before any job; None for this project's model files."""
    given, fold = config["train"].get("source_model"), config["train"]["source_fold"]
    if not given or not os.path.isdir(given):
        return None
    # torch only now: it takes seconds to import, and every job parses the workflow twice
    from lesion_transfer.model.sources import (
        TargetInput,
        check_foreign_source,
        locate_foreign_source,
    )

    # a cluster job reads the workflow again: the run that submitted it checked the source
    if not workflow.is_main_process:
        return locate_foreign_source(given, fold)
    target = TargetInput(
        channels=tuple(MODALITIES),
        spacing_mm=config["preprocess"]["spacing_mm"],
        patch_size=tuple(config["train"]["finetune"]["patch_size"]),
        intensity=config["preprocess"]["intensity"],
    )
    return check_foreign_source(given, fold, target)


try:
    SOURCE_MODEL = given_source_model() or results("models/source/model.pt")
    FOREIGN_SOURCE = foreign_source()
except Refusal as error:
    refuse(error)
SOURCE_CARD = os.path.join(os.path.dirname(SOURCE_MODEL), "model_card.json")

# With a source model handed in, nothing pretrains on the source dataset: of it the study needs
# its training subjects' Nyul landmarks (fit_nyul asks for those subjects' chain up to bias
# correction) and, for this project's model files, the validation caches score_source asks
# for; registering and caching every subject of a large cohort would be work for nothing.
PREPROCESSED_DATASETS = [
    d for d in DATASETS if not (d == SOURCE and config["train"].get("source_model"))
]


def pretraining_inputs(wildcards):
    split = splits_of(SOURCE)
    return {
        "splits": results(f"splits/{SOURCE}.json"),
        "train": [cached(SOURCE, s) for s in split["train"]],
        "validation": [cached(SOURCE, s) for s in split["validation"]],
    }


# The positive control pretrains on the dataset with role control, or else on the target's
# reserve (splits.control_reserve: subjects in no fold)
CONTROL_PRETRAINING_SET = CONTROL or TARGET


def splits_params(wildcards):
    """A dataset's split settings: not the training sizes (the file holds each fold's pool
    order, whatever the sizes), and the control reserve only for a target that holds one, so
    that a study without one keeps its splits."""
    settings = {k: v for k, v in config["splits"].items() if k != "sizes"}
    if wildcards.dataset != TARGET or not settings["control_reserve"]:
        settings.pop("control_reserve")
    return settings


def control_pretraining_inputs(wildcards):
    """The positive control's source pretrains on the dataset with role control, or on the
    target's reserve (the negative control scrambles the study's source and pretrains
    nothing)."""
    dataset = CONTROL_PRETRAINING_SET
    split = pretraining_split(splits_of(dataset))
    return {
        "splits": results(f"splits/{dataset}.json"),
        "train": [cached(dataset, s) for s in split["train"]],
        "validation": [cached(dataset, s) for s in split["validation"]],
    }


def starting_model(strategy):
    """The model and card an arm starts from: the study's source or a control's."""
    source = STRATEGIES[strategy].source
    if source == "source":
        return SOURCE_MODEL, SOURCE_CARD
    folder = results(f"models/controls/{source}")
    return f"{folder}/model.pt", f"{folder}/model_card.json"


def finetuning_inputs(wildcards):
    """The fold's caches and the arm's start. Another framework's source is read by every
    arm but those that start from a control's model: scratch builds its network afresh.
    """
    fold = splits_of(TARGET)["folds"][int(wildcards.fold)]
    inputs = {
        "splits": results(f"splits/{TARGET}.json"),
        "train": [cached(TARGET, s) for s in training_subset(fold, wildcards.size)],
        "validation": [cached(TARGET, s) for s in fold["local_validation"]],
    }
    strategy = STRATEGIES[wildcards.strategy]
    if FOREIGN_SOURCE and strategy.source == "source":
        inputs["source_files"] = [str(f) for f in FOREIGN_SOURCE.files]
    elif strategy.from_source:
        inputs["source_model"], inputs["source_card"] = starting_model(
            wildcards.strategy
        )
    return inputs


def training_params(stage):
    """Only the keys a training job depends on, so that other edits do not retrain it (the
    foreign source's folder and fold only in a study that has one)."""
    params = {
        "unet": config["train"]["unet"],
        "settings": config["train"][stage],
        "device": config["train"]["device"],
        "precision": config["train"]["precision"],
        "seed": config["seed"],
    }
    if FOREIGN_SOURCE and stage == "finetune":
        params["foreign_source"] = {
            "path": str(FOREIGN_SOURCE.path),
            "fold": FOREIGN_SOURCE.fold,
        }
    return params


# --- evaluation and report -------------------------------------------------------------------

FOLDS = range(config["splits"]["folds"])
SIZES = sorted(config["splits"]["sizes"])
# the {repeat} wildcard of each training run: "" for repeat 0, "_repeat1", ...
REPEATS = [repeat_suffix(r) for r in range(config["train"]["repeats"])]


def fold_subjects(wildcards, part):
    """A fold's `test` or `local_validation` subjects of the target."""
    return splits_of(TARGET)["folds"][int(wildcards.fold)][part]


def fold_caches(wildcards, part):
    return [cached(TARGET, s) for s in fold_subjects(wildcards, part)]


def fold_native_files(wildcards, part, name):
    """A preprocessing file on each subject's own grid (label.nii.gz: the original label;
    brain_mask.nii.gz) for a fold's test or local validation subjects."""
    return [preprocessed(TARGET, s, name) for s in fold_subjects(wildcards, part)]


def unlabelled_native_files(name):
    return [preprocessed(TARGET, s, name) for s in splits_of(TARGET)["unlabelled"]]


def unlabelled_caches(wildcards):
    return [cached(TARGET, s) for s in splits_of(TARGET)["unlabelled"]]


def source_validation_caches(wildcards):
    return [cached(SOURCE, s) for s in splits_of(SOURCE)["validation"]]


def evaluation_inputs(wildcards):
    """The model, every subject it is scored on, selects an operating point on, or
    contributes to a submission for, and the test subjects' native labels and brain masks
    (in the order of fold_subjects(wildcards, "test"))."""
    model = results(
        f"models/{wildcards.strategy}/n{wildcards.size}/"
        f"fold{wildcards.fold}{wildcards.repeat}"
    )
    return {
        "model": f"{model}/model.pt",
        "card": f"{model}/model_card.json",
        "test": fold_caches(wildcards, "test"),
        "validation": fold_caches(wildcards, "local_validation"),
        "unlabelled": unlabelled_caches(wildcards),
        "truths": fold_native_files(wildcards, "test", "label.nii.gz"),
        "brains": fold_native_files(wildcards, "test", "brain_mask.nii.gz"),
    }


def per_model(pattern, strategies=STRATEGY_NAMES, sizes=SIZES):
    """Every fine-tuned model's file: arm x size x training run (fold, repeat)."""
    # a pattern without {repeat} would name repeat 0's files only, silently
    assert "{repeat}" in pattern, f"per_model: {pattern} names no training run's repeat"
    return expand(
        results(pattern), strategy=strategies, size=sizes, fold=FOLDS, repeat=REPEATS
    )


def per_run(pattern, wildcards):
    """A file of every training run (fold, repeat) of one arm and size."""
    return per_model(pattern, [wildcards.strategy], [wildcards.size])


def study_models(wildcards):
    """Every model the tables cite, and those the arms start from. Targets of `all`, so that
    one removed by a forced job that failed or was killed is trained again by a plain rerun:
    Snakemake remakes a missing file only when a target needs it."""
    starts = {starting_model(s)[0] for s in STRATEGY_NAMES if STRATEGIES[s].from_source}
    return sorted(starts) + per_model(
        "models/{strategy}/n{size}/fold{fold}{repeat}/model.pt"
    )


def submissions(wildcards):
    """A submission folder per (strategy, size) where the target has unlabelled cases."""
    if not splits_of(TARGET)["unlabelled"]:
        return []
    return expand(
        results("submissions/{strategy}/n{size}"), strategy=STRATEGY_NAMES, size=SIZES
    )


def qualitative_inputs(wildcards):
    """The smallest training size's label maps of fold 0 (its first repeat) under every
    strategy, with the test subjects' caches."""
    smallest = SIZES[0]
    return {
        "labels": [
            results(f"predictions/{s}/n{smallest}/fold0/labels.npz")
            for s in STRATEGY_NAMES
        ],
        "test": [cached(TARGET, s) for s in splits_of(TARGET)["folds"][0]["test"]],
    }


def report_params():
    """Settings that shape tables and figures only: editing them reruns no model."""
    settings = {k: v for k, v in config["report"].items() if k != "html"}
    return {**settings, "strategies": STRATEGY_NAMES}


def report_opening_page():
    """The claims page aggregate_results writes (absolute: Snakemake reads it relative to the
    Snakefile otherwise), or the workflow's description before it exists."""
    claims = os.path.abspath(results("tables/claims.rst"))
    return claims if os.path.exists(claims) else "../report/workflow.rst"


def write_report_when_complete():
    """After a successful run that holds the study's tables and figures, the HTML report.
    Snakemake's --report-after-run would also fire after a dry run and after runs of single
    targets, and fail there on files not yet made."""
    needed = [
        results(p)
        for p in (
            "tables/summary.tsv",
            "tables/claims.rst",
            "figures/learning_curve.png",
            "figures/qualitative.png",
        )
    ]
    if not config["report"]["html"] or not all(os.path.exists(p) for p in needed):
        return
    failure = write_report(
        workflow.main_snakefile, os.getcwd(), config, results("report.html")
    )
    if failure:
        # the study's files are all there, but the run promised the report: fail, with
        # Snakemake's own reason, rather than end "successfully" without it
        logger.error(f"the HTML report failed: {failure}")
        sys.exit(1)
    else:
        logger.info(f"HTML report: {results('report.html')}")


def write_report(snakefile, workdir, used_config, report_path):
    """Snakemake's own `--report` on the configuration this run used (written to a temporary
    config file, so that presets and --config overrides are kept). Returns None, or what
    failed: the command and the end of its error output."""
    import json
    import subprocess
    import sys
    import tempfile

    import yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as used:
        yaml.safe_dump(json.loads(json.dumps(used_config)), used)
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        "--configfile",
        used.name,
        "--nolock",
        "all",
        "--report",
        str(report_path),
    ]
    try:
        finished = subprocess.run(command, capture_output=True, text=True)
    finally:
        os.unlink(used.name)
    if finished.returncode != 0:
        # not --quiet: it would hide Snakemake's reason (as "pygments must be installed")
        return f"{' '.join(command)}\n{(finished.stdout + finished.stderr)[-3000:]}"
    return None
