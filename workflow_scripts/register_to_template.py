"""Rule register_to_template: ANTs registration of the T1, every channel warped, QC measured."""

from lesion_transfer.preprocess.stages import register_to_template_stage
from lesion_transfer.workflow import rule_log, use_threads

with rule_log(snakemake.log[0]) as log:
    use_threads(snakemake.threads)  # 1: a seeded registration must run single-threaded
    out = snakemake.output
    measures = register_to_template_stage(snakemake.input.image, snakemake.input.mask,
                                          snakemake.input.template, snakemake.input.template_mask,
                                          snakemake.params.transform, snakemake.params.seed,
                                          out.image, out.mask,
                                          out.transforms, out.qc)
    log.info("%s: %s", snakemake.wildcards.subject, measures)
