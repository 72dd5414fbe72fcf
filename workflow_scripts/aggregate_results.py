"""Rule aggregate_results: tables, paired tests and the learning curve over every model."""

from lesion_transfer.report.stages import aggregate_results_stage
from lesion_transfer.workflow import rule_log

with rule_log(snakemake.log[0]) as log:
    aggregate_results_stage(snakemake.input.scores, snakemake.input.template_scores,
                            snakemake.input.subjects,
                            snakemake.input.source, dict(snakemake.output.items()),
                            snakemake.params.report, log)
