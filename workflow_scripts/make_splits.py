"""Rule make_splits: source train/validation, or target folds, written to the splits file."""

from lesion_transfer.io.ingest import read_subjects_table
from lesion_transfer.splits import source_splits, target_splits, write_splits
from lesion_transfer.workflow import rule_log

with rule_log(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    dataset, settings = snakemake.wildcards.dataset, snakemake.params.splits
    rows = read_subjects_table(snakemake.input[0])
    if snakemake.params.role == "source":
        splits = source_splits(dataset, rows, settings["source_validation_fraction"],
                               snakemake.params.seed)
        log.info("%s: %d train, %d validation", dataset, len(splits["train"]),
                 len(splits["validation"]))
    else:
        splits = target_splits(dataset, rows, settings["folds"], settings["local_validation"],
                               settings["sizes"], snakemake.params.seed)
        log.info("%s: %d folds, sizes %s", dataset, len(splits["folds"]), settings["sizes"])
    write_splits(splits, snakemake.output[0])
