"""Rule synthesize_cohort: write one phantom dataset in its real layout."""

from lesion_transfer.phantoms import PhantomSettings, synthesize_cohort
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    settings = PhantomSettings.from_config(snakemake.params.phantom, snakemake.params.seed)
    log.info("synthesising %s: %s", snakemake.wildcards.dataset, settings)
    synthesize_cohort(settings, snakemake.output[0], log=log.info)
