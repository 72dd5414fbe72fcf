# Data: the phantom cohort (the embedded default) and the ingestion of every dataset.


rule synthesize_cohort:
    output:
        directory(results("phantoms/{dataset}")),
    params:
        phantom=phantom_params,
        seed=config["seed"],
    log:
        "logs/synthesize_cohort/{dataset}.log",
    benchmark:
        "benchmarks/synthesize_cohort/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../envs/imaging.yaml"
    script:
        "../workflow_scripts/synthesize_cohort.py"


checkpoint ingest_dataset:
    input:
        unpack(ingest_inputs),
    output:
        results("subjects/{dataset}.tsv"),
    params:
        spec=lambda wildcards: DATASET_SPECS[wildcards.dataset],
    log:
        "logs/ingest_dataset/{dataset}.log",
    benchmark:
        "benchmarks/ingest_dataset/{dataset}.tsv"
    threads: config["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../envs/imaging.yaml"
    script:
        "../workflow_scripts/ingest_dataset.py"


rule plot_dataset_montage:
    input:
        results("subjects/{dataset}.tsv"),
    output:
        report(results("qc/{dataset}/raw_montage.png"), caption="../report/raw_montage.rst",
               category="2. Quality control", labels={"dataset": "{dataset}", "figure": "raw"}),
    params:
        subjects=4,
    log:
        "logs/plot_dataset_montage/{dataset}.log",
    benchmark:
        "benchmarks/plot_dataset_montage/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/imaging.yaml"
    script:
        "../workflow_scripts/plot_dataset_montage.py"
