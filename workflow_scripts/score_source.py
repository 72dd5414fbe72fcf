"""Rule score_source: the source model's voxel ROC-AUC and PR-AUC on its validation split."""

from lesion_transfer.devices import job_device
from lesion_transfer.evaluate.stages import ModelFiles, score_source_stage
from lesion_transfer.workflow import rule_log, use_threads

with rule_log(snakemake.log[0]) as log, job_device(
        snakemake.params.device, log) as device:
    use_threads(snakemake.threads)
    score_source_stage(ModelFiles(snakemake.input.model, snakemake.input.card), device, log,
                       validation=snakemake.input.validation, output=snakemake.output[0])
