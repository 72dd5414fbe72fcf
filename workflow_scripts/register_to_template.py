"""Rule register_to_template: ANTs registration of the T1, every channel warped, QC measured."""

from lesion_transfer.preprocess.stages import (
    Registered,
    Registration,
    Template,
    register_to_template_stage,
)
from lesion_transfer.workflow import rule_log, use_threads, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    use_threads(snakemake.threads)  # 1: a seeded registration must run single-threaded
    inputs, out = snakemake.input, snakemake.output
    measures = register_to_template_stage(
        Registration(snakemake.params.transform, snakemake.params.seed), image=inputs.image,
        mask=inputs.mask, template=Template(inputs.template, inputs.template_mask),
        outputs=Registered(out.image, out.mask, out.transforms, out.qc))
    log.info("%s: %s", snakemake.wildcards.subject, measures)
