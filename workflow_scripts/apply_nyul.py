"""Rule apply_nyul: map a subject onto the source's standard scale."""

from lesion_transfer.preprocess.stages import apply_nyul_stage
from lesion_transfer.workflow import rule_log

with rule_log(snakemake.log[0]) as log:
    apply_nyul_stage(snakemake.input.image, snakemake.input.mask, snakemake.input.scales,
                     snakemake.output[0])
    log.info("%s standardised", snakemake.wildcards.subject)
