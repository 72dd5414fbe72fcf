# Data: the phantom cohort (the embedded default) and the ingestion of every dataset.


rule synthesize_cohort:
    output:
        directory(results("phantoms/{dataset}")),
    log:
        results("logs/synthesize_cohort/{dataset}.log"),
    benchmark:
        results("benchmarks/synthesize_cohort/{dataset}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        phantom=phantom_params,
        seed=config["seed"],
    script:
        "../workflow_scripts/synthesize_cohort.py"


checkpoint ingest_dataset:
    input:
        unpack(ingest_inputs),
    output:
        results("subjects/{dataset}.tsv"),
    log:
        results("logs/ingest_dataset/{dataset}.log"),
    benchmark:
        results("benchmarks/ingest_dataset/{dataset}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
    params:
        spec=lambda wildcards: DATASET_SPECS[wildcards.dataset],
    script:
        "../workflow_scripts/ingest_dataset.py"


# No scan in two datasets of the study (a control's pretraining set copied from the target, a
# source that holds target scans): checked as soon as every dataset is ingested, first of the
# jobs then ready, and the run stops there (ingestion refuses a scan in two subjects of one).
rule check_datasets_disjoint:
    input:
        expand(results("subjects/{dataset}.tsv"), dataset=DATASETS),
    output:
        results("checks/datasets_disjoint.tsv"),
    log:
        results("logs/check_datasets_disjoint/check_datasets_disjoint.log"),
    benchmark:
        results("benchmarks/check_datasets_disjoint/check_datasets_disjoint.tsv")
    priority: 100
    conda:
        "../envs/imaging.yaml"
    threads: config["threads"]
    resources:
        mem_mb=2000,
    params:
        datasets=DATASETS,
    script:
        "../workflow_scripts/check_datasets_disjoint.py"


rule plot_dataset_montage:
    input:
        results("subjects/{dataset}.tsv"),
    output:
        report(
            results("qc/{dataset}/raw_montage.png"),
            caption="../report/raw_montage.rst",
            category="2. Quality control",
            labels={"dataset": "{dataset}", "figure": "raw"},
        ),
    log:
        results("logs/plot_dataset_montage/{dataset}.log"),
    benchmark:
        results("benchmarks/plot_dataset_montage/{dataset}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        subjects=4,
    script:
        "../workflow_scripts/plot_dataset_montage.py"
