"""Splits: folds partition the labelled subjects, roles never overlap, subsets are nested and
grade-balanced, and sizes the data cannot supply are refused with the numbers."""

import itertools

import pytest

from lesion_transfer.splits import (
    SplitError,
    fitting_subjects,
    pretraining_split,
    source_splits,
    splits_for,
    target_splits,
    training_subset,
)


def rows(hgg, lgg, unlabelled=0):
    table = [{"subject": f"H{i:03d}", "labelled": True, "group": "HGG", "site": ""}
             for i in range(hgg)]
    table += [{"subject": f"L{i:03d}", "labelled": True, "group": "LGG", "site": ""}
              for i in range(lgg)]
    table += [{"subject": f"V{i:03d}", "labelled": False, "group": "", "site": ""}
              for i in range(unlabelled)]
    return table


@pytest.fixture
def brats_like():
    # BraTS 2018's proportions: 210 HGG, 75 LGG, and 66 unlabelled validation cases
    return target_splits("brats", rows(210, 75, 66), folds=4, local_validation=50,
                         sizes=[20, 50, 100, 150], seed=3)


def hgg_count(subjects):
    return sum(s.startswith("H") for s in subjects)


def test_folds_partition_the_labelled_subjects(brats_like):
    tests = [set(f["test"]) for f in brats_like["folds"]]
    assert sum(len(t) for t in tests) == 285
    assert set().union(*tests) == {r["subject"] for r in rows(210, 75)}
    assert all(not (a & b) for a, b in itertools.combinations(tests, 2))
    assert brats_like["unlabelled"] == [f"V{i:03d}" for i in range(66)]


def test_no_subject_has_two_roles_in_a_fold(brats_like):
    for fold in brats_like["folds"]:
        test, validation = set(fold["test"]), set(fold["local_validation"])
        training = set(training_subset(fold, 150))
        assert len(validation) == 50
        assert not (test & validation) and not (test & training) and not (validation & training)


def test_subsets_are_nested(brats_like):
    for fold in brats_like["folds"]:
        subsets = [set(training_subset(fold, n)) for n in (20, 50, 100, 150)]
        assert [len(s) for s in subsets] == [20, 50, 100, 150]
        assert all(small < large for small, large in zip(subsets, subsets[1:]))


def test_grades_are_balanced_within_one_subject(brats_like):
    """Test folds hold each grade's count to within one of each other; the local validation
    set and every training subset hold it to within one of the cohort's proportion."""
    folds = brats_like["folds"]
    for grade_count in (hgg_count, lambda group: len(group) - hgg_count(group)):
        counts = [grade_count(f["test"]) for f in folds]
        assert max(counts) - min(counts) <= 1
    share = 210 / 285
    for fold in folds:
        for group in [fold["local_validation"],
                      *(training_subset(fold, n) for n in (20, 50, 100, 150))]:
            assert abs(hgg_count(group) - share * len(group)) < 1.0, len(group)


def test_splits_are_deterministic_and_seeded():
    a = target_splits("b", rows(30, 10), 4, 5, [10], seed=1)
    assert a == target_splits("b", rows(30, 10), 4, 5, [10], seed=1)
    assert a != target_splits("b", rows(30, 10), 4, 5, [10], seed=2)


def test_sizes_the_data_cannot_supply_are_refused_with_the_numbers():
    with pytest.raises(SplitError) as caught:
        target_splits("brats_small", rows(30, 10), folds=4, local_validation=10, sizes=[20, 50],
                      seed=0)
    message = str(caught.value)
    assert "brats_small" in message and "[20, 50]" in message and "40 labelled" in message
    assert "20 after a local validation set of 10" in message


def test_source_split_and_what_may_fit_preprocessing():
    table = [{"subject": f"MS{i}", "labelled": True, "group": "", "site": f"s{i % 3}"}
             for i in range(20)]
    split = source_splits("ms", table, validation_fraction=0.2, seed=0)
    assert len(split["validation"]) == 4 and len(split["train"]) == 16
    assert not set(split["train"]) & set(split["validation"])
    sites = [int(s[2:]) % 3 for s in split["validation"]]
    assert sorted(set(sites)) == [0, 1, 2]  # every site is represented in validation
    assert fitting_subjects(split) == split["train"]
    with pytest.raises(ValueError):
        fitting_subjects(target_splits("b", rows(30, 10), 4, 5, [10], seed=1))


def test_splits_for_either_role_follow_the_config_block():
    settings = {"folds": 4, "local_validation": 5, "sizes": [10],
                "source_validation_fraction": 0.25}
    target = splits_for("target", "b", rows(30, 10), settings, seed=1)
    assert target == target_splits("b", rows(30, 10), 4, 5, [10], seed=1)
    source = splits_for("source", "m", rows(6, 2), settings, seed=1)
    assert len(source["validation"]) == 2 and len(source["train"]) == 6


def test_a_control_reserve_is_in_no_fold_and_balanced_in_grade():
    splits = splits_for("target", "brats", rows(210, 75),
                        {"folds": 4, "local_validation": 50, "sizes": [20, 150],
                         "control_reserve": 16, "source_validation_fraction": 0.25}, seed=3)
    reserve = splits["control_reserve"]
    held = set(reserve["train"]) | set(reserve["validation"])
    assert len(held) == 16 and (len(reserve["train"]), len(reserve["validation"])) == (12, 4)
    assert hgg_count(held) in (11, 12)  # 210 / 285 of 16 = 11.8
    for fold in splits["folds"]:
        assert not held & {*fold["test"], *fold["local_validation"], *fold["training_order"]}
    assert pretraining_split(splits) == reserve  # what the positive control pretrains on
    in_folds = set().union(*(f["test"] for f in splits["folds"]))
    assert len(in_folds) == 285 - 16 and not held & in_folds
    # the same splits without a reserve would differ: the reserve is taken first
    assert splits_for("target", "brats", rows(210, 75),
                      {"folds": 4, "local_validation": 50, "sizes": [20, 150],
                       "source_validation_fraction": 0.25}, seed=3).get("control_reserve") is None


def test_a_reserve_that_leaves_too_few_subjects_is_refused_with_the_numbers():
    with pytest.raises(SplitError, match="150 subjects per fold"):
        target_splits("brats", rows(210, 75), folds=4, local_validation=50, sizes=[150],
                      seed=3, reserve={"count": 40, "validation_fraction": 0.25})
    with pytest.raises(SplitError, match="'splits.control_reserve'.*found 1"):
        target_splits("brats", rows(10, 5), folds=2, local_validation=1, sizes=[1], seed=3,
                      reserve={"count": 1, "validation_fraction": 0.25})
