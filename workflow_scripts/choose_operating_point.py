"""Rule choose_operating_point: thresholds per region on the fold's local validation set."""

from lesion_transfer.evaluate.stages import choose_operating_point_stage
from lesion_transfer.workflow import rule_log

with rule_log(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    choose_operating_point_stage(snakemake.input.probabilities, snakemake.input.validation,
                                 snakemake.output[0], log)
