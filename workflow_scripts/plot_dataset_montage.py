"""Rule plot_dataset_montage: a look at a dataset's first subjects as ingested."""

from lesion_transfer.report.montage import plot_dataset_montage
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    plot_dataset_montage(snakemake.input[0], snakemake.output[0], snakemake.params.subjects,
                         title=snakemake.wildcards.dataset)
    log.info("wrote %s", snakemake.output[0])
