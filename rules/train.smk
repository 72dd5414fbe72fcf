# Training (GPU rules): pretraining on the source, fine-tuning per (strategy, size) and
# training run (fold, repeat; repeat 0 without a suffix: fold0/, then fold0_repeat1/, ...).
# Checkpoints live in results/checkpoints/, outside the declared outputs: Snakemake deletes
# the outputs of a failed job, and a rerun resumes from the checkpoint.
#
# The sources' pretrainings are the long jobs the fine-tunings wait for: they take a free
# training slot before any fine-tuning (`priority`). Without it Snakemake's scheduler, which
# breaks ties by the size of a job's inputs, starts fine-tunings first (their inputs hold a
# model file; a pretraining's are small meta.json files): the control source waited for
# every fine-tuning that did not need it, to run last with one core idle
# (bench/results/default_run.md, stop 46).


rule pretrain_source:
    input:
        unpack(pretraining_inputs),
    output:
        model=results("models/source/model.pt"),
        card=results("models/source/model_card.json"),
        history=results("models/source/history.tsv"),
    log:
        results("logs/pretrain_source/source.log"),
    benchmark:
        results("benchmarks/pretrain_source/source.tsv")
    priority: 10
    conda:
        "../envs/torch.yaml"
    threads: TRAINING_THREADS
    resources:
        gpu=GPUS_PER_TRAINING_JOB,
        cpu_training=CPU_TRAINING_PER_JOB,
        mem_mb=16000,
    params:
        training=training_params("pretrain"),
        dataset=SOURCE,
        checkpoints=results("checkpoints/source"),
        tensorboard=results("models/source/tensorboard"),
    script:
        "../workflow_scripts/pretrain_source.py"


rule pretrain_control:
    input:
        unpack(control_pretraining_inputs),
    output:
        model=results("models/controls/{control}/model.pt"),
        card=results("models/controls/{control}/model_card.json"),
        history=results("models/controls/{control}/history.tsv"),
    log:
        results("logs/pretrain_control/{control}.log"),
    benchmark:
        results("benchmarks/pretrain_control/{control}.tsv")
    priority: 10
    conda:
        "../envs/torch.yaml"
    threads: TRAINING_THREADS
    resources:
        gpu=GPUS_PER_TRAINING_JOB,
        cpu_training=CPU_TRAINING_PER_JOB,
        mem_mb=16000,
    params:
        training=training_params("control_pretrain"),
        dataset=CONTROL_PRETRAINING_SET,
        checkpoints=results("checkpoints/controls/{control}"),
        tensorboard=results("models/controls/{control}/tensorboard"),
    script:
        "../workflow_scripts/pretrain_control.py"


rule finetune:
    input:
        unpack(finetuning_inputs),
    output:
        model=results("models/{strategy}/n{size}/fold{fold}{repeat}/model.pt"),
        card=results("models/{strategy}/n{size}/fold{fold}{repeat}/model_card.json"),
        history=results("models/{strategy}/n{size}/fold{fold}{repeat}/history.tsv"),
    log:
        results("logs/finetune/{strategy}/n{size}/fold{fold}{repeat}.log"),
    benchmark:
        results("benchmarks/finetune/{strategy}/n{size}/fold{fold}{repeat}.tsv")
    conda:
        "../envs/torch.yaml"
    threads: TRAINING_THREADS
    resources:
        gpu=GPUS_PER_TRAINING_JOB,
        cpu_training=CPU_TRAINING_PER_JOB,
        mem_mb=16000,
    params:
        training=training_params("finetune"),
        dataset=TARGET,
        checkpoints=results("checkpoints/{strategy}/n{size}/fold{fold}{repeat}"),
        tensorboard=results("models/{strategy}/n{size}/fold{fold}{repeat}/tensorboard"),
    script:
        "../workflow_scripts/finetune.py"
