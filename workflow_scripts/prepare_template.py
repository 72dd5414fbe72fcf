"""Rule prepare_template: the template (and its brain mask) at the working spacing."""

from lesion_transfer.preprocess.stages import prepare_template_stage
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    prepare_template_stage(snakemake.params.spacing_mm, template=snakemake.params.template,
                           template_mask=snakemake.params.template_mask,
                           out_template=snakemake.output.template,
                           out_mask=snakemake.output.mask)
    log.info("template at %s mm", snakemake.params.spacing_mm)
