"""Rule finetune: one (strategy, training size, fold, repeat) on the target."""

from lesion_transfer.devices import job_device
from lesion_transfer.train.stages import finetune_stage
from lesion_transfer.workflow import (
    repeat_of,
    rule_log,
    training_data,
    training_outputs,
    training_setup,
    use_threads,
)

with rule_log(snakemake.log[0]) as log, job_device(
        snakemake.params.training["device"], log) as device:
    use_threads(snakemake.threads)
    wildcards = snakemake.wildcards
    setup = training_setup(snakemake.params.training, "finetune", snakemake.params.dataset,
                           device, run=(int(wildcards.fold), repeat_of(wildcards.repeat)))
    data = training_data(snakemake.input, snakemake.params.training.get("foreign_source"))
    finetune_stage(wildcards.strategy, setup, data,
                   training_outputs(snakemake.output, snakemake.params, log), log)
