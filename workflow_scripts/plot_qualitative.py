"""Rule plot_qualitative: the same test subjects under every strategy at the smallest size."""

from lesion_transfer.report.settings import ReportSettings
from lesion_transfer.report.stages import plot_qualitative_stage
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    report = snakemake.params.report
    settings = ReportSettings.from_config(report, report["strategies"])
    # the strategies' order is input.labels'
    plot_qualitative_stage(dict(zip(settings.strategies, snakemake.input.labels)),
                           snakemake.input.test, snakemake.output[0], settings, log)
