"""Rule make_splits: source train/validation, or target folds, written to the splits file."""

from lesion_transfer.splits import describe, make_splits_stage
from lesion_transfer.workflow import rule_log

with rule_log(snakemake.log[0]) as log:
    dataset = snakemake.wildcards.dataset
    splits = make_splits_stage(snakemake.params.role, dataset, snakemake.input[0],
                               snakemake.params.splits, snakemake.params.seed,
                               snakemake.output[0])
    log.info("%s: %s", dataset, describe(splits))
