"""Three public MS patients (../shared/realdata/open_ms, CC-BY; Lesjak et al.,
Neuroinformatics 2018) as the study's source dataset, through the real workflow: ingestion by
manifest, preprocessing, a short pretraining and the source AUC. Skipped when absent."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REALDATA, REPO, run_snakemake

OPEN_MS = REALDATA / "open_ms"
pytestmark = [pytest.mark.realdata, pytest.mark.workflow,
              pytest.mark.skipif(not OPEN_MS.exists(), reason="../shared/realdata is absent")]
PATIENTS = ("patient07", "patient19", "patient26")


@pytest.fixture(scope="module")
def ms_source_run(tmp_path_factory):
    """The tiny study with open_ms as its source: preprocessing and the source model only."""
    workdir = tmp_path_factory.mktemp("open_ms")
    config = yaml.safe_load((REPO / "configs" / "ci.yaml").read_text())
    config["use"] = ["open_ms", "brats_phantom"]
    config["train"]["strategies"] = ["scratch", "ft_all"]
    config["datasets"]["open_ms"] = {"role": "source", "format": "manifest",
                                     "location": str(OPEN_MS / "manifest.csv"),
                                     "brain_extraction": "none"}  # skull-stripped already
    config["splits"]["source_validation_fraction"] = 0.34  # 2 train, 1 validation
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(workdir, "results/metrics/source.tsv",
                  *[f"results/cache/open_ms/{p}/meta.json" for p in PATIENTS],
                  configfile=workdir / "config.yaml")
    return workdir / "results"


def volume_scale(transforms_folder):
    """Template volume per native volume: 1 / |det| of the linear part of the affine that maps
    template points to native ones (ANTs' forward transform)."""
    import ants

    description = json.loads((transforms_folder / "transforms.json").read_text())
    affine = [name for name in description["forward"] if name.endswith(".mat")]
    assert len(affine) == 1, description
    matrix = np.asarray(ants.read_transform(str(transforms_folder / affine[0])).parameters[:9])
    return 1.0 / abs(np.linalg.det(matrix.reshape(3, 3)))


@pytest.mark.parametrize("patient", PATIENTS)
def test_real_lesions_reach_the_cache_with_their_volume_scaled_by_the_registration(
        ms_source_run, patient):
    import nibabel as nib

    native = nib.load(OPEN_MS / patient / "GOLD_STANDARD.nii.gz")
    native_ml = (np.asarray(native.dataobj) > 0).sum() * \
        abs(np.linalg.det(native.affine[:3, :3])) / 1000
    cache = ms_source_run / "cache" / "open_ms" / patient
    meta = json.loads((cache / "meta.json").read_text())
    label = np.load(cache / "label.npy")
    assert meta["labelled"] and set(np.unique(label)) == {0, 1}
    cached_ml = (label == 1).sum() * meta["preprocessing"]["spacing_mm"] ** 3 / 1000
    scale = volume_scale(ms_source_run / "preprocess" / "open_ms" / patient / "transforms")
    assert 1.3 < scale < 2.2  # these brains are smaller than the template (README: ~1/0.54)
    assert cached_ml == pytest.approx(native_ml * scale, rel=0.15), (cached_ml, native_ml, scale)


def test_the_source_model_is_scored_on_a_real_patient(ms_source_run):
    scores = pd.read_csv(ms_source_run / "metrics" / "source.tsv", sep="\t")
    pooled = scores[scores["subject"] == "all"].iloc[0]
    assert set(scores["subject"]) - {"all"} <= set(PATIENTS) and len(scores) == 2
    assert pooled["lesion_voxels"] > 0
    assert 0.0 <= pooled["roc_auc"] <= 1.0 and 0.0 <= pooled["pr_auc"] <= 1.0
    card = json.loads((ms_source_run / "models" / "source" / "model_card.json").read_text())
    assert card["dataset"] == "open_ms" and card["channels"] == ["t1", "t1ce", "t2", "flair"]
