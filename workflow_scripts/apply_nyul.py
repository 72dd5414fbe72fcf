"""Rule apply_nyul: map a subject onto the source's standard scale."""

from lesion_transfer.preprocess.stages import apply_nyul_stage
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    apply_nyul_stage(image=snakemake.input.image, mask=snakemake.input.mask,
                     scales=snakemake.input.scales, out_image=snakemake.output[0])
    log.info("%s standardised", snakemake.wildcards.subject)
