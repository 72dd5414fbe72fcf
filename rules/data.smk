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
