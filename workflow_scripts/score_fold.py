"""Rule score_fold: label maps of the fold's test subjects at the operating point, scored."""

from lesion_transfer.evaluate.stages import score_fold_stage
from lesion_transfer.workflow import rule_log

with rule_log(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    wildcards = snakemake.wildcards
    score_fold_stage(snakemake.input.probabilities, snakemake.input.operating_point,
                     snakemake.input.test, dict(snakemake.output.items()),
                     {"strategy": wildcards.strategy, "size": int(wildcards.size),
                 "fold": int(wildcards.fold)}, log)
