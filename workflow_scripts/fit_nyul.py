"""Rule fit_nyul: the standard scale per modality, from the source's training subjects only."""

from lesion_transfer.preprocess.stages import fit_nyul_stage
from lesion_transfer.splits import fitting_subjects, read_splits
from lesion_transfer.workflow import rule_log, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    subjects = fitting_subjects(read_splits(snakemake.input.splits))
    fit_nyul_stage(subjects, images=snakemake.input.images, masks=snakemake.input.masks,
                   out_paths=list(snakemake.output))
    log.info("fitted on %d training subjects: %s", len(subjects), ", ".join(subjects))
