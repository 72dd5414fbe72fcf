"""Rule pretrain_source: the UNet on the source's training split, binary lesions."""

from pathlib import Path

from lesion_transfer.devices import job_device
from lesion_transfer.train.stages import pretrain_source_stage
from lesion_transfer.workflow import rule_log, training_settings, use_threads

with rule_log(snakemake.log[0]) as log, job_device(
        snakemake.params.training["device"], log) as device:
    use_threads(snakemake.threads)
    training = snakemake.params.training
    settings = training_settings(training, device)
    outputs = {**dict(snakemake.output.items()), "checkpoints": snakemake.params.checkpoints,
               "tensorboard": snakemake.params.tensorboard}
    pretrain_source_stage([Path(p).parent for p in snakemake.input.train],
                          [Path(p).parent for p in snakemake.input.validation], training["unet"],
                          settings, training["settings"].get("pos_weight"), outputs, log, training,
                          snakemake.params.dataset, progress_stream=log.progress_stream)
