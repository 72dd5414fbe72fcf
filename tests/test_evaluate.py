"""Evaluation against hand-computed truth: metrics on built volumes, the operating point on
a synthetic probability map, the nesting of label maps."""

import itertools
import logging

import numpy as np
import pytest

from lesion_transfer.evaluate.metrics import WORST_HD95_MM, hd95, score_regions, surface
from lesion_transfer.labels import region_dice
from lesion_transfer.operating_point import (
    GRID,
    choose_operating_point,
    label_map,
    region_probabilities,
    tuned_region_dice,
)

SPACING = (2.0, 1.0, 3.0)  # anisotropic on purpose


def box(shape, lo, hi):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return mask


def brute_force_hd95(a, b, spacing):
    """Every surface voxel pair, in mm: the definition, with no distance transform."""
    pa = np.argwhere(surface(a)) * spacing
    pb = np.argwhere(surface(b)) * spacing
    pairwise = np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=-1)
    return np.percentile(np.r_[pairwise.min(axis=1), pairwise.min(axis=0)], 95)


def test_dice_sensitivity_specificity_of_two_boxes_match_hand_counts():
    truth = np.zeros((10, 10, 10), np.uint8)
    truth[box(truth.shape, (0, 0, 0), (4, 5, 5))] = 2  # 100 voxels
    prediction = np.zeros_like(truth)
    prediction[box(truth.shape, (2, 0, 0), (6, 5, 5))] = 2  # 100 voxels, 50 shared
    brain = box(truth.shape, (0, 0, 0), (10, 10, 5))  # 500 voxels, 400 true negatives or FPs
    scores = score_regions(prediction, truth, SPACING, brain)["WT"]
    assert scores["dice"] == pytest.approx(2 * 50 / 200)
    assert scores["sensitivity"] == pytest.approx(50 / 100)
    assert scores["specificity"] == pytest.approx((400 - 50) / 400)


def test_hd95_of_parallel_plates_is_their_distance_in_mm():
    shape = (20, 12, 10)
    for shift in (1, 3, 7):
        a = box(shape, (2, 0, 0), (3, 12, 10))
        b = box(shape, (2 + shift, 0, 0), (3 + shift, 12, 10))
        assert hd95(a, b, SPACING) == pytest.approx(shift * SPACING[0])
        assert hd95(b, a, SPACING) == pytest.approx(shift * SPACING[0])


@pytest.mark.parametrize("axis, shift", [(0, 2), (1, 3), (2, 1)])
def test_hd95_of_shifted_cubes_matches_the_definition(axis, shift):
    shape = (24, 24, 24)
    lo = np.array([5, 5, 5])
    a = box(shape, lo, lo + 8)
    offset = np.zeros(3, int)
    offset[axis] = shift
    b = box(shape, lo + offset, lo + offset + 8)
    expected = brute_force_hd95(a, b, np.array(SPACING))
    assert hd95(a, b, SPACING) == pytest.approx(expected)
    # no surface point is further than the shift itself, and most are not on the other surface
    assert 0 < hd95(a, b, SPACING) <= shift * SPACING[axis] + 1e-9


def test_hd95_in_the_box_around_the_masks_is_hd95_over_the_whole_volume():
    """hd95 works inside the bounding box of the two masks: on irregular blobs, one of them
    touching the volume's edge, it gives what distance transforms of the whole volume give."""
    from scipy import ndimage

    def whole_volume_hd95(a, b, spacing):
        def to(x, y):
            return ndimage.distance_transform_edt(~surface(y), sampling=spacing)[surface(x)]
        return np.percentile(np.r_[to(a, b), to(b, a)], 95)

    rng = np.random.default_rng(3)
    shape = (40, 36, 30)
    for trial in range(6):
        a = ndimage.gaussian_filter(rng.random(shape), 2) > 0.55
        b = ndimage.binary_dilation(a, iterations=1 + trial % 3) ^ (rng.random(shape) > 0.97)
        a[:, :, 15:] = False  # a apart from one edge, b reaching it in some trials
        if trial % 2:
            b[0, 10:20, 5:9] = True
        spacing = (0.9375, 1.2, 3.0) if trial % 2 else SPACING
        assert a.any() and b.any()
        assert hd95(a, b, spacing) == whole_volume_hd95(a, b, spacing)


def test_every_empty_and_non_empty_combination_is_scored_the_brats_way():
    shape = (8, 8, 8)
    some = box(shape, (2, 2, 2), (5, 5, 5))
    empty = np.zeros(shape, bool)
    expected = {  # (prediction, truth): (dice, hd95, sensitivity)
        ("empty", "empty"): (1.0, 0.0, 1.0),
        ("empty", "some"): (0.0, WORST_HD95_MM, 0.0),
        ("some", "empty"): (0.0, WORST_HD95_MM, 1.0),
        ("some", "some"): (1.0, 0.0, 1.0),
    }
    masks = {"empty": empty, "some": some}
    for (p, t), (dice, distance, sensitivity) in expected.items():
        scores = score_regions(masks[p].astype(np.uint8) * 4, masks[t].astype(np.uint8) * 4,
                               SPACING)
        for region in ("WT", "TC", "ET"):
            assert scores[region]["dice"] == dice, (p, t, region)
            assert scores[region]["hd95"] == distance, (p, t, region)
            assert scores[region]["sensitivity"] == sensitivity, (p, t, region)
    everything = np.ones(shape, np.uint8) * 2
    assert score_regions(everything, everything, SPACING)["WT"]["specificity"] == 1.0


def whole_tumour_only(probability, truth):
    """A WT probability map and its truth as the operating point takes them: no TC or ET in
    either, so both score 1 at every threshold and only WT's threshold matters."""
    empty = np.zeros_like(probability)
    return np.stack([probability, empty, empty]), np.where(truth, 2, 0).astype(np.uint8)


def test_operating_point_finds_the_known_optimum_of_a_synthetic_map():
    rng = np.random.default_rng(0)
    shape = (16, 16, 16)
    truth = box(shape, (4, 4, 4), (10, 10, 10))
    probability = rng.uniform(0.0, 0.2, shape)
    probability[truth] = 0.505  # found only by thresholds <= 0.505
    decoys = box(shape, (12, 0, 0), (16, 16, 16))
    probability[decoys] = 0.495  # false positives for thresholds <= 0.495
    regions, label = whole_tumour_only(probability, truth)
    point = choose_operating_point([regions], [label])
    assert point["WT"]["threshold"] == pytest.approx(0.50)  # the only grid value in (0.495, 0.505]
    assert point["WT"]["mean_dice"] == pytest.approx(1.0)
    at_048 = list(GRID).index(0.48)
    assert point["WT"]["curve"][at_048] == pytest.approx(
        2 * truth.sum() / (2 * truth.sum() + decoys.sum()), abs=1e-5)
    assert point["TC"]["mean_dice"] == point["ET"]["mean_dice"] == 1.0


def test_operating_point_maximises_the_mean_over_subjects_not_one_subject():
    shape = (10, 10, 10)
    truth = box(shape, (2, 2, 2), (6, 6, 6))  # 64 voxels
    # subject A: perfect at any threshold up to 0.8; subject B: its truth scores only 0.3
    a = whole_tumour_only(np.where(truth, 0.8, 0.0), truth)
    b = whole_tumour_only(np.where(truth, 0.3, 0.0), truth)
    point = choose_operating_point([a[0], b[0]], [a[1], b[1]])
    assert point["WT"]["mean_dice"] == pytest.approx(1.0)
    assert point["WT"]["threshold"] <= 0.3
    curve = np.array(point["WT"]["curve"])
    assert np.allclose(curve[GRID <= 0.3], 1.0) and np.allclose(curve[GRID > 0.8], 0.0)
    assert np.allclose(curve[(GRID > 0.3) & (GRID <= 0.8)], 0.5)


def test_label_maps_nest_et_in_tc_in_wt_and_use_brats_values():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 12, 12, 12))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
    regions = region_probabilities(probabilities)
    assert np.allclose(regions[0], 1 - probabilities[0])  # WT: everything but background
    assert np.allclose(regions[1], probabilities[1] + probabilities[3])  # TC: 1 + 4
    assert np.allclose(regions[2], probabilities[3])  # ET: 4
    for thresholds in itertools.product((0.1, 0.3, 0.6), repeat=3):
        label = label_map(regions, dict(zip(("WT", "TC", "ET"), thresholds)))
        assert set(np.unique(label)) <= {0, 1, 2, 4}
        whole, core, enhancing = label > 0, np.isin(label, (1, 4)), label == 4
        assert not (core & ~whole).any() and not (enhancing & ~core).any()
        assert np.array_equal(whole, regions[0] >= thresholds[0])


def test_choose_operating_point_reports_every_region():
    shape = (8, 8, 8)
    truth = np.zeros(shape, np.uint8)
    truth[2:6, 2:6, 2:6] = 2
    truth[3:5, 3:5, 3:5] = 4
    regions = np.stack([np.isin(truth, r).astype(float) * 0.9 for r in ((1, 2, 4), (1, 4), (4,))])
    point = choose_operating_point([regions], [truth])
    assert set(point) == {"WT", "TC", "ET"}
    for region in point.values():
        assert region["mean_dice"] == pytest.approx(1.0) and region["threshold"] <= 0.9



def nested_case():
    """One 1 x 1 x 20 subject, by hand: WT is voxels 0-9, ET (inside TC) voxels 0-3. WT's
    probability is 0.95 on voxels 4-9, 0.86 on the ET voxels and 0.88 on ten background
    voxels, so WT's own best threshold (0.89-0.95: Dice 12/16) leaves the ET voxels out; ET's
    own probability there is 0.8."""
    truth = np.zeros((1, 1, 20), np.uint8)
    truth[..., 4:10] = 2
    truth[..., 0:4] = 4
    wt = np.r_[[0.86] * 4, [0.95] * 6, [0.88] * 10].reshape(truth.shape)
    et = np.r_[[0.8] * 4, [0.0] * 16].reshape(truth.shape)
    return np.stack([wt, et, et]), truth  # TC's probability is ET's: TC's truth is 0-3 too


def test_the_thresholds_are_chosen_together_for_the_mean_over_the_regions():
    regions, truth = nested_case()
    point = choose_operating_point([regions], [truth])
    # WT's own best (12/16 above 0.88) would leave no TC or ET voxel: 0.25 over the regions;
    # at or below 0.86, WT keeps the background voxels too (Dice 2/3) and TC and ET are found
    assert point["WT"]["threshold"] <= 0.86
    assert point["WT"]["mean_dice"] == pytest.approx(2 / 3)
    assert max(point["WT"]["curve"]) == pytest.approx(12 / 16)
    assert point["TC"]["mean_dice"] == point["ET"]["mean_dice"] == 1.0
    assert point["ET"]["threshold"] <= 0.8


def informative_subjects(count, seed, shape=(12, 12, 12)):
    """Nested WT/TC/ET boxes and softmax probabilities that favour the true class, far from
    perfect: region maps and truths for `choose_operating_point`."""
    rng = np.random.default_rng(seed)
    truths, maps = [], []
    for _ in range(count):
        truth = np.zeros(shape, np.uint8)
        truth[2:9, 2:9, 2:9] = 2
        truth[3:7, 3:7, 3:7] = 1
        truth[4:6, 4:6, 4:6] = 4
        logits = rng.normal(size=(4, *shape))
        for channel, label in enumerate((0, 1, 2, 4)):
            logits[channel][truth == label] += 1.5
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
        truths.append(truth)
        maps.append(region_probabilities(probabilities))
    return maps, truths


def test_no_point_of_the_grid_scores_better_than_the_one_chosen():
    maps, truths = informative_subjects(3, seed=4)
    grid = np.round(np.arange(1, 10) / 10, 1)  # small enough to build every label map

    def score(thresholds):
        labels = [label_map(m, dict(zip(("WT", "TC", "ET"), thresholds))) for m in maps]
        return np.mean([list(region_dice(label, truth).values())
                        for label, truth in zip(labels, truths)])

    point = choose_operating_point(maps, truths, grid)
    chosen = score([point[r]["threshold"] for r in ("WT", "TC", "ET")])
    assert chosen == pytest.approx(max(score(t) for t in itertools.product(grid, repeat=3)))
    assert chosen == pytest.approx(np.mean([point[r]["mean_dice"] for r in point]))


def test_an_operating_points_mean_dice_is_what_its_label_maps_score():
    maps, truths = informative_subjects(3, seed=3)
    point = choose_operating_point(maps, truths)
    thresholds = {region: point[region]["threshold"] for region in point}
    labels = [label_map(m, thresholds) for m in maps]
    for region in ("WT", "TC", "ET"):
        scored = np.mean([region_dice(label, truth)[region]
                          for label, truth in zip(labels, truths)])
        assert point[region]["mean_dice"] == pytest.approx(scored), region
    assert tuned_region_dice(maps, truths)["mean_dice"] == pytest.approx(
        np.mean([point[r]["mean_dice"] for r in point]))

# --- scores on each subject's own grid ---------------------------------------------------------

def identity_transforms(folder):
    """An ANTs transform folder as registration writes it, holding the identity."""
    import json

    import ants

    folder.mkdir(parents=True, exist_ok=True)
    ants.write_transform(ants.create_ants_transform(transform_type="AffineTransform",
                                                    dimension=3), str(folder / "affine.mat"))
    (folder / "transforms.json").write_text(json.dumps(
        {"forward": ["affine.mat"], "inverse": ["affine.mat"], "inverse_invert": [True]}))
    return str(folder)


def test_native_scores_are_in_mm_of_the_subjects_own_anisotropic_grid(tmp_path):
    """Template grid 1 mm, native grid 1 x 1 x 3 mm on the same world (identity registration):
    native voxel (i, j, k) sits on template voxel (i, j, 3k). A box and a box one native slice
    (3 mm) further, two plates two slices (6 mm) apart; tumour predicted outside the brain is
    dropped. Every number below is counted by hand."""
    from lesion_transfer.evaluate.native import native_label, native_scores

    template_affine = np.eye(4)
    native_affine = np.diag([1.0, 1.0, 3.0, 1.0])
    native_shape = (40, 40, 12)
    cached = np.zeros((40, 40, 36), np.uint8)  # crop == template grid (start 0)
    cached[10:20, 10:20, 9:19] = 2   # native slices k = 3, 4, 5, 6 (z = 9, 12, 15, 18)
    cached[30:34, 30:34, 0:30] = 4   # outside the brain: must vanish
    meta = {"crop_start": [0, 0, 0], "template_shape": [40, 40, 36],
            "template_affine": template_affine.tolist(), "native_shape": list(native_shape),
            "native_affine": native_affine.tolist(),
            "transforms": identity_transforms(tmp_path / "transforms")}
    brain = np.zeros(native_shape, np.uint8)
    brain[5:25, 5:25, 1:11] = 1
    prediction = native_label(cached, meta, brain)
    expected = np.zeros(native_shape, np.uint8)
    expected[10:20, 10:20, 3:7] = 2
    np.testing.assert_array_equal(prediction, expected)

    truth = np.zeros(native_shape, np.uint8)
    truth[10:20, 10:20, 4:8] = 2  # one native slice (3 mm) further along the third axis
    scores = native_scores(prediction, truth, native_affine, brain)["WT"]
    assert scores["dice"] == pytest.approx(2 * 300 / 800)
    assert scores["sensitivity"] == pytest.approx(300 / 400)
    negatives = 20 * 20 * 10 - 400
    assert scores["specificity"] == pytest.approx((negatives - 100) / negatives)
    assert scores["truth_voxels"] == 400
    assert native_scores(prediction, truth, native_affine, brain)["ET"]["truth_voxels"] == 0

    plate, other = np.zeros(native_shape, np.uint8), np.zeros(native_shape, np.uint8)
    plate[10:20, 10:20, 3] = 1
    other[10:20, 10:20, 5] = 1
    assert native_scores(plate, other, native_affine, brain)["WT"]["hd95"] == pytest.approx(6.0)
    # the same plates on a grid read as isotropic would be 2 mm apart: the spacing is used
    assert native_scores(plate, other, np.eye(4), brain)["WT"]["hd95"] == pytest.approx(2.0)


def test_a_submission_holds_tumour_only_inside_the_brain(tmp_path):
    """A model whose operating point labels everything: the native map is tumour inside the
    brain mask and 0 outside it, never the whole warped-back crop box."""
    import json

    import nibabel as nib

    from lesion_transfer.evaluate.native import Ensemble, make_submission_stage
    from lesion_transfer.evaluate.storage import save_probabilities

    native_affine = np.diag([1.0, 1.0, 3.0, 1.0])
    folder = tmp_path / "cache" / "S1"
    folder.mkdir(parents=True)
    meta = {"crop_start": [0, 0, 0], "template_shape": [40, 40, 36],
            "template_affine": np.eye(4).tolist(), "native_shape": [40, 40, 12],
            "native_affine": native_affine.tolist(),
            "transforms": identity_transforms(tmp_path / "transforms")}
    (folder / "meta.json").write_text(json.dumps(meta))
    save_probabilities({"S1": np.ones((3, 40, 40, 36), np.float32)}, tmp_path / "p.npz")
    (tmp_path / "op.json").write_text(json.dumps(
        {"regions": {r: {"threshold": 0.5} for r in ("WT", "TC", "ET")}}))
    brain = np.zeros((40, 40, 12), np.uint8)
    brain[5:25, 5:25, 1:11] = 1
    brain_path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(brain, native_affine), brain_path)
    make_submission_stage(Ensemble([tmp_path / "p.npz"], [tmp_path / "op.json"]),
                          logging.getLogger("test"), subjects=[folder / "meta.json"],
                          brains={"S1": brain_path}, output_folder=tmp_path / "out")
    written = nib.load(tmp_path / "out" / "S1.nii.gz")
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.where(brain > 0, 4, 0))
    np.testing.assert_allclose(written.affine, native_affine)


def test_inference_slides_the_window_the_kept_weights_learnt_at(tmp_path):
    """A card that names its kept weights' window (a positive control that kept its start)
    is predicted with it; an older card, with the job's training patch."""
    import json

    import torch

    from lesion_transfer.evaluate.stages import model_for_inference
    from lesion_transfer.model.files import save_model
    from lesion_transfer.model.unet import UNet3D, UNetConfig

    model = UNet3D(UNetConfig(out_channels=4, width=4, depth=3, norm="instance"))
    save_model(model, model.state_dict(), tmp_path / "model.pt", {})
    card = {"config": {"settings": {"patch_size": [32, 32, 32]}}}
    (tmp_path / "old.json").write_text(json.dumps(card))
    (tmp_path / "new.json").write_text(json.dumps({**card, "inference_patch_size": [48] * 3}))
    assert model_for_inference(tmp_path / "model.pt", tmp_path / "old.json", "cpu")[1] == \
        [32, 32, 32]
    loaded, window = model_for_inference(tmp_path / "model.pt", tmp_path / "new.json", "cpu")
    assert window == [48, 48, 48] and isinstance(loaded, torch.nn.Module)
