"""Rule evaluate_model: one fine-tuned model's probabilities, operating point and scores, in
template space and on each test subject's own grid."""

from lesion_transfer.devices import job_device
from lesion_transfer.evaluate.stages import evaluate_model_stage
from lesion_transfer.workflow import repeat_of, rule_log, use_threads

with rule_log(snakemake.log[0]) as log, job_device(
        snakemake.params.device, log) as device:
    use_threads(snakemake.threads)
    inputs, params, wildcards = snakemake.input, snakemake.params, snakemake.wildcards
    evaluate_model_stage(
        inputs.model, inputs.card,
        {"test": inputs.test, "validation": inputs.validation, "unlabelled": inputs.unlabelled},
        dict(zip(params.subjects, inputs.truths, strict=True)),
        dict(zip(params.subjects, inputs.brains, strict=True)),
        dict(snakemake.output.items()), device, params.precision,
        {"strategy": wildcards.strategy, "size": int(wildcards.size), "fold": int(wildcards.fold),
         "repeat": repeat_of(wildcards.repeat)},
        log)
