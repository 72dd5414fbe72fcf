# lesion-transfer: a transfer-learning study for brain pathology segmentation
# (Kaur et al., MICCAI DART 2019), from raw MRI to result tables.
#
#   snakemake --cores 8 --resources gpu=1                 # the embedded phantom study
#   snakemake --configfile configs/paper.yaml ...         # your data; see README.md

import os

from snakemake.utils import min_version

min_version("9.0")


include: "rules/scheduler.smk"


configfile: "config.yaml"


include: "rules/common.smk"


# What idle OpenMP threads of training jobs do, decided once where Snakemake runs (a job's
# own Snakemake parses this file again, without the command's --resources): set here, it
# reaches every job's process (on a cluster too) before torch loads OpenMP.
if workflow.is_main_process:
    wait_policy = openmp_wait_policy(training_jobs_at_once())
    if wait_policy:
        os.environ.setdefault("OMP_WAIT_POLICY", wait_policy)


include: "rules/data.smk"
include: "rules/splits.smk"
include: "rules/preprocess.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


# Rules that read a table or a few JSON files and write one: on a cluster they run where
# Snakemake runs rather than wait in the queue and pay a job's start-up (make_splits, a
# checkpoint, stands between ingestion and every subject's preprocessing).
localrules:
    make_splits,
    summarise_qc,


rule all:
    default_target: True
    input:
        expand(results("subjects/{dataset}.tsv"), dataset=DATASETS),
        results("checks/datasets_disjoint.tsv"),
        expand(results("qc/{dataset}/raw_montage.png"), dataset=DATASETS),
        expand(results("splits/{dataset}.json"), dataset=DATASETS),
        expand(
            results("qc/{dataset}/preprocessing_qc.tsv"), dataset=PREPROCESSED_DATASETS
        ),
        cached_subjects,
        study_models,
        per_model("predictions/{strategy}/n{size}/fold{fold}{repeat}/native"),
        submissions,
        results("tables/summary.tsv"),
        results("figures/learning_curve.png"),
        results("figures/qualitative.png"),


onsuccess:
    write_report_when_complete()
