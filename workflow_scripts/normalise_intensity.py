"""Rule normalise_intensity: each channel to the study's intensity scale (preprocess.intensity:
the paper's z-score in the brain remapped to [0, 1], or the z-score alone)."""

from lesion_transfer.preprocess.stages import normalise_intensity_stage
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    # params hold the scale only where it is not the paper's (rules/common.smk)
    normalise_intensity_stage(image=snakemake.input.image, mask=snakemake.input.mask,
                              out_image=snakemake.output[0], **dict(snakemake.params.items()))
    log.info("%s normalised", snakemake.wildcards.subject)
