"""Rule cache_tensors: crop / pad to crop_shape; image.npy, label.npy, meta.json."""

from pathlib import Path

from lesion_transfer.preprocess.stages import Caching, cache_tensors_stage
from lesion_transfer.workflow import rule_log, use_threads, yield_cpu_to_training

with rule_log(snakemake.log[0]) as log:
    yield_cpu_to_training()
    use_threads(snakemake.threads)
    settings = Caching(tuple(snakemake.params.crop_shape), snakemake.input.template_mask,
                       {"subject": snakemake.wildcards.subject,
                        "preprocessing": snakemake.params.preprocessing})
    cache_tensors_stage(settings, image=snakemake.input.image, native_label=snakemake.input.label,
                        transforms=snakemake.input.transforms,
                        out_folder=Path(snakemake.output.meta).parent)
    log.info("%s cached", snakemake.wildcards.subject)
