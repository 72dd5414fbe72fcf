"""Rule describe_source: another framework's source model, described for the report."""

from lesion_transfer.evaluate.stages import describe_source_stage
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    source = describe_source_stage(snakemake.params.path, snakemake.params.fold,
                                   snakemake.output[0])
    log.info("%s source %s described", source.framework, source.path)
