"""Rule normalise_intensity: z-score inside the brain, remapped to [0, 1]."""

from lesion_transfer.preprocess.stages import normalise_intensity_stage
from lesion_transfer.workflow import rule_log

with rule_log(snakemake.log[0]) as log:
    normalise_intensity_stage(image=snakemake.input.image, mask=snakemake.input.mask,
                              out_image=snakemake.output[0])
    log.info("%s normalised", snakemake.wildcards.subject)
