# Splits: source train/validation; target folds with local validation and nested subsets.


checkpoint make_splits:
    input:
        results("subjects/{dataset}.tsv"),
    output:
        results("splits/{dataset}.json"),
    log:
        results("logs/make_splits/{dataset}.log"),
    benchmark:
        results("benchmarks/make_splits/{dataset}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=500,
    params:
        role=lambda wildcards: DATASET_SPECS[wildcards.dataset]["role"],
        splits=splits_params,
        seed=config["seed"],
    script:
        "../workflow_scripts/make_splits.py"
