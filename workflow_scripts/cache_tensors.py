"""Rule cache_tensors: crop / pad to crop_shape; image.npy, label.npy, meta.json."""

from pathlib import Path

from lesion_transfer.preprocess.stages import cache_tensors_stage
from lesion_transfer.workflow import rule_log, use_threads

with rule_log(snakemake.log[0]) as log:
    use_threads(snakemake.threads)
    meta_extra = {"subject": snakemake.wildcards.subject,
                  "preprocessing": snakemake.params.preprocessing}
    cache_tensors_stage(snakemake.input.image, snakemake.input.label, snakemake.input.transforms,
                        snakemake.input.template_mask, snakemake.params.crop_shape, meta_extra,
                        Path(snakemake.output.meta).parent)
    log.info("%s cached", snakemake.wildcards.subject)
