# Evaluation: one job per fine-tuned model (torch and ANTs load once): predict -> operating
# point (local validation) -> label maps and template-space scores -> label maps on each test
# subject's own grid, scored there (the headline); a BraTS submission per (strategy, size) from
# the models of every training run (fold, repeat); the source model's voxel AUCs.


rule evaluate_model:
    input:
        unpack(evaluation_inputs),
    output:
        probabilities=results(
            "predictions/{strategy}/n{size}/fold{fold}{repeat}/unlabelled_probabilities.npz"
        ),
        operating_point=results(
            "predictions/{strategy}/n{size}/fold{fold}{repeat}/operating_point.json"
        ),
        labels=results("predictions/{strategy}/n{size}/fold{fold}{repeat}/labels.npz"),
        template_scores=results(
            "metrics/template/{strategy}/n{size}/fold{fold}{repeat}.tsv"
        ),
        native=directory(
            results("predictions/{strategy}/n{size}/fold{fold}{repeat}/native")
        ),
        native_scores=results(
            "metrics/native/{strategy}/n{size}/fold{fold}{repeat}.tsv"
        ),
    log:
        results("logs/evaluate_model/{strategy}/n{size}/fold{fold}{repeat}.log"),
    benchmark:
        results("benchmarks/evaluate_model/{strategy}/n{size}/fold{fold}{repeat}.tsv")
    conda:
        "../envs/torch.yaml"
    threads: config["threads"]
    resources:
        gpu=GPUS_PER_INFERENCE_JOB,
        mem_mb=8000,
    params:
        device=config["train"]["device"],
        precision=config["train"]["precision"],
        subjects=lambda wildcards: fold_subjects(wildcards, "test"),
    script:
        "../workflow_scripts/evaluate_model.py"


rule make_submission:
    input:
        probabilities=lambda wildcards: per_run(
            "predictions/{strategy}/n{size}/fold{fold}{repeat}/unlabelled_probabilities.npz",
            wildcards,
        ),
        operating_points=lambda wildcards: per_run(
            "predictions/{strategy}/n{size}/fold{fold}{repeat}/operating_point.json",
            wildcards,
        ),
        subjects=unlabelled_caches,
        brains=lambda wildcards: unlabelled_native_files("brain_mask.nii.gz"),
    output:
        directory(results("submissions/{strategy}/n{size}")),
    log:
        results("logs/make_submission/{strategy}/n{size}.log"),
    benchmark:
        results("benchmarks/make_submission/{strategy}/n{size}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        subjects=lambda wildcards: splits_of(TARGET)["unlabelled"],
    script:
        "../workflow_scripts/make_submission.py"


# The report's source table: this project's source scored on the source's validation
# subjects; another framework's, described (its task is not the study's to know).
if FOREIGN_SOURCE:

    rule describe_source:
        input:
            [str(f) for f in FOREIGN_SOURCE.files],
        output:
            results("metrics/source.tsv"),
        log:
            results("logs/describe_source/source.log"),
        benchmark:
            results("benchmarks/describe_source/source.tsv")
        conda:
            "../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=2000,
        params:
            path=str(FOREIGN_SOURCE.path),
            fold=FOREIGN_SOURCE.fold,
        script:
            "../workflow_scripts/describe_source.py"

else:

    rule score_source:
        input:
            model=SOURCE_MODEL,
            card=SOURCE_CARD,
            validation=source_validation_caches,
        output:
            results("metrics/source.tsv"),
        log:
            results("logs/score_source/source.log"),
        benchmark:
            results("benchmarks/score_source/source.tsv")
        conda:
            "../envs/torch.yaml"
        threads: config["threads"]
        resources:
            gpu=GPUS_PER_INFERENCE_JOB,
            mem_mb=8000,
        params:
            device=config["train"]["device"],
        script:
            "../workflow_scripts/score_source.py"
