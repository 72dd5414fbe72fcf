"""Rule plot_qualitative: the same test subjects under every strategy at the smallest size."""

from lesion_transfer.report.stages import plot_qualitative_stage
from lesion_transfer.workflow import rule_log

with rule_log(snakemake.log[0]) as log:
    strategies = snakemake.params.report["strategies"]  # the order of input.labels
    plot_qualitative_stage(dict(zip(strategies, snakemake.input.labels)), snakemake.input.test,
                           snakemake.output[0], snakemake.params.report, log)
