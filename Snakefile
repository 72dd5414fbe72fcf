# lesion-transfer: a transfer-learning study for brain pathology segmentation
# (Kaur et al., MICCAI DART 2019), from raw MRI to result tables.
#
#   snakemake --cores 8 --resources gpu=1                 # the embedded phantom study
#   snakemake --configfile configs/paper.yaml ...         # your data; see README.md

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/splits.smk"
include: "rules/preprocess.smk"
include: "rules/train.smk"


rule all:
    input:
        expand(results("subjects/{dataset}.tsv"), dataset=DATASETS),
        expand(results("qc/{dataset}/raw_montage.png"), dataset=DATASETS),
        expand(results("splits/{dataset}.json"), dataset=DATASETS),
        expand(results("qc/{dataset}/preprocessing_qc.tsv"), dataset=DATASETS),
        cached_subjects,
        trained_models,
    default_target: True
