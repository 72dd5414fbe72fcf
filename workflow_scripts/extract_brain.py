"""Rule extract_brain: a brain mask on the subject's T1 grid."""

from lesion_transfer.preprocess.stages import extract_brain_stage
from lesion_transfer.workflow import rule_log, use_threads, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    use_threads(snakemake.threads)
    given = snakemake.input.given_mask or None
    voxels = extract_brain_stage(snakemake.params.method, image=snakemake.input.image,
                                 out_mask=snakemake.output[0], given_mask=given)
    log.info("%s: %s mask, %d voxels", snakemake.wildcards.subject, snakemake.params.method,
             voxels)
