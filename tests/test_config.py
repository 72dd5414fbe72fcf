"""The config checks the schema cannot make: datasets and roles, shapes for the UNet, strategy
names from the registry, key order that must not rerun anything."""

import copy
import math
import re

import pytest
import yaml
from conftest import REPO

from lesion_transfer.config import (
    ConfigError,
    check_baseline,
    check_finite_numbers,
    check_precision,
    check_ranges,
    check_results_folder,
    check_strategies,
    check_training_shapes,
    dataset_specs,
    schema_violation,
    sorted_keys,
)

SCHEMA = REPO / "schemas" / "config.schema.yaml"


@pytest.fixture
def config():
    """configs/ci.yaml over config.yaml, with the schema's defaults, as the Snakefile sees it."""
    import jsonschema

    merged = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in yaml.safe_load((REPO / "configs" / "ci.yaml").read_text()).items():
        if isinstance(value, dict) and key in merged:
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    validator = jsonschema.validators.extend(
        jsonschema.Draft202012Validator,
        {"properties": _filling_defaults(jsonschema.Draft202012Validator)})
    validator(schema).validate(merged)
    return merged


def _filling_defaults(base):
    validate_properties = base.VALIDATORS["properties"]

    def fill(validator, properties, instance, schema):
        for name, sub in properties.items():
            if "default" in sub and isinstance(instance, dict):
                instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return fill


def test_the_tiny_config_passes_every_check(config):
    specs = dataset_specs(config)
    assert [specs[n]["role"] for n in config["use"]] == ["source", "target", "control"]
    assert specs["brats_phantom"]["location"].endswith("MICCAI_BraTS_2018_Data_Training")
    check_training_shapes(config)
    check_strategies(config)
    check_precision(config)


@pytest.mark.parametrize("crop, depth, ok", [([60, 48, 48], 3, True), ([61, 48, 48], 3, False),
                                             ([60, 48, 48], 4, False), ([64, 48, 48], 4, True)])
def test_crop_sides_must_halve_depth_minus_one_times(config, crop, depth, ok):
    config["preprocess"]["crop_shape"] = crop
    config["train"]["unet"]["depth"] = depth
    for stage in ("pretrain", "finetune"):
        config["train"][stage]["patch_size"] = [16, 16, 16]
    if ok:
        check_training_shapes(config)
    else:
        with pytest.raises(ConfigError, match="'preprocess.crop_shape'"):
            check_training_shapes(config)


def test_a_whole_volume_patch_is_accepted(config):
    config["train"]["finetune"]["patch_size"] = None
    check_training_shapes(config)


def test_use_needs_one_source_and_one_target(config):
    config["use"] = ["ms_phantom", "ms_phantom"]
    with pytest.raises(ConfigError, match="one source and one target"):
        dataset_specs(config)


def test_the_positive_control_needs_a_control_dataset(config):
    config["use"] = ["ms_phantom", "brats_phantom"]
    with pytest.raises(ConfigError, match="positive_control") as caught:
        check_strategies(config)
    assert "role 'control'" in str(caught.value)
    config["train"]["strategies"] = ["scratch", "ft_all", "negative_control"]
    check_strategies(config)  # the negative control scrambles the source: no control dataset


def test_a_target_reserve_stands_in_for_a_control_dataset_but_not_beside_one(config):
    config["splits"]["control_reserve"] = 4
    with pytest.raises(ConfigError, match="'splits.control_reserve' and 'use'") as caught:
        check_strategies(config)  # a control dataset too: which one would it pretrain on?
    assert "glioma_control_phantom" in str(caught.value) and "found both" in str(caught.value)
    config["use"] = ["ms_phantom", "brats_phantom"]
    check_strategies(config)  # the positive control pretrains on the target's reserve


def test_two_phantoms_that_would_share_subjects_are_refused(config):
    """Phantom subjects follow from (seed, id): a control cohort with the target's seed would
    hold the target's own test subjects."""
    del config["datasets"]["glioma_control_phantom"]["phantom"]["seed"]
    with pytest.raises(ConfigError, match="brats_phantom.*glioma_control_phantom.*seed"):
        dataset_specs(config)


def test_a_glioma_phantoms_key_on_an_ms_phantom_is_refused(config):
    """tumour_jitter varies tumour compartments; an ms phantom would ignore it silently."""
    dataset_specs(config)
    config["datasets"]["ms_phantom"]["phantom"]["tumour_jitter"] = 0.25
    with pytest.raises(ConfigError, match=r"'datasets.ms_phantom.phantom.tumour_jitter'.*"
                                          r"found on an 'ms' phantom"):
        dataset_specs(config)


def test_unknown_strategy_names_the_registry(config):
    config["train"]["strategies"] = ["scratch", "fine_tune_everything"]
    with pytest.raises(ConfigError, match="fine_tune_everything") as caught:
        check_strategies(config)
    assert "ft_all" in str(caught.value)


def test_key_order_does_not_change_the_config():
    assert list(sorted_keys({"b": {"d": 1, "c": [{"f": 1, "e": 2}]}, "a": 0})) == ["a", "b"]
    assert list(sorted_keys({"b": {"d": 1, "c": 2}})["b"]) == ["c", "d"]


def test_fp16_on_a_cpu_device_is_refused_before_any_job(config):
    config["train"].update(device="cpu", precision="fp16")
    with pytest.raises(ConfigError, match="'train.precision': fp16 needs a CUDA device, found "
                                          "cpu.*'train.device' is cpu"):
        check_precision(config)
    for allowed in ({"device": "cpu", "precision": "bf16"},
                    {"device": "auto", "precision": "fp16"},  # the job decides
                    {"device": "cuda", "precision": "fp16"}):
        config["train"].update(allowed)
        check_precision(config)


@pytest.mark.parametrize("block, message", [
    ({"keep": "last", "patience": 4}, "'train.finetune.keep' and 'train.finetune.patience'"),
    ({"weight_average_epochs": 3}, "needs keep 'last', found 'best'"),
    ({"keep": "last", "weight_average_epochs": 30, "epochs": 24},
     "expected at most the 24 epochs trained, found 30"),
])
def test_a_weight_choice_that_cannot_hold_is_refused(block, message):
    from conftest import schema_training_block

    from lesion_transfer.config import ConfigError, check_weight_choice

    config = {"train": {"pretrain": schema_training_block(),
                        "control_pretrain": schema_training_block(),
                        "finetune": schema_training_block(**block)}}
    with pytest.raises(ConfigError, match=message):
        check_weight_choice(config)
    config["train"]["finetune"] = schema_training_block()
    check_weight_choice(config)


@pytest.mark.parametrize("results, found", [
    ("", "found an empty path"),
    ("  ", "found an empty path"),
    ("/", "found '/', the filesystem's root"),
    ("/..", "found '/..', the filesystem's root"),
    (".", "found '.' ("),
    ("..", "found '..' ("),
])
def test_a_results_folder_that_would_write_over_other_files_is_refused(config, tmp_path,
                                                                        results, found):
    config["results"] = results
    with pytest.raises(ConfigError, match=rf"config key 'results': expected .*{re.escape(found)}"):
        check_results_folder(config, tmp_path / "workflow")
    for fine in ("results", "../elsewhere/results", str(tmp_path / "study")):
        config["results"] = fine
        check_results_folder(config, tmp_path / "workflow")


def test_a_baseline_that_is_not_an_arm_is_refused(config):
    check_baseline(config)
    config["report"]["baseline"] = "scrach"
    with pytest.raises(ConfigError, match=r"'report.baseline' and 'train.strategies': expected "
                                          r"the baseline to be one of the study's arms "
                                          r"\(scratch, .*\), found 'scrach'"):
        check_baseline(config)


@pytest.mark.parametrize("edit, key, found", [
    (lambda c: c["train"]["finetune"].update(learning_rate=math.inf),
     "train.finetune.learning_rate", "inf"),
    (lambda c: c["preprocess"].update(spacing_mm=math.nan), "preprocess.spacing_mm", "nan"),
    (lambda c: c["train"]["finetune"].update(class_weights=[1.0, 2.0, -math.inf, 1.0]),
     "train.finetune.class_weights[2]", "-inf"),
    (lambda c: c["datasets"]["brats_phantom"]["phantom"].update(hgg_fraction=math.nan),
     "datasets.brats_phantom.phantom.hgg_fraction", "nan"),
])
def test_a_number_that_is_not_finite_is_refused_naming_its_key(config, edit, key, found):
    check_finite_numbers(config)
    edit(config)
    with pytest.raises(ConfigError, match=rf"config key '{re.escape(key)}': expected a finite "
                                          rf"number, found {found}$"):
        check_finite_numbers(config)


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["train"]["finetune"]["augmentation"].update(gamma_range=[1.5, 0.7]),
     "train.finetune.augmentation.gamma_range"),
    (lambda c: c["datasets"]["brats_phantom"]["phantom"].update(core_radius_mm=[20, 8]),
     "datasets.brats_phantom.phantom.core_radius_mm"),
    (lambda c: c["datasets"]["ms_phantom"]["phantom"].update(lesion_count=[40, 5]),
     "datasets.ms_phantom.phantom.lesion_count"),
])
def test_a_range_whose_low_end_is_above_its_high_end_is_refused(config, edit, key):
    check_ranges(config, SCHEMA)
    edit(config)
    with pytest.raises(ConfigError, match=rf"config key '{re.escape(key)}': expected a range "
                                          rf"\[low, high\] with low <= high, found"):
        check_ranges(config, SCHEMA)


def test_a_schema_violation_is_one_line_naming_the_key(config):
    assert schema_violation(config, SCHEMA) is None
    config["train"]["repeats"] = 0
    assert schema_violation(config, SCHEMA) == (
        "config key 'train.repeats': 0 is less than the minimum of 1 "
        "(what schemas/config.schema.yaml allows there)")


def user_datasets(config, tmp_path, **locations):
    """The study on a user's data: ms (a manifest), brats (a BraTS folder), ctl (a control)."""
    roles = {"ms": ("source", "manifest"), "brats": ("target", "brats"),
             "ctl": ("control", "brats")}
    config["datasets"] = {name: {"role": roles[name][0], "format": roles[name][1],
                                 "location": str(tmp_path / where)}
                          for name, where in locations.items()}
    config["use"] = list(locations)
    return config


def test_a_users_data_must_exist_and_be_named_by_its_key(config, tmp_path):
    (tmp_path / "data" / "brats").mkdir(parents=True)
    (tmp_path / "data" / "manifest.csv").write_text("subject\n")
    # a manifest beside the BraTS folder is fine: it lists its own files
    dataset_specs(user_datasets(config, tmp_path, ms="data/manifest.csv", brats="data/brats"))
    user_datasets(config, tmp_path, ms="data/manifest.csv", brats="data/nowhere")
    with pytest.raises(ConfigError, match=r"config key 'datasets.brats.location': expected the "
                                          r"dataset's files at .*/data/nowhere, found nothing"):
        dataset_specs(config)


@pytest.mark.parametrize("control", ["data/brats", "data/brats/HGG", "data"])
def test_a_control_that_reads_the_targets_folder_is_refused(config, tmp_path, control):
    """The same folder, one inside it, or one holding it: the control would pretrain on the
    target's test subjects."""
    (tmp_path / "data" / "brats" / "HGG").mkdir(parents=True)
    (tmp_path / "ms.csv").write_text("subject\n")
    user_datasets(config, tmp_path, ms="ms.csv", brats="data/brats", ctl=control)
    with pytest.raises(ConfigError, match=r"config keys 'datasets.brats.location' and "
                                          r"'datasets.ctl.location': expected each dataset of "
                                          r"a study in a place of its own"):
        dataset_specs(config)
    (tmp_path / "other").mkdir()
    dataset_specs(user_datasets(config, tmp_path, ms="ms.csv", brats="data/brats", ctl="other"))


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["train"]["finetune"].setdefault("augmentation", {}).update(
        gamma_range=[0, 1.5]), "train.finetune.augmentation.gamma_range.0"),
    (lambda c: c["datasets"]["brats_phantom"]["phantom"].update(site_gamma=[0.0, 1.2]),
     "datasets.brats_phantom.phantom.site_gamma.0"),
    (lambda c: c["train"]["pretrain"].update(pos_weight=0), "train.pretrain.pos_weight"),
])
def test_a_factor_of_zero_is_refused_by_the_schema(config, edit, key):
    """A gamma, scale or gain of 0 (or a positive weight of 0) would blank what it multiplies."""
    edit(config)
    found = schema_violation(config, SCHEMA)
    assert found.startswith(f"config key '{key}': 0") and "less than or equal to the minimum" \
        in found, found


def test_the_control_pretraining_is_the_source_s_but_for_what_it_changes(config):
    from lesion_transfer.config import SCHEMA_PATH, complete_control_pretraining

    train = config["train"]
    train["pretrain"]["augmentation"]["noise_prob"] = 0.3
    train["control_pretrain"] = {"epochs": 9, "augmentation": {"mirror_prob": 0.0}}
    complete_control_pretraining(config, SCHEMA_PATH)
    block = train["control_pretrain"]
    assert block["epochs"] == 9 and train["pretrain"]["epochs"] == 2
    # nested objects merge key by key: the source's noise, the control's mirroring
    assert block["augmentation"] == {**train["pretrain"]["augmentation"], "mirror_prob": 0.0}
    assert block["augmentation"]["noise_prob"] == 0.3
    assert {k: v for k, v in block.items() if k not in ("epochs", "augmentation")} == {
        k: v for k, v in train["pretrain"].items() if k not in ("epochs", "augmentation")}
    assert list(block) == list(train["pretrain"])      # sorted as the params are compared
    # completing a completed config (every cluster job parses the workflow) changes nothing
    before = copy.deepcopy(config)
    complete_control_pretraining(config, SCHEMA_PATH)
    assert config == before


@pytest.mark.parametrize("change, key", [
    ({"epoch": 9}, "train.control_pretrain'"),
    ({"epochs": 0}, "train.control_pretrain.epochs'"),
    ({"keep": "first"}, "train.control_pretrain.keep'"),
    ({"augmentation": {"mirror_prob": 2}}, "train.control_pretrain.augmentation.mirror_prob'")])
def test_a_control_pretraining_setting_that_cannot_be_is_refused(config, change, key):
    from lesion_transfer.config import SCHEMA_PATH, ConfigError, complete_control_pretraining

    config["train"]["control_pretrain"] = change
    with pytest.raises(ConfigError, match=re.escape(key)):
        complete_control_pretraining(config, SCHEMA_PATH)
