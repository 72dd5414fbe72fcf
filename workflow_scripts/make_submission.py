"""Rule make_submission: the fold models' ensemble on the unlabelled cases, BraTS format."""

from lesion_transfer.evaluate.native import make_submission_stage
from lesion_transfer.workflow import rule_log, use_threads

with rule_log(snakemake.log[0]) as log:
    use_threads(snakemake.threads)
    make_submission_stage(snakemake.input.probabilities, snakemake.input.operating_points,
                          snakemake.input.subjects,
                          dict(zip(snakemake.params.subjects, snakemake.input.brains)),
                          snakemake.output[0], log)
