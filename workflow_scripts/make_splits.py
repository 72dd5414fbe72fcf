"""Rule make_splits: source train/validation, or target folds, written to the splits file."""

from lesion_transfer.io.ingest import read_subjects_table
from lesion_transfer.splits import describe, splits_for, write_splits
from lesion_transfer.workflow import rule_log

with rule_log(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    dataset = snakemake.wildcards.dataset
    splits = splits_for(snakemake.params.role, dataset, read_subjects_table(snakemake.input[0]),
                        snakemake.params.splits, snakemake.params.seed)
    write_splits(splits, snakemake.output[0])
    log.info("%s: %s", dataset, describe(splits))
