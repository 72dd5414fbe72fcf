"""Another framework's model as the study's source, through the workflow (issue 24): an nnU-Net
v2 trained-model folder and a MONAI bundle, each written with random weights in its
framework's own layout, named by train.source_model, and fine-tuned in the tiny study by an arm
that starts from it and by scratch (its network built afresh); one the study cannot feed is
refused by the dry run. What each strategy freezes of such a network, bit for bit, is
test_train's (every strategy, at the stage), test_nnunet's and test_monai_bundles'."""

import json

import pytest
import yaml
from conftest import REPO, copy_study, finished_rules, run_snakemake

pytestmark = pytest.mark.workflow

# the workflow's two paths for another framework's network: from its weights, and afresh
STRATEGIES = ["scratch", "ft_all"]


def foreign_config(path, source, **preprocess):
    """configs/ci.yaml with one size and one run per arm, STRATEGIES, `source` as the source
    model."""
    config = yaml.safe_load((REPO / "configs" / "ci.yaml").read_text())
    config["splits"]["sizes"] = [1]
    config["use"] = ["ms_phantom", "brats_phantom"]
    config["train"].update(repeats=1, strategies=STRATEGIES, source_model=str(source))
    config["preprocess"].update(preprocess)
    path.write_text(yaml.safe_dump(config))
    return path


def check_every_arm_fine_tuned_the_source(study, framework, source):
    models = study / "results" / "models"
    for strategy in STRATEGIES:
        for fold in (0, 1):
            card = json.loads((models / strategy / "n1" / f"fold{fold}" /
                               "model_card.json").read_text())
            # scratch builds the source's network afresh; the others start from its weights
            assert card["architecture"]["framework"] == framework, (strategy, card.keys())
            assert card["config"]["foreign_source"]["path"] == str(source)
            if strategy == "scratch":
                assert "source" not in card["config"], strategy
            else:
                recorded = card["config"]["source"]
                assert recorded["framework"] == framework and recorded["path"] == str(source)
                assert all(len(digest) == 64 for digest in recorded["sha256"].values())
    table = (study / "results" / "tables" / "source.tsv").read_text()
    assert f"framework\t{framework}" in table and f"path\t{source}" in table
    assert (study / "results" / "tables" / "claims.md").exists()


def test_the_tiny_study_fine_tunes_an_nnunet_folder(ci_study, tmp_path):
    """A BraTS nnU-Net model (z-scored inputs, channels T1, T1ce, T2, FLAIR) as the source, in
    a copy of the finished tiny study: the caches are z-scored to match (preprocess.intensity;
    the chain before the normalisation reruns too, since its intermediates are temporary, but
    the phantoms are not made again), nothing is pretrained."""
    from test_nnunet import write_nnunet_folder

    folder, _ = write_nnunet_folder(tmp_path / "nnUNet_results", spacing=4.0)
    study = copy_study(ci_study, tmp_path / "study")
    config = foreign_config(tmp_path / "c.yaml", folder, intensity="zscore")
    result = run_snakemake(study, configfile=config)
    rules = finished_rules(result.stdout + result.stderr)
    assert "pretrain_source" not in rules and "score_source" not in rules
    assert "describe_source" in rules and "normalise_intensity" in rules
    assert "synthesize_cohort" not in rules, rules
    check_every_arm_fine_tuned_the_source(study, "nnunetv2", folder)
    metas = list((study / "results").glob("cache/brats_phantom/*/meta.json"))
    assert metas and all(json.loads(m.read_text())["preprocessing"]["intensity"] == "zscore"
                         for m in metas)
    # nothing trains on the source dataset: its caches are not made again for the new scale
    # (they keep the paper's, which the preprocessing settings do not name)
    source_metas = list((study / "results").glob("cache/ms_phantom/*/meta.json"))
    assert source_metas and all(
        "intensity" not in json.loads(m.read_text())["preprocessing"] for m in source_metas)


def test_the_tiny_study_fine_tunes_a_monai_bundle(ci_study, tmp_path):
    """A MONAI SegResNet bundle (its channels in another order than the target's): the
    finished tiny study's caches serve (same grid and scale), only the arms train again."""
    from test_monai_bundles import write_bundle

    bundle, _ = write_bundle(tmp_path, "SegResNet")
    study = copy_study(ci_study, tmp_path / "study")
    result = run_snakemake(study, configfile=foreign_config(tmp_path / "c.yaml", bundle))
    rules = finished_rules(result.stdout + result.stderr)
    assert "cache_tensors" not in rules and "pretrain_source" not in rules, rules
    check_every_arm_fine_tuned_the_source(study, "monai", bundle)


@pytest.mark.parametrize("problem, expected", [
    ("spacing", "spacing [1.0, 1.0, 1.0] mm, the target's preprocess.spacing_mm 4.0"),
    ("intensity", "intensities normalised by ZScoreNormalization, the target's caches are "
                  "z-score in the brain remapped to [0, 1] (preprocess.intensity: unit)"),
    ("pickle", "checkpoint_final.pth"),
])
def test_an_nnunet_folder_the_study_cannot_use_fails_the_dry_run(problem, expected, tmp_path):
    import pickle

    from test_nnunet import write_nnunet_folder

    folder, _ = write_nnunet_folder(tmp_path / "nnUNet_results",
                                    spacing=1.0 if problem == "spacing" else 4.0)
    if problem == "pickle":  # an object that would run code when unpickled
        with (folder / "fold_0" / "checkpoint_final.pth").open("wb") as handle:
            pickle.dump({"network_weights": print}, handle)
    intensity = "unit" if problem == "intensity" else "zscore"
    config = foreign_config(tmp_path / "c.yaml", folder, intensity=intensity)
    result = run_snakemake(tmp_path / "study", "--dry-run", configfile=config, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and expected in output, output[-3000:]
    assert "refused: " in output and str(folder) in output
    assert not (tmp_path / "study" / "results").exists()
