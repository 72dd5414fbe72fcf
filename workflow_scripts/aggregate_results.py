"""Rule aggregate_results: tables, paired tests and the learning curve over every model."""

from lesion_transfer.report.stages import StudyScores, aggregate_results_stage
from lesion_transfer.workflow import rule_log

with rule_log(snakemake.log[0]) as log:
    inputs = snakemake.input
    aggregate_results_stage(snakemake.params.report,
                            StudyScores(inputs.scores, inputs.template_scores, inputs.subjects,
                                        inputs.source),
                            dict(snakemake.output.items()), log)
