"""Rule check_datasets_disjoint: no scan (by path or bytes) in two datasets of the study."""

from lesion_transfer.io.atomic import write_tsv
from lesion_transfer.io.ingest import check_datasets_disjoint
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    tables = dict(zip(snakemake.params.datasets, snakemake.input, strict=True))
    scans = check_datasets_disjoint(tables, threads=snakemake.threads)
    write_tsv([{"dataset": name, "scans_checked": n} for name, n in scans.items()],
              snakemake.output[0])
    log.info("%d scans of %d datasets: none in two of them", sum(scans.values()), len(scans))
