"""Rule aggregate_results: tables, paired tests and the learning curve over every model."""

from lesion_transfer.report.settings import ReportSettings
from lesion_transfer.report.stages import StudyScores, aggregate_results_stage
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    inputs = snakemake.input
    report = snakemake.params.report
    aggregate_results_stage(ReportSettings.from_config(report, report["strategies"]),
                            StudyScores(inputs.scores, inputs.template_scores, inputs.subjects,
                                        inputs.source),
                            dict(snakemake.output.items()), log)
