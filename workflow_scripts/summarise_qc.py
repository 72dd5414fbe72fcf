"""Rule summarise_qc: one row per subject, robust outlier flags."""

from lesion_transfer.preprocess.stages import summarise_qc_stage
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    rows = summarise_qc_stage(dict(zip(snakemake.params.subjects, snakemake.input)),
                              snakemake.output[0])
    flagged = [row["subject"] for row in rows if row["outlier"]]
    log.info("%d subjects, outliers: %s", len(rows), ", ".join(flagged) or "none")
