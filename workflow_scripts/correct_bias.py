"""Rule correct_bias: N4 (or N3) inside the brain mask, field kept for QC."""

from lesion_transfer.preprocess.stages import BiasCorrection, correct_bias_stage
from lesion_transfer.workflow import rule_log, use_threads, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    use_threads(snakemake.threads)
    settings = BiasCorrection(snakemake.params.method, snakemake.params.fit_resolution_mm)
    correct_bias_stage(settings, image=snakemake.input.image, mask=snakemake.input.mask,
                       out_image=snakemake.output.image, out_field=snakemake.output.field)
    log.info("%s: %s done", snakemake.wildcards.subject, snakemake.params.method)
