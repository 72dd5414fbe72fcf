# Input functions, wildcard constraints and the config helpers every rule file uses.

from lesion_transfer.config import dataset_specs


DATASET_SPECS = dataset_specs(config)
DATASETS = list(DATASET_SPECS)


wildcard_constraints:
    dataset="|".join(DATASETS),
    subject=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",


def results(path):
    """A path inside the configured results folder."""
    return f"{config['results']}/{path}"


def is_phantom(dataset):
    return bool(DATASET_SPECS[dataset].get("phantom"))


def ingest_inputs(wildcards):
    """A phantom's generated folder, or the user's own files where the dataset lives."""
    spec = DATASET_SPECS[wildcards.dataset]
    if is_phantom(wildcards.dataset):
        return {"data": results(f"phantoms/{wildcards.dataset}")}
    inputs = {"data": spec["location"]}
    if spec.get("unlabelled_location"):
        inputs["unlabelled"] = spec["unlabelled_location"]
    if spec.get("grade_mapping"):
        inputs["grade_mapping"] = spec["grade_mapping"]["path"]
    return inputs


def phantom_params(wildcards):
    return DATASET_SPECS[wildcards.dataset]["phantom"]
