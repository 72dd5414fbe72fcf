"""Rule pretrain_control: the positive control's source model (the target's task on the
control dataset)."""

from pathlib import Path

from lesion_transfer.devices import job_device
from lesion_transfer.train.stages import pretrain_control_stage
from lesion_transfer.workflow import rule_log, training_settings, use_threads

with rule_log(snakemake.log[0]) as log, job_device(
        snakemake.params.training["device"], log) as device:
    use_threads(snakemake.threads)
    training = snakemake.params.training
    settings = training_settings(training, device)
    block = training["settings"]
    outputs = {**dict(snakemake.output.items()), "checkpoints": snakemake.params.checkpoints,
               "tensorboard": snakemake.params.tensorboard}
    pretrain_control_stage(snakemake.wildcards.control,
                           [Path(p).parent for p in snakemake.input.train],
                           [Path(p).parent for p in snakemake.input.validation],
                           training["unet"], settings,
                           {k: block[k] for k in ("class_weights", "max_class_weight")},
                           outputs, log, training, snakemake.params.dataset,
                           progress_stream=log.progress_stream)
