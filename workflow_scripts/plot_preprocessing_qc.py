"""Rule plot_preprocessing_qc: a montage of the key stages of one subject."""

from pathlib import Path

from lesion_transfer.report.qc import PreprocessingChain, plot_preprocessing_qc
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    i = snakemake.input
    chain = PreprocessingChain(i.coregistered, i.mask, i.bias_corrected, i.registered,
                               i.template, Path(i.cache).parent)
    plot_preprocessing_qc(snakemake.wildcards.subject, chain, snakemake.output[0])
    log.info("wrote %s", snakemake.output[0])
