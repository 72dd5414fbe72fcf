"""Phantom cohorts: deterministic, in their real layouts, consistent with their own truth."""

import filecmp
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import phantom_settings
from scipy import ndimage

from lesion_transfer.config import with_manifest_columns
from lesion_transfer.io.ingest import ingest_dataset
from lesion_transfer.io.layouts import BRATS_TRAINING, BRATS_VALIDATION
from lesion_transfer.phantoms import PhantomSettings, synthesize_cohort, synthesize_glioma_subject
from lesion_transfer.phantoms.fields import apply_affine, sample, world_coordinates
from lesion_transfer.phantoms.lesions import lesion_components
from lesion_transfer.phantoms.template import load_tissue_template

MS = phantom_settings(kind="ms", subjects=3, sites=2, spacing_mm=4.0, seed=11,
                     lesion_count=(4, 9), lesion_diameter_mm=(5.0, 12.0), truth_fields=True)
GLIOMA = phantom_settings(kind="glioma", subjects=4, unlabelled_subjects=1, sites=2,
                         spacing_mm=4.0, seed=11, hgg_fraction=0.5, truth_fields=True)


@pytest.fixture(scope="module")
def ms_cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantoms") / "ms"
    synthesize_cohort(MS, folder)
    return folder


@pytest.fixture(scope="module")
def glioma_cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantoms") / "glioma"
    synthesize_cohort(GLIOMA, folder)
    return folder


def load(path):
    image = nib.load(str(path))
    return np.asarray(image.dataobj), image.affine


def files_under(folder):
    return sorted(p.relative_to(folder) for p in Path(folder).rglob("*") if p.is_file())


def test_same_seed_same_bytes(ms_cohort, tmp_path):
    again = tmp_path / "ms"
    synthesize_cohort(MS, again)
    assert files_under(again) == files_under(ms_cohort)
    _, mismatch, errors = filecmp.cmpfiles(ms_cohort, again, [str(p) for p in files_under(again)],
                                           shallow=False)
    assert not mismatch and not errors


def test_subject_depends_on_seed_and_id_only(ms_cohort, tmp_path):
    """A larger cohort keeps the subjects it shares; another seed changes them."""
    bigger = PhantomSettings(**{**MS.__dict__, "subjects": 4})
    synthesize_cohort(bigger, tmp_path / "bigger")
    shared = "raw/MS002/MS002_flair.nii.gz"
    assert filecmp.cmp(ms_cohort / shared, tmp_path / "bigger" / shared, shallow=False)
    reseeded = PhantomSettings(**{**MS.__dict__, "seed": 12, "subjects": 1,
                                  "truth_fields": False})
    synthesize_cohort(reseeded, tmp_path / "reseeded")
    first = "raw/MS001/MS001_t1.nii.gz"
    assert not filecmp.cmp(ms_cohort / first, tmp_path / "reseeded" / first, shallow=False)
    # without truth_fields (the workflow's default) only the small truth is written
    assert {p.name for p in (tmp_path / "reseeded" / "truth" / "MS001").iterdir()} == {
        "brain_mask.nii.gz", "tissues.nii.gz", "truth.json"}


def test_ms_cohort_is_a_valid_manifest_dataset(ms_cohort):
    spec = with_manifest_columns({"role": "source", "format": "manifest",
                                  "location": str(ms_cohort / "manifest.tsv")})
    subjects = ingest_dataset("ms", spec)
    assert [s.subject for s in subjects] == ["MS001", "MS002", "MS003"]
    assert {s.site for s in subjects} == {"site1", "site2"}


def test_glioma_cohort_is_a_valid_brats2018_dataset(glioma_cohort):
    spec = {"role": "target", "format": "brats", "location": str(glioma_cohort / BRATS_TRAINING),
            "unlabelled_location": str(glioma_cohort / BRATS_VALIDATION)}
    subjects = ingest_dataset("glioma", spec)
    grades = sorted(s.group for s in subjects if s.labelled)
    assert grades == ["HGG", "HGG", "LGG", "LGG"]
    assert sum(not s.labelled for s in subjects) == 1


def test_ms_lesion_counts_and_sizes_within_configured_ranges(ms_cohort):
    truth = json.loads((ms_cohort / "cohort.json").read_text())
    for entry in truth["subjects"]:
        subject = entry["subject"]
        label, _ = load(ms_cohort / "raw" / subject / f"{subject}_lesions.nii.gz")
        assert set(np.unique(label)) <= {0, 1}
        components, count = lesion_components(label > 0)
        assert MS.lesion_count[0] <= count <= MS.lesion_count[1]
        assert count == entry["lesions"]
        largest_mm = MS.lesion_diameter_mm[1] + 2 * MS.spacing_mm  # a voxel's reach each side
        for box in ndimage.find_objects(components):
            extent_mm = max(s.stop - s.start for s in box) * MS.spacing_mm
            assert extent_mm <= largest_mm


def test_ms_lesions_lie_in_white_matter_and_look_like_lesions(ms_cohort):
    subject = "MS001"
    folder = ms_cohort / "raw" / subject
    label = load(folder / f"{subject}_lesions.nii.gz")[0] > 0
    brain = load(ms_cohort / "truth" / subject / "brain_mask.nii.gz")[0] > 0
    assert label[brain].sum() == label.sum()
    flair = load(folder / f"{subject}_flair.nii.gz")[0].astype(float)
    t1 = load(folder / f"{subject}_t1.nii.gz")[0].astype(float)
    normal = brain & ~ndimage.binary_dilation(label, iterations=2)
    assert np.median(flair[label]) > np.median(flair[normal])
    assert np.median(t1[label]) < np.percentile(t1[normal], 90)


def test_source_has_a_skull_and_target_is_skull_stripped(ms_cohort, glioma_cohort):
    t1, _ = load(ms_cohort / "raw" / "MS001" / "MS001_t1.nii.gz")
    brain = load(ms_cohort / "truth" / "MS001" / "brain_mask.nii.gz")[0] > 0
    shell = ndimage.binary_dilation(brain, iterations=4) & ~brain
    background = ~ndimage.binary_dilation(brain, iterations=8)
    assert t1[shell].mean() > 3 * t1[background].mean()  # scalp signal outside the brain

    subject = "Brats18_SITE1_001_1"
    folder = glioma_cohort / BRATS_TRAINING / "HGG" / subject
    brain = load(glioma_cohort / "truth" / subject / "brain_mask.nii.gz")[0] > 0
    for modality in ("t1", "t1ce", "t2", "flair"):
        image, _ = load(folder / f"{subject}_{modality}.nii.gz")
        assert not image[~brain].any()


def test_glioma_labels_follow_grades(glioma_cohort):
    for grade in ("HGG", "LGG"):
        for folder in sorted((glioma_cohort / BRATS_TRAINING / grade).iterdir()):
            label, _ = load(folder / f"{folder.name}_seg.nii.gz")
            values = set(np.unique(label).tolist())
            assert values <= {0, 1, 2, 4}
            assert {1, 2} <= values
            enhancing, core = (label == 4).sum(), np.isin(label, (1, 4)).sum()
            if grade == "HGG":
                assert enhancing > 0.2 * core
                # the enhancing rim surrounds the necrosis: necrosis never touches edema
                necrosis = label == 1
                assert not (ndimage.binary_dilation(necrosis) & (label == 2)).any()
            else:
                assert enhancing < 0.1 * core


def test_truth_grids_match_the_images(ms_cohort, glioma_cohort):
    pairs = [(ms_cohort / "raw" / "MS002" / "MS002_t2.nii.gz", ms_cohort / "truth" / "MS002"),
             (glioma_cohort / BRATS_VALIDATION / "Brats18_VAL_SITE1_005_1" /
              "Brats18_VAL_SITE1_005_1_t2.nii.gz",
              glioma_cohort / "truth" / "Brats18_VAL_SITE1_005_1")]
    for image_path, truth in pairs:
        image, affine = load(image_path)
        for name in ("brain_mask", "bias_t2", "displacement"):
            data, truth_affine = load(truth / f"{name}.nii.gz")
            assert data.shape[:3] == image.shape
            np.testing.assert_allclose(truth_affine, affine, atol=1e-5)
    assert (glioma_cohort / "truth" / "Brats18_VAL_SITE1_005_1" / "label.nii.gz").exists()


def test_transform_truth_maps_the_template_brain_onto_the_subject(ms_cohort):
    """Sampling the template's brain through the stored transform gives the brain mask back."""
    subject = "MS003"
    truth = json.loads((ms_cohort / "truth" / subject / "truth.json").read_text())
    brain, affine = load(ms_cohort / "truth" / subject / "brain_mask.nii.gz")
    displacement, _ = load(ms_cohort / "truth" / subject / "displacement.nii.gz")
    points = world_coordinates(brain.shape, affine)
    template_points = apply_affine(np.array(truth["subject_to_template"]), points)
    template_points += np.moveaxis(displacement, -1, 0)
    template = load_tissue_template(smoothing_mm=MS.spacing_mm - 1.0)
    warped = sample(template.brain, template.affine, template_points) > 0.5
    dice = 2 * (warped & (brain > 0)).sum() / (warped.sum() + (brain > 0).sum())
    assert dice > 0.99


def test_bias_field_truth_is_smooth_and_of_the_configured_strength(ms_cohort):
    bias, _ = load(ms_cohort / "truth" / "MS001" / "bias_flair.nii.gz")
    log_field = np.log(bias.astype(float))
    assert abs(log_field.std() - MS.bias_strength) < 0.01
    assert np.abs(np.diff(log_field, axis=0)).max() < 0.1  # smooth from voxel to voxel


@pytest.mark.parametrize("rim_mm, depth_voxels", [(2.0, 1), (6.0, 3)])
def test_the_enhancing_rim_is_as_thick_as_configured(rim_mm, depth_voxels):
    """At 2 mm, a 6 mm rim is three voxels deep from the core's surface, a 2 mm rim one."""
    settings = phantom_settings(kind="glioma", subjects=1, seed=3, spacing_mm=2.0,
                               enhancing_rim_mm=(rim_mm, rim_mm))
    label = synthesize_glioma_subject(settings, "Brats18_SITE1_001_1", 0, "HGG").label
    core = np.isin(label, (1, 4))
    depth = ndimage.distance_transform_cdt(core, metric="taxicab")  # 1 on the surface
    assert depth[label == 4].max() <= depth_voxels  # necrosis begins below the rim
    assert (label == 1).any() and depth[label == 1].min() > depth_voxels


def test_tumour_jitter_changes_only_the_tumour_by_its_recorded_factors():
    """Each compartment's intensity is multiplied per sequence by the factor truth.json
    records, which the scanner's curve then raises to its gamma; nothing outside the tumour's
    reach changes (the factors have a random stream of their own), and without the key every
    factor is exactly 1."""
    # a large tumour at 2 mm, without noise: compartments deep enough to read a factor in
    subject = "Brats18_SITE1_001_1"
    plain_settings = dict(kind="glioma", subjects=1, seed=5, spacing_mm=2.0, noise=0.0,
                          core_radius_mm=(18.0, 20.0), edema_margin_mm=(12.0, 15.0))
    plain = synthesize_glioma_subject(phantom_settings(**plain_settings), subject, 0, "HGG")
    varied = synthesize_glioma_subject(phantom_settings(**plain_settings, tumour_jitter=0.4),
                                       subject, 0, "HGG")
    # the compartments' partial volume: a Gaussian of 0.5 voxels, 2 voxels every way
    reach = ndimage.binary_dilation(varied.label > 0, np.ones((3, 3, 3), bool), iterations=2)
    # beyond the reach of every other compartment's partial volume
    deep = {name: ndimage.binary_erosion(varied.label == value, np.ones((3, 3, 3), bool),
                                         iterations=2)
            for name, value in (("edema", 2), ("necrosis", 1))}
    factors = varied.info["tumour_contrast"]
    assert {f for compartment in plain.info["tumour_contrast"].values()
            for f in compartment.values()} == {1.0}
    assert all(0.6 <= f <= 1.4 for compartment in factors.values() for f in compartment.values())
    assert len({f for compartment in factors.values() for f in compartment.values()}) > 4
    for modality, image in varied.images.items():
        np.testing.assert_array_equal(image[~reach], plain.images[modality][~reach])
        gamma = varied.info["site_gamma"][modality]
        for name, voxels in deep.items():
            assert voxels.sum() > 5, name
            ratio = np.median(image[voxels] / np.maximum(plain.images[modality][voxels], 1))
            assert ratio == pytest.approx(factors[name][modality] ** gamma, rel=0.02), \
                (modality, name)
