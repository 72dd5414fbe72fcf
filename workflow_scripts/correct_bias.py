"""Rule correct_bias: N4 (or N3) inside the brain mask, field kept for QC."""

from lesion_transfer.preprocess.stages import correct_bias_stage
from lesion_transfer.workflow import rule_log, use_threads

with rule_log(snakemake.log[0]) as log:
    use_threads(snakemake.threads)
    correct_bias_stage(snakemake.input.image, snakemake.input.mask, snakemake.params.method,
                       snakemake.output.image, snakemake.output.field,
                       snakemake.params.fit_resolution_mm)
    log.info("%s: %s done", snakemake.wildcards.subject, snakemake.params.method)
