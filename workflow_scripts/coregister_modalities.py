"""Rule coregister_modalities: every modality (and the label) onto the subject's T1 grid."""

from lesion_transfer.preprocess.stages import coregister_modalities_stage
from lesion_transfer.workflow import rule_log, use_threads, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    use_threads(snakemake.threads)  # 1: a seeded registration must run single-threaded
    report = coregister_modalities_stage(
        snakemake.params.label_scheme, snakemake.params.seed, raw=dict(snakemake.input.items()),
        out_image=snakemake.output.image, out_label=snakemake.output.label)
    log.info("%s: %s", snakemake.wildcards.subject, report)
