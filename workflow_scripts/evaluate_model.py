"""Rule evaluate_model: one fine-tuned model's probabilities, operating point and scores, in
template space and on each test subject's own grid."""

from pathlib import Path

from lesion_transfer.devices import job_device
from lesion_transfer.evaluate.stages import (
    Evaluation,
    EvaluationOutputs,
    EvaluationSubjects,
    evaluate_model_stage,
)
from lesion_transfer.workflow import repeat_of, rule_log, use_threads, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log, job_device(
        snakemake.params.device, log) as device:
    if not snakemake.resources.gpu:  # beside a training job, on the cores it leaves idle
        yield_cpu_to_training()
    use_threads(snakemake.threads)
    inputs, params, wildcards = snakemake.input, snakemake.params, snakemake.wildcards
    key = {"strategy": wildcards.strategy, "size": int(wildcards.size),
           "fold": int(wildcards.fold), "repeat": repeat_of(wildcards.repeat)}
    subjects = EvaluationSubjects(
        test=list(inputs.test), validation=list(inputs.validation),
        unlabelled=list(inputs.unlabelled),
        truths=dict(zip(params.subjects, inputs.truths, strict=True)),
        brains=dict(zip(params.subjects, inputs.brains, strict=True)))
    outputs = EvaluationOutputs(**{name: Path(path) for name, path in snakemake.output.items()})
    evaluate_model_stage(Evaluation(Path(inputs.model), Path(inputs.card), key, device,
                                    params.precision), subjects, outputs, log)
