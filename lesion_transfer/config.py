"""The parts of the config that need more than the JSON Schema: roles, derived locations."""

import functools
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lesion_transfer.errors import Refusal
from lesion_transfer.io.layouts import BRATS_TRAINING, BRATS_VALIDATION


class ConfigError(Refusal):
    """A config that validates against the schema but cannot describe a study."""


# a validated config, and one dataset's entry in it: nested YAML mappings, as Snakemake
# hands them to the workflow; the schema (schemas/config.schema.yaml) describes their keys
Config = dict[str, Any]
DatasetSpec = dict[str, Any]


def phantom_folder(results: str | Path, name: str) -> Path:
    return Path(results) / "phantoms" / name


def dataset_specs(config: Config) -> dict[str, DatasetSpec]:
    """The used datasets' entries, with locations filled in where a phantom generates them.

    Also checks what the schema cannot: `use` names existing datasets, one source, one target
    and at most one control (the positive control's pretraining set), and no two phantoms
    that would generate the same subjects.
    """
    unknown = [name for name in config["use"] if name not in config["datasets"]]
    if unknown:
        raise ConfigError(
            f"config key 'use': expected names of datasets under 'datasets', found "
            f"{', '.join(unknown)} (defined: {', '.join(config['datasets'])})"
        )
    specs = {name: _with_location(config, name) for name in config["use"]}
    roles = sorted(spec["role"] for spec in specs.values())
    if roles not in (["source", "target"], ["control", "source", "target"]):
        described = ", ".join(f"{name} ({spec['role']})" for name, spec in specs.items())
        raise ConfigError(
            f"config key 'use': expected one source and one target dataset (and at most one "
            f"control), found {described}"
        )
    _check_distinct_phantoms(specs, config["seed"])
    _check_user_files(specs)
    return specs


def _user_files(name: str, spec: DatasetSpec) -> Iterator[tuple[str, str]]:
    """(config key, path) of the files and folders a user's dataset names."""
    yield f"datasets.{name}.location", spec["location"]
    if spec.get("unlabelled_location"):
        yield f"datasets.{name}.unlabelled_location", spec["unlabelled_location"]
    if spec.get("grade_mapping"):
        yield f"datasets.{name}.grade_mapping.path", spec["grade_mapping"]["path"]


def _check_user_files(specs: Mapping[str, DatasetSpec]) -> None:
    """A user's data exists, and no two datasets of a study read the same folder: a control
    or source that is the target (or holds it, or lies inside it) would leak its subjects."""
    seen: dict[str, Path] = {}
    for name, spec in specs.items():
        if spec.get("phantom"):
            continue
        for key, path in _user_files(name, spec):
            if not Path(path).exists():
                raise ConfigError(f"config key '{key}': expected the dataset's files at "
                                  f"{path}, found nothing there")
        # a BraTS folder holds its subjects; a manifest lists files that may lie anywhere
        location = Path(spec["location"]).resolve()
        for other, other_location in seen.items():
            nested = location.is_dir() and other_location.is_dir() and (
                other_location in location.parents or location in other_location.parents)
            if location == other_location or nested:
                raise ConfigError(
                    f"config keys 'datasets.{other}.location' and 'datasets.{name}.location': "
                    f"expected each dataset of a study in a place of its own, found "
                    f"{other_location} and {location}" + (", one inside the other" if nested
                                                          else "") +
                    " (their subjects would be in both)")
        seen[name] = location


def _check_distinct_phantoms(specs: Mapping[str, DatasetSpec], seed: int) -> None:
    """Phantom subjects are deterministic from (seed, subject id): two cohorts of one kind with
    one seed would share subjects, and a control cohort would hold the target's test cases."""
    seen: dict[tuple[str, int], str] = {}
    for name, spec in specs.items():
        phantom = spec.get("phantom")
        if not phantom:
            continue
        key = (phantom["kind"], phantom.get("seed", seed))
        if key in seen:
            raise ConfigError(
                f"config keys 'datasets.{seen[key]}.phantom' and 'datasets.{name}.phantom': "
                f"expected different seeds for two {key[0]} phantoms, found seed {key[1]} for "
                f"both (they would generate the same subjects); set phantom.seed on one")
        seen[key] = name


def _with_location(config: Config, name: str) -> DatasetSpec:
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


def _check_phantom_matches(name: str, spec: DatasetSpec) -> None:
    expected = {"ms": ("manifest", ("source",)), "glioma": ("brats", ("target", "control"))}
    kind = spec["phantom"]["kind"]
    layout, roles = expected[kind]
    if spec["format"] != layout or spec["role"] not in roles:
        raise ConfigError(
            f"config key 'datasets.{name}.phantom.kind': a '{kind}' phantom is written as "
            f"format '{layout}' with role {' or '.join(map(repr, roles))}, found format "
            f"'{spec['format']}' and role '{spec['role']}'"
        )
    if kind == "ms" and spec["phantom"].get("tumour_jitter") is not None:
        raise ConfigError(
            f"config key 'datasets.{name}.phantom.tumour_jitter': a glioma phantom's key (it "
            f"varies tumour compartments), found on an 'ms' phantom, whose lesions have none; "
            f"remove it (tissue_jitter varies an ms phantom's tissues)"
        )


# The training blocks of train: the source's pretraining, the positive control's (the same,
# but for what train.control_pretrain changes) and every fine-tuning arm's.
TRAINING_BLOCKS = ("pretrain", "control_pretrain", "finetune")


def complete_control_pretraining(config: Config, schema_path: str | Path) -> None:
    """`train.control_pretrain` holds only what differs from `train.pretrain`; here it becomes
    the whole block (the pretrain block with those keys over it, nested objects merged),
    validated as a training block, so that every later check and the rule's params see
    complete settings. Running it again on a completed config changes nothing."""
    train = config["train"]
    block = _merged(train["pretrain"], train.get("control_pretrain", {}))
    problem = schema_violation(block, schema_path, "training", "train.control_pretrain")
    if problem:
        raise ConfigError(problem)
    train["control_pretrain"] = block


def _merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if nested else value
    return merged


def check_training_shapes(config: Config) -> None:
    """Crop and patch sizes a UNet of the configured depth can take, checked before any job.

    The UNet pools depth - 1 times by 2, so every side must divide by 2^(depth - 1); a patch
    (also the inference window) must fit inside the cached crop.
    """
    depth = config["train"]["unet"]["depth"]
    step = 2 ** (depth - 1)
    crop = config["preprocess"]["crop_shape"]
    shapes = {"preprocess.crop_shape": crop}
    for stage in TRAINING_BLOCKS:
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


def check_strategies(config: Config) -> None:
    """Strategy names against the registry, the one list of them."""
    from lesion_transfer.model.strategies import STRATEGIES

    unknown = [s for s in config["train"]["strategies"] if s not in STRATEGIES]
    if unknown:
        raise ConfigError(f"config key 'train.strategies': expected names among "
                          f"{', '.join(STRATEGIES)}, found {', '.join(unknown)}")
    needs_control = [s for s in config["train"]["strategies"]
                     if STRATEGIES[s].source == "positive"]
    controls = [n for n in config["use"] if config["datasets"][n]["role"] == "control"]
    reserve = config["splits"]["control_reserve"]
    if controls and reserve:
        raise ConfigError(
            f"config keys 'splits.control_reserve' and 'use': expected one pretraining set "
            f"for the positive control, found both a reserve of {reserve} target subjects "
            f"and the dataset {controls[0]} with role 'control': set the reserve to 0 or "
            f"leave {controls[0]} out of 'use'")
    if needs_control and not controls and not reserve:
        raise ConfigError(
            f"config keys 'train.strategies' and 'use': the arm {needs_control[0]} is "
            f"pretrained on a dataset with role 'control' (the target's task on other "
            f"subjects), found none among {', '.join(config['use'])}: add one to 'use', "
            f"hold target subjects out of the folds for it with 'splits.control_reserve', "
            f"or leave {needs_control[0]} out of 'train.strategies'")


def check_precision(config: Config) -> None:
    """fp16 with `train.device: cpu` is refused at DAG build (with `auto` the device, and so
    the refusal, is only known in the job)."""
    from lesion_transfer.devices import resolve_precision

    device = config["train"]["device"]
    if device == "cpu":
        try:
            resolve_precision(config["train"]["precision"], device)
        except ValueError as error:
            raise ConfigError(f"{error} (config key 'train.device' is cpu)") from None


def check_weight_choice(config: Config) -> None:
    """keep, patience and weight_average_epochs of each training block, taken together."""
    for stage in TRAINING_BLOCKS:
        block, key = config["train"][stage], f"train.{stage}"
        if block["keep"] == "last" and block["patience"] is not None:
            raise ConfigError(
                f"config keys '{key}.keep' and '{key}.patience': keep 'last' trains every "
                f"epoch and keeps the last, so early stopping has nothing to stop; expected "
                f"patience null, found {block['patience']}")
        averaged = block["weight_average_epochs"]
        if averaged > 1 and block["keep"] != "last":
            raise ConfigError(
                f"config keys '{key}.weight_average_epochs' and '{key}.keep': averaging the "
                f"last {averaged} epochs' weights needs keep 'last', found "
                f"'{block['keep']}'")
        if averaged > block["epochs"]:
            raise ConfigError(
                f"config keys '{key}.weight_average_epochs' and '{key}.epochs': expected at "
                f"most the {block['epochs']} epochs trained, found {averaged}")


# The schema in this checkout: the workflow passes its own path; tests and benchmarks use this.
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


@functools.lru_cache(maxsize=None)
def load_schema(schema_path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """The config's JSON Schema, read once per process (every check that walks it shares it)."""
    import yaml

    return yaml.safe_load(Path(schema_path).read_text())


def defaults_of(schema_object: Mapping[str, Any]) -> dict[str, Any]:
    """An object's defaults, nested objects (train.*.augmentation) filled in too."""
    return {key: defaults_of(value) if "properties" in value else value["default"]
            for key, value in schema_object["properties"].items() if "default" in value}


def schema_defaults(definition: str, **overrides: Any) -> dict[str, Any]:
    """One of the schema's definitions (`training`: a train.pretrain / train.finetune block;
    `phantom`: a dataset's phantom block) as a validated config holds it: the schema's
    defaults, the one owner of every default, with `overrides`. For code that builds settings
    outside a workflow run: tests and benchmarks."""
    return {**defaults_of(load_schema()["$defs"][definition]), **overrides}


def with_manifest_columns(spec: DatasetSpec) -> DatasetSpec:
    """A dataset's entry with every manifest column named: the schema's defaults for those
    the entry leaves out. Filled where the entry is used, not in the validated config, because
    the entry is ingestion's params: a key added there would rerun every finished study."""
    if spec["format"] != "manifest":
        return spec
    defaults = defaults_of(load_schema()["$defs"]["dataset"]["properties"]["columns"])
    return {**spec, "columns": {**defaults, **(spec.get("columns") or {})}}


def schema_violation(config: Any, schema_path: str | Path, definition: str | None = None,
                     key: str = "") -> str | None:
    """The config's most telling schema violation in one line that names the key (jsonschema's
    best match); None when the config is valid. definition: check `config` against one of the
    schema's $defs instead, as the value of the config key `key`."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    schema = load_schema(schema_path)
    if definition is not None:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    error = best_match(Draft202012Validator(schema).iter_errors(config))
    if error is None:
        return None
    key = ".".join([*([key] if key else []), *map(str, error.absolute_path)])
    where = "/".join(Path(schema_path).parts[-2:])
    return (f"config key '{key}'" if key else "config") + (
        f": {error.message} (what {where} allows there)")


def check_results_folder(config: Config, workdir: str | Path) -> None:
    """`results` must be a folder of its own: every output, and `--delete-all-output`, go
    there, so the filesystem's root or the workflow's own folder would be written over."""
    results = config["results"]
    if not results.strip():
        raise ConfigError("config key 'results': expected a folder for every output, found "
                          "an empty path")
    folder, workdir = (Path(workdir) / results).resolve(), Path(workdir).resolve()
    if folder == Path(folder.anchor):
        raise ConfigError(f"config key 'results': expected a folder for every output, found "
                          f"'{results}', the filesystem's root")
    if folder == workdir or folder in workdir.parents:
        raise ConfigError(
            f"config key 'results': expected a folder of its own, found '{results}' "
            f"({folder}), which holds the workflow's working directory {workdir}; for "
            f"example 'results'")


def check_baseline(config: Config) -> None:
    """The arm every other is compared with must be one the study trains."""
    baseline, arms = config["report"]["baseline"], config["train"]["strategies"]
    if baseline not in arms:
        raise ConfigError(
            f"config keys 'report.baseline' and 'train.strategies': expected the baseline "
            f"to be one of the study's arms ({', '.join(arms)}), found '{baseline}'")


def check_finite_numbers(value: Any, key: str = "") -> None:
    """YAML reads .inf and .nan as numbers, and JSON Schema's bounds let NaN through:
    refuse them anywhere in the config, naming the key."""
    if isinstance(value, dict):
        for name, item in value.items():
            check_finite_numbers(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_finite_numbers(item, f"{key}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{key}': expected a finite number, found {value}")


def check_ranges(config: Config, schema_path: str | Path) -> None:
    """Every value the schema types as a range ([low, high]) has low <= high."""
    schema = load_schema(schema_path)
    for key, (low, high) in _ranges(config, schema, schema, ""):
        if low > high:
            raise ConfigError(f"config key '{key}': expected a range [low, high] with low <= "
                              f"high, found [{low}, {high}]")


def _ranges(value: Any, node: Mapping[str, Any], schema: Mapping[str, Any], key: str
            ) -> Iterator[tuple[str, Any]]:
    """(key, value) of every range in `value`, walking the schema node that describes it."""
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    refs = {part.get("$ref") for part in node.get("allOf", [])}
    if refs & {"#/$defs/range", "#/$defs/positive_range"}:
        yield key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            child = node.get("properties", {}).get(name, node.get("additionalProperties"))
            if isinstance(child, dict):
                yield from _ranges(item, child, schema, f"{key}.{name}" if key else name)


def role_of(specs: Mapping[str, DatasetSpec], role: str) -> str | None:
    """The dataset of a role; None for an optional role (control) that no dataset has."""
    return next((name for name, spec in specs.items() if spec["role"] == role), None)


def sorted_keys(value: Any) -> Any:
    """The same value with every mapping's keys in sorted order.

    Snakemake compares a job's params with the last run's as text, so the same settings
    written in another key order (an edited or generated config file) would rerun jobs.
    """
    if isinstance(value, dict):
        return {key: sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(item) for item in value]
    return value
