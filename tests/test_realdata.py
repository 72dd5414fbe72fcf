"""The public raw glioma case (../shared/realdata) through the whole preprocessing chain:
four modalities on three grids, with skull, 5.5 mm slices. Skipped when it is absent."""

import json

import numpy as np
import pytest
from conftest import REALDATA, needs_realdata, preprocess_default

from lesion_transfer import MODALITIES
from lesion_transfer.io.nifti import load_nifti
from lesion_transfer.labels import UNKNOWN_LABEL
from lesion_transfer.preprocess import stages
from lesion_transfer.preprocess.qc import dice
from lesion_transfer.preprocess.volumes import from_ants, load_channels, to_ants
from lesion_transfer.report.qc import PreprocessingChain, plot_preprocessing_qc

CASE = REALDATA / "TCGA-FG-6692"
pytestmark = [pytest.mark.realdata,
              needs_realdata(CASE)]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    out = tmp_path_factory.mktemp("realcase")
    raw = {m: str(CASE / "native" / f"{m}.nii.gz") for m in MODALITIES}
    paths = {name: out / f"{name}.nii.gz" for name in (
        "coregistered", "label", "brain_mask", "bias_corrected", "bias_field", "standardised",
        "template", "template_mask", "registered", "brain_mask_template", "normalised")}
    report = stages.coregister_modalities_stage(  # unseeded: ITK multi-threaded
        "brats", None, raw=raw, out_image=paths["coregistered"], out_label=paths["label"])
    stages.extract_brain_stage("deepbet", image=paths["coregistered"],
                               out_mask=paths["brain_mask"])
    stages.correct_bias_stage(stages.BiasCorrection("n4", preprocess_default("bias_fit_mm")),
                              image=paths["coregistered"], mask=paths["brain_mask"],
                              out_image=paths["bias_corrected"], out_field=paths["bias_field"])
    scales = [out / f"nyul_{m}.json" for m in MODALITIES]
    stages.fit_nyul_stage(["TCGA-FG-6692"], images=[paths["bias_corrected"]],
                          masks=[paths["brain_mask"]], out_paths=scales)
    stages.apply_nyul_stage(image=paths["bias_corrected"], mask=paths["brain_mask"],
                            scales=scales, out_image=paths["standardised"])
    stages.prepare_template_stage(2.0, template=None, template_mask=None,
                                  out_template=paths["template"],
                                  out_mask=paths["template_mask"])
    measures = stages.register_to_template_stage(
        stages.Registration("affine", None), image=paths["standardised"],
        mask=paths["brain_mask"], template=stages.Template(paths["template"],
                                                           paths["template_mask"]),
        outputs=stages.Registered(paths["registered"], paths["brain_mask_template"],
                                  out / "transforms", out / "qc.json"))
    stages.normalise_intensity_stage(image=paths["registered"],
                                     mask=paths["brain_mask_template"],
                                     out_image=paths["normalised"])
    meta = stages.cache_tensors_stage(
        stages.Caching((120, 96, 96), paths["template_mask"], {"subject": "TCGA"}),
        image=paths["normalised"], native_label=paths["label"], transforms=out / "transforms",
        out_folder=out / "cache")
    plot_preprocessing_qc("TCGA-FG-6692", PreprocessingChain(
        paths["coregistered"], paths["brain_mask"], paths["bias_corrected"], paths["registered"],
        paths["template"], out / "cache"), out / "qc.png")
    return {"out": out, "paths": paths, "report": report, "measures": measures, "meta": meta}


def test_modalities_on_other_grids_are_registered_to_the_t1(chain):
    assert chain["report"] == {"t1": "same grid", "t1ce": "same grid", "t2": "rigid",
                               "flair": "rigid"}
    channels, affine = load_channels(chain["paths"]["coregistered"])
    t1, t1_affine = load_nifti(CASE / "native" / "t1.nii.gz")
    assert all(c.shape == t1.shape for c in channels)
    np.testing.assert_allclose(affine, t1_affine, atol=1e-3)
    mask = load_nifti(chain["paths"]["brain_mask"])[0] > 0
    # aligned T2 and FLAIR share the T1's anatomy: strong correlation inside the brain
    for c in channels[2:]:
        assert np.corrcoef(c[mask], channels[0][mask])[0, 1] ** 2 > 0.1


def test_brain_mask_matches_the_reference_after_rigid_alignment(chain):
    import ants

    channels, affine = load_channels(chain["paths"]["coregistered"])
    mask = load_nifti(chain["paths"]["brain_mask"])[0] > 0
    reference_t1, reference_affine = load_nifti(CASE / "brats_space" / "t1.nii.gz")
    registration = ants.registration(to_ants(reference_t1, reference_affine),
                                     to_ants(np.where(mask, channels[0], 0), affine),
                                     type_of_transform="Rigid")
    reference = ants.apply_transforms(
        to_ants(np.zeros(mask.shape, np.float32), affine),
        to_ants((reference_t1 > 0).astype(np.float32), reference_affine),
        registration["invtransforms"], whichtoinvert=[True], interpolator="linear")
    assert dice(mask, from_ants(reference)[0] > 0.5) >= 0.95


def test_registration_to_the_template_and_the_cache(chain):
    assert chain["measures"]["mask_dice_with_template"] >= 0.9
    assert chain["measures"]["registration_attempts"] in (1, 2, 3)
    assert 900 < chain["measures"]["brain_volume_ml"] < 2000
    image = np.load(chain["out"] / "cache" / "image.npy")
    label = np.load(chain["out"] / "cache" / "label.npy")
    assert image.shape == (4, 120, 96, 96) and image.dtype == np.float16
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert np.all(label == UNKNOWN_LABEL)  # no label for this case in native space
    meta = json.loads((chain["out"] / "cache" / "meta.json").read_text())
    assert meta["labelled"] is False and meta["native_shape"] == [256, 224, 26]
    assert (chain["out"] / "qc.png").stat().st_size > 20_000
