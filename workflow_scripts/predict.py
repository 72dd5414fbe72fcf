"""Rule predict: region probabilities of a fold's test, local validation and unlabelled
subjects from one fine-tuned model."""

from lesion_transfer.devices import job_device
from lesion_transfer.evaluate.stages import predict_stage
from lesion_transfer.workflow import rule_log, use_threads

with rule_log(snakemake.log[0]) as log, job_device(  # noqa: F821 (snakemake is injected)
        snakemake.params.device, log) as device:
    use_threads(snakemake.threads)
    inputs = snakemake.input
    predict_stage(inputs.model, inputs.card, [*inputs.test, *inputs.validation, *inputs.unlabelled],
                  snakemake.output[0], device, snakemake.params.precision, log)
