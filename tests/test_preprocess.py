"""The preprocessing chain against phantom truth (and the real case where it is present)."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import affine_parameters, phantom_settings, preprocess_default

from lesion_transfer.io.broken import BrokenFileError
from lesion_transfer.io.cache import path_in_results, read_meta
from lesion_transfer.phantoms import (
    synthesize_glioma_subject,
    synthesize_ms_subject,
)
from lesion_transfer.preprocess import bias, brain, cache, nyul, register
from lesion_transfer.preprocess.qc import dice
from lesion_transfer.preprocess.volumes import from_ants, to_ants

FIT_MM = preprocess_default("bias_fit_mm")  # the grid N4 fits its field on
MS = phantom_settings(kind="ms", subjects=2, seed=5, spacing_mm=2.0)
GLIOMA = phantom_settings(kind="glioma", subjects=1, seed=5, spacing_mm=2.0)
WM = 3  # tissue class of white matter in the phantom truth


@pytest.fixture(scope="module")
def ms_subjects():
    return [synthesize_ms_subject(MS, f"MS{i:03d}", i) for i in range(2)]


@pytest.fixture(scope="module")
def template():
    return register.load_template(2.0)


def test_ants_bridge_matches_ants_own_reader(tmp_path):
    """Our RAS -> LPS conversion gives ANTs the same physical space its reader does."""
    import ants
    import nibabel as nib
    from scipy.spatial.transform import Rotation

    affine = np.eye(4)
    rotation = Rotation.from_euler("xyz", [4.0, -7.0, 12.0], degrees=True).as_matrix()
    affine[:3, :3] = np.diag([-1.0, 1.0, 1.0]) @ rotation @ np.diag([0.9, 0.88, 5.5])
    affine[:3, 3] = [110.0, -70.0, -45.0]
    data = np.random.default_rng(0).random((7, 6, 5)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "oblique.nii.gz")
    read = ants.image_read(str(tmp_path / "oblique.nii.gz"))
    ours = to_ants(data, affine)
    np.testing.assert_allclose(ours.origin, read.origin, atol=1e-4)
    np.testing.assert_allclose(ours.direction, read.direction, atol=1e-4)
    np.testing.assert_allclose(ours.spacing, read.spacing, atol=1e-4)
    back, back_affine = from_ants(ours)
    np.testing.assert_array_equal(back, data)
    np.testing.assert_allclose(back_affine, affine, atol=1e-4)


def test_deepbet_extracts_the_phantom_brain(ms_subjects):
    for phantom in ms_subjects:
        t1 = phantom.images["t1"].astype(np.float32)
        mask = brain.extract_brain("deepbet", [t1], phantom.affine)
        assert dice(mask, phantom.brain_mask) >= 0.95


def test_nonzero_mask_of_skull_stripped_data():
    phantom = synthesize_glioma_subject(GLIOMA, "Brats18_SITE1_001_1", 0, "HGG")
    channels = [phantom.images[m].astype(np.float32) for m in phantom.images]
    assert dice(brain.extract_brain("none", channels, phantom.affine), phantom.brain_mask) > 0.99


@pytest.mark.parametrize("modality", ["t1", "flair"])
def test_n4_recovers_the_true_bias_field(ms_subjects, modality):
    for phantom in ms_subjects:
        mask = phantom.brain_mask > 0
        image = phantom.images[modality].astype(np.float32)
        corrected, field = bias.correct_bias(image, phantom.affine, mask, "n4", FIT_MM)
        r = np.corrcoef(np.log(field[mask]), np.log(phantom.bias[modality][mask]))[0, 1]
        assert r >= 0.9
        wm = phantom.tissues == WM
        assert coefficient_of_variation(corrected[wm]) < coefficient_of_variation(image[wm])


def test_n3_runs_and_flattens_white_matter(ms_subjects):
    phantom = ms_subjects[0]
    mask = phantom.brain_mask > 0
    image = phantom.images["t1"].astype(np.float32)
    corrected, field = bias.correct_bias(image, phantom.affine, mask, "n3", FIT_MM)
    wm = phantom.tissues == WM
    assert coefficient_of_variation(corrected[wm]) < coefficient_of_variation(image[wm])
    assert np.all(field[~mask] == 1.0)


def coefficient_of_variation(values):
    return float(np.std(values) / np.mean(values))


def test_nyul_removes_site_differences():
    """Tissue medians differ by site scale and gamma; after standardisation with a scale
    fitted on four subjects, every subject's (held-out ones too) agree. Phantoms without a
    bias field: N4 has its own tests above, and it took 24 runs here (3 minutes of CI)."""
    settings = phantom_settings(kind="ms", subjects=6, sites=3, seed=8, spacing_mm=2.0,
                                bias_strength=0.0)
    phantoms = [synthesize_ms_subject(settings, f"MS{i:03d}", i) for i in range(6)]
    for modality in ("t1", "t1ce", "t2", "flair"):
        images = [(p.images[modality].astype(np.float32), p.brain_mask > 0) for p in phantoms]
        scale = nyul.fit_standard_scale(images[:4])
        standardised = [nyul.apply_standard_scale(d, m, scale) for d, m in images]
        for tissue in (1, 2, 3):
            before = [np.median(d[p.tissues == tissue]) for (d, _), p in zip(images, phantoms)]
            after = [np.median(s[p.tissues == tissue]) for s, p in zip(standardised, phantoms)]
            spread_before = np.std(before) / np.mean(before)
            spread_after = np.std(after) / np.mean(after)
            assert spread_after <= 0.2 * spread_before, (modality, tissue)


def test_nyul_maps_landmarks_onto_the_scale_and_extrapolates():
    rng = np.random.default_rng(0)
    data = rng.gamma(4.0, 50.0, size=(20, 20, 20)).astype(np.float32)
    mask = np.ones(data.shape, bool)
    scale = nyul.fit_standard_scale([(data * 3 + 10, mask), (data ** 1.1, mask)])
    out = nyul.apply_standard_scale(data, mask, scale)
    np.testing.assert_allclose(nyul.landmarks(out, mask), scale["landmarks"], atol=0.5)
    assert out.min() < scale["landmarks"][0] and out.max() > scale["landmarks"][-1]
    assert np.all(np.diff(out.ravel()[np.argsort(data.ravel())]) >= -1e-4)  # monotone


def test_affine_registration_aligns_the_phantom_brain(ms_subjects, template, tmp_path):
    t1_template, template_mask, template_affine = template
    for i, phantom in enumerate(ms_subjects):
        mask = phantom.brain_mask > 0
        folder = tmp_path / f"transforms{i}"
        register.register_to_template(phantom.images["t1"].astype(np.float32), phantom.affine,
                                      mask, t1_template, template_affine, "affine", folder)
        transforms = register.read_transforms(folder)
        warped = register.warp_to_template(mask.astype(np.uint8), phantom.affine,
                                           t1_template.shape, template_affine, transforms,
                                           label=True)
        assert dice(warped > 0, template_mask) >= 0.95


SEEDED_REGISTRATION = """
import sys
import numpy as np
from lesion_transfer.config import schema_defaults
from lesion_transfer.phantoms import PhantomSettings, synthesize_ms_subject
from lesion_transfer.preprocess import register

settings = schema_defaults("phantom", kind="ms", subjects=1, spacing_mm=2.0)
phantom = synthesize_ms_subject(PhantomSettings.from_config(settings, 5), "MS000", 0)
template, _, template_affine = register.load_template(4.0)
for folder, seed in zip(sys.argv[1::2], sys.argv[2::2]):
    register.register_to_template(phantom.images["t1"].astype(np.float32), phantom.affine,
                                  phantom.brain_mask > 0, template, template_affine, "affine",
                                  folder, seed=int(seed))
"""


def test_a_seeded_registration_gives_the_same_transform_every_time(tmp_path):
    """Run in a process of its own: ITK fixes its thread count when it starts, and a seed
    reproduces only single-threaded (bench/results/registration_seed.md)."""
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}
    env.pop("ANTS_RANDOM_SEED", None)
    runs = {"a": 7, "b": 7, "c": 8}
    subprocess.run([sys.executable, "-c", SEEDED_REGISTRATION,
                    *[str(x) for name, seed in runs.items() for x in (tmp_path / name, seed)]],
                   env=env, check=True)
    a, b, c = (affine_parameters(tmp_path / name) for name in runs)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # the seed reaches ANTs: another one samples other points
    # ... and still registers the same brain: the linear part, then the translation in mm
    np.testing.assert_allclose(a[:9], c[:9], atol=0.05)
    np.testing.assert_allclose(a[9:], c[9:], atol=1.0)


def test_a_seeded_registration_refuses_to_run_multi_threaded(ms_subjects, template, tmp_path,
                                                             monkeypatch):
    monkeypatch.setenv("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "2")
    t1_template, _, template_affine = template
    phantom = ms_subjects[0]
    with pytest.raises(RuntimeError, match="single-threaded.*found '2'"):
        register.register_to_template(phantom.images["t1"].astype(np.float32), phantom.affine,
                                      phantom.brain_mask > 0, t1_template, template_affine,
                                      "affine", tmp_path / "transforms", seed=7)
    assert not list(tmp_path.iterdir())  # refused before any work


def test_label_round_trip_through_the_cache(template, tmp_path):
    """native -> template -> crop -> to_native keeps the tumour (and each region)."""
    t1_template, template_mask, template_affine = template
    phantom = synthesize_glioma_subject(GLIOMA, "Brats18_SITE1_002_1", 1, "HGG")
    mask = phantom.brain_mask > 0
    folder = tmp_path / "transforms"
    register.register_to_template(phantom.images["t1"].astype(np.float32), phantom.affine, mask,
                                  t1_template, template_affine, "affine", folder)
    transforms = register.read_transforms(folder)
    warped = register.warp_to_template(phantom.label, phantom.affine, t1_template.shape,
                                       template_affine, transforms, label=True)
    crop_shape = (120, 96, 96)
    start = cache.crop_start(template_mask, crop_shape)
    cached = cache.crop_or_pad(warped, start, crop_shape)
    assert cached.sum() > 0 and set(np.unique(cached)) <= {0, 1, 2, 4}
    meta = {"crop_start": start, "template_shape": list(t1_template.shape),
            "template_affine": template_affine.tolist(), "native_shape": list(phantom.label.shape),
            "native_affine": phantom.affine.tolist(), "transforms": str(folder)}
    native = cache.to_native(cached, meta)
    assert native.shape == phantom.label.shape
    assert dice(native > 0, phantom.label > 0) >= 0.95  # whole tumour
    assert dice(np.isin(native, (1, 4)), np.isin(phantom.label, (1, 4))) >= 0.9  # tumour core


@pytest.mark.parametrize("transform", ["affine", "syn"])
def test_the_way_back_gives_antss_own_labels_voxel_for_voxel(transform, tmp_path):
    """warp_to_native reads ANTs' transforms with SimpleITK (evaluation then needs no ANTs):
    it must give what ANTs' own apply_transforms gives, every voxel of every label, for an
    affine registration and for SyN (a displacement field, and the order of the two)."""
    import ants

    phantom = synthesize_glioma_subject(GLIOMA, "Brats18_SITE1_002_1", 1, "HGG")
    t1_template, _, template_affine = register.load_template(4.0)
    folder = tmp_path / transform
    register.register_to_template(phantom.images["t1"].astype(np.float32), phantom.affine,
                                  phantom.brain_mask > 0, t1_template, template_affine,
                                  transform, folder)
    transforms = register.read_transforms(folder)
    assert any(name.endswith(".nii.gz") for name in transforms["inverse"]) == (transform == "syn")
    in_template = register.warp_to_template(phantom.label, phantom.affine, t1_template.shape,
                                            template_affine, transforms, label=True)
    assert set(np.unique(in_template)) == {0, 1, 2, 4}
    by_ants = ants.apply_transforms(
        to_ants(np.zeros(phantom.label.shape, np.float32), phantom.affine),
        to_ants(in_template, template_affine), transforms["inverse"],
        whichtoinvert=transforms["inverse_invert"], interpolator="genericLabel")
    expected = np.rint(from_ants(by_ants)[0]).astype(np.uint8)
    native = register.warp_to_native(in_template, template_affine, phantom.label.shape,
                                     phantom.affine, transforms)
    assert (expected > 0).sum() > 1000
    np.testing.assert_array_equal(native, expected)


def test_the_way_back_names_a_missing_transform(tmp_path):
    folder = tmp_path / "transforms"
    folder.mkdir()
    (folder / "transforms.json").write_text(json.dumps(
        {"type": "affine", "forward": ["to_template_0GenericAffine.mat"],
         "inverse": ["to_template_0GenericAffine.mat"], "inverse_invert": [True]}))
    with pytest.raises(FileNotFoundError, match="to_template_0GenericAffine.mat"):
        register.warp_to_native(np.zeros((4, 4, 4), np.uint8), np.eye(4), (4, 4, 4), np.eye(4),
                                register.read_transforms(folder))


def test_crop_and_uncrop_are_inverse_inside_the_window():
    volume = np.arange(10 * 12 * 8).reshape(10, 12, 8)
    start, shape = [-2, 3, 1], (14, 6, 6)  # padded along x, cropped along y and z
    cropped = cache.crop_or_pad(volume, start, shape)
    assert cropped.shape == shape
    assert np.all(cropped[:2] == 0) and np.all(cropped[12:] == 0)
    np.testing.assert_array_equal(cropped[2:12], volume[:, 3:9, 1:7])
    back = cache.uncrop(cropped, start, volume.shape)
    np.testing.assert_array_equal(back[:, 3:9, 1:7], volume[:, 3:9, 1:7])
    assert np.all(back[:, :3] == 0)


def test_crop_window_is_centred_on_the_template_brain():
    mask = np.zeros((20, 20, 20), bool)
    mask[4:10, 6:16, 2:8] = True
    start = cache.crop_start(mask, (8, 8, 8))
    assert start == [3, 7, 1]


def test_normalised_intensities_lie_in_unit_range():
    from lesion_transfer.preprocess.normalise import zscore_to_unit

    rng = np.random.default_rng(1)
    data = rng.normal(500, 80, (16, 16, 16)).astype(np.float32)
    mask = np.zeros(data.shape, bool)
    mask[3:13, 3:13, 3:13] = True
    out = zscore_to_unit(data, mask)
    assert out.min() == 0 and out.max() == 1 and np.all(out[~mask] == 0)
    assert 0.4 < np.median(out[mask]) < 0.6


def test_zscore_in_brain_is_the_hand_computed_zscore_and_zero_outside():
    """preprocess.intensity: zscore, nnU-Net's ZScoreNormalization on the brain mask."""
    from lesion_transfer.preprocess.normalise import zscore_in_brain

    data = np.array([[[2.0, 4.0], [6.0, 8.0]], [[100.0, -50.0], [7.0, 0.0]]], np.float32)
    mask = np.zeros(data.shape, bool)
    mask[0] = True  # inside: 2, 4, 6, 8 (mean 5, population std sqrt(5))
    out = zscore_in_brain(data, mask)
    expected = (np.array([2.0, 4.0, 6.0, 8.0]) - 5.0) / np.sqrt(5.0)
    np.testing.assert_allclose(out[0].ravel(), expected, rtol=1e-6)
    assert np.all(out[1] == 0) and out.dtype == np.float32


def test_the_intensity_scale_enters_the_preprocessing_hash_unless_it_is_the_papers():
    """Studies made before preprocess.intensity existed keep their hash (their caches and
    models stay valid); a z-scored cache is not comparable with them."""
    import hashlib
    import json

    from lesion_transfer.provenance import preprocessing_hash

    before = {"spacing_mm": 1.0, "crop_shape": [240, 192, 192], "bias_correction": "n4",
              "registration": "affine", "template": None, "template_mask": None}
    as_before = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert preprocessing_hash(before) == as_before
    assert preprocessing_hash({**before, "intensity": "unit"}) == as_before
    assert preprocessing_hash({**before, "intensity": "zscore"}) != as_before


def test_coregistration_passes_same_grid_data_and_maps_brats2023_labels():
    from lesion_transfer.preprocess.coregister import coregister_modalities

    rng = np.random.default_rng(2)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    images = {m: (rng.random((8, 8, 6)).astype(np.float32), affine)
              for m in ("t1", "t1ce", "t2", "flair")}
    label = np.zeros((8, 8, 6))
    label[2:4, 2:4, 2:4] = 3
    label[4:6, 4:6, 2:4] = 2
    channels, out_affine, out_label, report = coregister_modalities(
        images, (label, affine), "brats2023")
    assert set(report.values()) == {"same grid"}
    np.testing.assert_array_equal(channels[3], images["flair"][0])
    assert set(np.unique(out_label)) == {0, 2, 4} and (out_label == 4).sum() == 8
    _, _, unknown, _ = coregister_modalities(images, None)
    assert np.all(unknown == 255)


def test_given_masks_are_used_as_they_are():
    given = np.zeros((6, 6, 6))
    given[1:5, 1:5, 1:5] = 1
    mask = brain.extract_brain("given", [np.ones((6, 6, 6))], np.eye(4), given_mask=given)
    assert mask.sum() == 64
    with pytest.raises(ValueError, match="mask column"):
        brain.extract_brain("given", [np.ones((6, 6, 6))], np.eye(4))


def test_qc_flags_the_subject_that_stands_out():
    from lesion_transfer.preprocess.qc import flag_outliers

    rows = [{"subject": f"s{i}", "dice": 0.96 + 0.002 * (i % 3)} for i in range(10)]
    rows[4]["dice"] = 0.71  # a failed registration
    flagged = [r["subject"] for r in flag_outliers(rows, ["dice"]) if r["outlier"]]
    assert flagged == ["s4"]


def cache_meta(results, transforms):
    """A subject's meta.json at its place in a results folder, naming `transforms`."""
    folder = results / "cache" / "brats" / "S1"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"subject": "S1", "transforms": transforms}))
    return folder / "meta.json"


def test_a_copied_results_folder_reads_its_own_transforms(tmp_path):
    """meta.json names the transforms relative to its results folder, so a copy (or a move)
    reads the copy's, never the original's."""
    original = tmp_path / "original"
    transforms = original / "preprocess" / "brats" / "S1" / "transforms"
    transforms.mkdir(parents=True)
    recorded = path_in_results(original / "cache" / "brats" / "S1", transforms)
    assert recorded == "preprocess/brats/S1/transforms"
    cache_meta(original, recorded)
    shutil.copytree(original, tmp_path / "copy")
    meta = read_meta(tmp_path / "copy" / "cache" / "brats" / "S1" / "meta.json")
    assert meta["transforms"] == str(tmp_path / "copy" / "preprocess" / "brats" / "S1" /
                                     "transforms")


@pytest.mark.parametrize("recorded", ["../../../../etc", "/etc", "preprocess/../../x"])
def test_a_cache_that_names_a_folder_outside_its_results_is_refused(tmp_path, recorded):
    meta_path = cache_meta(tmp_path / "results", recorded)
    with pytest.raises(BrokenFileError, match=rf"{re.escape(str(meta_path))}: expected "
                                              rf"'transforms' to name a folder inside its "
                                              rf"results folder .*, found '{re.escape(recorded)}'"):
        read_meta(meta_path)


@pytest.mark.parametrize("name", ["../../../etc/passwd", "/etc/passwd", ".."])
def test_transforms_that_name_a_file_outside_their_folder_are_refused(tmp_path, name):
    folder = tmp_path / "transforms"
    folder.mkdir()
    (folder / "transforms.json").write_text(json.dumps(
        {"type": "affine", "forward": ["0GenericAffine.mat"], "inverse": [name],
         "inverse_invert": [True]}))
    with pytest.raises(BrokenFileError, match=rf"transforms.json: expected the names of files "
                                              rf"in .*, found '{re.escape(name)}'"):
        register.read_transforms(folder)


def test_a_cache_knows_when_its_arrays_changed_after_it_was_written(tmp_path):
    from lesion_transfer.io.cache import (
        discard_stale_caches,
        stale_arrays,
        stale_caches,
        write_cache,
    )

    folder = tmp_path / "results" / "cache" / "target" / "subject1"
    folder.mkdir(parents=True)
    channels = [np.full((4, 4, 4), value, dtype=np.float32) for value in (0.1, 0.2)]
    write_cache(folder, channels, np.zeros((4, 4, 4)), {"channels": ["t1", "flair"]})
    assert stale_arrays(folder) == [] and stale_caches(tmp_path / "results" / "cache") == {}
    written = (folder / "meta.json").stat().st_mtime_ns
    image = bytearray((folder / "image.npy").read_bytes())
    image[-1] ^= 1                                     # same size, one byte other
    (folder / "image.npy").write_bytes(bytes(image))
    os.utime(folder / "image.npy", ns=(written + 10**9, written + 10**9))
    assert stale_arrays(folder) == ["image.npy holds other bytes than when it was written "
                                    "(SHA-256)"]
    (folder / "label.npy").write_bytes(b"")
    assert "label.npy holds 0 bytes" in stale_arrays(folder)[1]
    (folder / "label.npy").unlink()
    assert stale_arrays(folder)[1] == "label.npy is missing"
    assert list(stale_caches(tmp_path / "results" / "cache")) == [folder]
    # what the workflow runs before its DAG: a dry run only says so, a run discards meta.json
    root = tmp_path / "results" / "cache"
    assert discard_stale_caches(root, dry_run=True)[0].endswith("not a dry run rebuilds it")
    assert (folder / "meta.json").exists()
    assert "rebuilt in this run" in discard_stale_caches(root, dry_run=False)[0]
    assert not (folder / "meta.json").exists()
    (folder / "meta.json").write_text("{")
    assert stale_arrays(folder) == ["meta.json cannot be read (JSONDecodeError)"]
    # a cache written before sizes were recorded cannot be judged: left as it is
    (folder / "meta.json").write_text(json.dumps({"channels": ["t1", "flair"]}))
    assert stale_arrays(folder) == []
