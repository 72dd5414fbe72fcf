"""Rule warp_predictions_to_native: test subjects' label maps on their own grids."""

from lesion_transfer.evaluate.native import warp_predictions_to_native_stage
from lesion_transfer.workflow import rule_log, use_threads

with rule_log(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    use_threads(snakemake.threads)
    warp_predictions_to_native_stage(snakemake.input.labels, snakemake.input.test,
                                     snakemake.output[0], log)
