"""Rule score_on_native_grid: test subjects' label maps on their own grids, scored there."""

from lesion_transfer.evaluate.native import score_on_native_grid_stage
from lesion_transfer.workflow import rule_log, use_threads

with rule_log(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    use_threads(snakemake.threads)
    wildcards, params = snakemake.wildcards, snakemake.params
    score_on_native_grid_stage(snakemake.input.labels, snakemake.input.test,
                               dict(zip(params.subjects, snakemake.input.truths)),
                               dict(zip(params.subjects, snakemake.input.brains)),
                               snakemake.output.native, snakemake.output.scores,
                               {"strategy": wildcards.strategy, "size": int(wildcards.size),
                                "fold": int(wildcards.fold)}, log)
