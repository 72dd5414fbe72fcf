"""Rule pretrain_source: the UNet on the source's training split, binary lesions."""

from lesion_transfer.devices import job_device
from lesion_transfer.train.stages import pretrain_source_stage
from lesion_transfer.workflow import (
    rule_log,
    training_data,
    training_outputs,
    training_setup,
    use_threads,
)

with rule_log(snakemake.log[0]) as log, job_device(
        snakemake.params.training["device"], log) as device:
    use_threads(snakemake.threads)
    setup = training_setup(snakemake.params.training, "pretrain", snakemake.params.dataset,
                           device)
    pretrain_source_stage(setup, training_data(snakemake.input),
                          training_outputs(snakemake.output, snakemake.params, log), log)
