"""Rule finetune: one (strategy, training size, fold) on the target."""

from pathlib import Path

from lesion_transfer.devices import job_device
from lesion_transfer.train.stages import finetune_stage
from lesion_transfer.workflow import repeat_of, rule_log, training_settings, use_threads

with rule_log(snakemake.log[0]) as log, job_device(
        snakemake.params.training["device"], log) as device:
    use_threads(snakemake.threads)
    training, wildcards = snakemake.params.training, snakemake.wildcards
    fold, repeat = int(wildcards.fold), repeat_of(wildcards.repeat)
    settings = training_settings(training, device, run=(fold, repeat))
    # the model card records the training run and the seed it drew from
    used = {**training, "run": {"fold": fold, "repeat": repeat, "seed": settings.seed}}
    outputs = {**dict(snakemake.output.items()), "checkpoints": snakemake.params.checkpoints,
               "tensorboard": snakemake.params.tensorboard}
    finetune_stage(wildcards.strategy, snakemake.input.get("source_model"),
                   snakemake.input.get("source_card"),
                   [Path(p).parent for p in snakemake.input.train],
                   [Path(p).parent for p in snakemake.input.validation], training["unet"],
                   settings, training["settings"].get("class_weights"), outputs, log, used,
                   snakemake.params.dataset, progress_stream=log.progress_stream,
                   max_class_weight=training["settings"]["max_class_weight"])
