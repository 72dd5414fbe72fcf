"""Rule make_splits: source train/validation, or target folds, written to the splits file."""

from lesion_transfer.splits import Splitting, describe, make_splits_stage
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    dataset = snakemake.wildcards.dataset
    splitting = Splitting(dataset, snakemake.params.role, snakemake.params.splits,
                          snakemake.params.seed)
    splits = make_splits_stage(splitting, subjects_table=snakemake.input[0],
                               out_path=snakemake.output[0])
    log.info("%s: %s", dataset, describe(splits))
