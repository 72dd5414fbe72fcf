"""Rule ingest_dataset: check every subject of a dataset and write its subjects table."""

from lesion_transfer.config import with_manifest_columns
from lesion_transfer.io.ingest import ingest_dataset, write_subjects_table
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    dataset = snakemake.wildcards.dataset
    subjects = ingest_dataset(dataset, with_manifest_columns(snakemake.params.spec),
                              threads=snakemake.threads)
    write_subjects_table(subjects, snakemake.output[0])
    labelled = sum(s.labelled for s in subjects)
    log.info("%s: %d subjects (%d labelled) checked", dataset, len(subjects), labelled)
