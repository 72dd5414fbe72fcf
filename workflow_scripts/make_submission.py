"""Rule make_submission: the fold models' ensemble on the unlabelled cases, BraTS format."""

from lesion_transfer.evaluate.native import Ensemble, make_submission_stage
from lesion_transfer.workflow import rule_log, use_threads, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    use_threads(snakemake.threads)
    inputs = snakemake.input
    make_submission_stage(Ensemble(inputs.probabilities, inputs.operating_points), log,
                          subjects=inputs.subjects,
                          brains=dict(zip(snakemake.params.subjects, inputs.brains, strict=True)),
                          output_folder=snakemake.output[0])
