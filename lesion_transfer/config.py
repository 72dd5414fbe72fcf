"""The parts of the config that need more than the JSON Schema: roles, derived locations."""

from pathlib import Path

from lesion_transfer.io.layouts import BRATS_TRAINING, BRATS_VALIDATION


class ConfigError(ValueError):
    """A config that validates against the schema but cannot describe a study."""


def phantom_folder(results, name):
    return Path(results) / "phantoms" / name


def dataset_specs(config):
    """The used datasets' entries, with locations filled in where a phantom generates them.

    Also checks what the schema cannot: `use` names existing datasets, one source, one target.
    """
    unknown = [name for name in config["use"] if name not in config["datasets"]]
    if unknown:
        raise ConfigError(
            f"config key 'use': expected names of datasets under 'datasets', found "
            f"{', '.join(unknown)} (defined: {', '.join(config['datasets'])})"
        )
    specs = {name: _with_location(config, name) for name in config["use"]}
    roles = sorted(spec["role"] for spec in specs.values())
    if roles != ["source", "target"]:
        described = ", ".join(f"{name} ({spec['role']})" for name, spec in specs.items())
        raise ConfigError(
            f"config key 'use': expected one source and one target dataset, found {described}"
        )
    return specs


def _with_location(config, name):
    spec = dict(config["datasets"][name])
    phantom = spec.get("phantom")
    if phantom:
        _check_phantom_matches(name, spec)
        folder = phantom_folder(config["results"], name)
        if phantom["kind"] == "ms":
            spec["location"] = str(folder / "manifest.tsv")
        else:
            spec["location"] = str(folder / BRATS_TRAINING)
            spec["unlabelled_location"] = (
                str(folder / BRATS_VALIDATION) if phantom.get("unlabelled_subjects") else None
            )
    return spec


def _check_phantom_matches(name, spec):
    expected = {"ms": ("manifest", "source"), "glioma": ("brats", "target")}
    kind = spec["phantom"]["kind"]
    if (spec["format"], spec["role"]) != expected[kind]:
        raise ConfigError(
            f"config key 'datasets.{name}.phantom.kind': a '{kind}' phantom is written as "
            f"format '{expected[kind][0]}' with role '{expected[kind][1]}', found format "
            f"'{spec['format']}' and role '{spec['role']}'"
        )


def check_training_shapes(config):
    """Crop and patch sizes a UNet of the configured depth can take, checked before any job.

    The UNet pools depth - 1 times by 2, so every side must divide by 2^(depth - 1); a patch
    (also the inference window) must fit inside the cached crop.
    """
    depth = config["train"]["unet"]["depth"]
    step = 2 ** (depth - 1)
    crop = config["preprocess"]["crop_shape"]
    shapes = {"preprocess.crop_shape": crop}
    for stage in ("pretrain", "finetune"):
        if config["train"][stage].get("patch_size") is not None:
            shapes[f"train.{stage}.patch_size"] = config["train"][stage]["patch_size"]
    for key, shape in shapes.items():
        bad = [side for side in shape if side % step]
        if bad:
            fixed = [step * max(1, round(side / step)) for side in shape]
            raise ConfigError(
                f"config keys '{key}' {list(shape)} and 'train.unet.depth' {depth}: expected "
                f"every side to divide by 2^{depth - 1} = {step} (the UNet halves the volume "
                f"{depth - 1} times), found {', '.join(map(str, bad))}; for example {fixed}")
        if key != "preprocess.crop_shape" and any(p > c for p, c in zip(shape, crop)):
            raise ConfigError(
                f"config keys '{key}' {list(shape)} and 'preprocess.crop_shape' {list(crop)}: "
                f"expected a patch no larger than the cached crop on every side, found "
                f"{[p for p, c in zip(shape, crop) if p > c]} larger")


def check_strategies(config):
    """Strategy names against the registry, the one list of them."""
    from lesion_transfer.model.strategies import STRATEGIES

    unknown = [s for s in config["train"]["strategies"] if s not in STRATEGIES]
    if unknown:
        raise ConfigError(f"config key 'train.strategies': expected names among "
                          f"{', '.join(STRATEGIES)}, found {', '.join(unknown)}")


def role_of(specs, role):
    return next(name for name, spec in specs.items() if spec["role"] == role)


def sorted_keys(value):
    """The same value with every mapping's keys in sorted order.

    Snakemake compares a job's params with the last run's as text, so the same settings
    written in another key order (an edited or generated config file) would rerun jobs.
    """
    if isinstance(value, dict):
        return {key: sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(item) for item in value]
    return value
