"""Rule score_source: the source model's voxel ROC-AUC and PR-AUC on its validation split."""

from lesion_transfer.devices import job_device
from lesion_transfer.evaluate.stages import ModelFiles, score_source_stage
from lesion_transfer.workflow import rule_log, use_threads, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log, job_device(
        snakemake.params.device, log) as device:
    if not snakemake.resources.gpu:  # beside a training job, on the cores it leaves idle
        yield_cpu_to_training()
    use_threads(snakemake.threads)
    score_source_stage(ModelFiles(snakemake.input.model, snakemake.input.card), device, log,
                       validation=snakemake.input.validation, output=snakemake.output[0])
