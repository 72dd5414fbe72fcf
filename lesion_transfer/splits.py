"""Splits, written once to results/splits/{dataset}.json and read by every later stage.

Source: train / validation. Target: K folds stratified by grade; per fold a local validation
set (for choosing epochs and operating points) and nested training subsets of the
configured sizes, every one of them balanced in grade to within one subject.
"""

import json
from collections import defaultdict

import numpy as np

from lesion_transfer.io.atomic import write_text


class SplitError(ValueError):
    pass


def grade_balanced_order(subjects, groups, rng):
    """Shuffle subjects so that every prefix holds each group in proportion (to within one).

    Each subject gets the key (rank within its group + jitter) / group size; sorting by it
    interleaves the groups evenly, so nested subsets are prefixes of one order.
    """
    by_group = defaultdict(list)
    for subject, group in zip(subjects, groups):
        by_group[group].append(subject)
    keyed = []
    for group in sorted(by_group):
        members = list(rng.permutation(sorted(by_group[group])))
        for rank, subject in enumerate(members):
            keyed.append(((rank + rng.uniform(0.0, 1.0)) / len(members), subject))
    return [subject for _, subject in sorted(keyed)]


def check_target_sizes(dataset, labelled, folds, local_validation, sizes):
    """Raise SplitError naming the numbers when the data cannot supply the configured split."""
    smallest_fold_rest = labelled - int(np.ceil(labelled / folds))
    available = smallest_fold_rest - local_validation
    if folds < 2 or labelled < folds:
        raise SplitError(f"dataset {dataset}: {folds} folds need at least {max(folds, 2)} "
                         f"labelled subjects and folds >= 2, found {labelled} labelled")
    if sizes and max(sizes) > available:
        raise SplitError(
            f"dataset {dataset}: training sizes {sorted(sizes)} need {max(sizes)} subjects per "
            f"fold, but {labelled} labelled subjects in {folds} folds leave "
            f"{smallest_fold_rest} outside a test fold, {available} after a local validation "
            f"set of {local_validation}")
    if available < 1:
        raise SplitError(f"dataset {dataset}: a local validation set of {local_validation} "
                         f"leaves no training subjects ({labelled} labelled, {folds} folds)")


def target_splits(dataset, rows, folds, local_validation, sizes, seed):
    """rows: subjects-table rows. Folds partition the labelled subjects."""
    labelled = [r for r in rows if r["labelled"]]
    check_target_sizes(dataset, len(labelled), folds, local_validation, sizes)
    rng = np.random.default_rng([seed, 1])
    grade = {r["subject"]: r["group"] or "unknown" for r in labelled}
    order = grade_balanced_order(list(grade), list(grade.values()), rng)
    test_sets = [order[k::folds] for k in range(folds)]
    result = {"dataset": dataset, "role": "target", "seed": seed, "folds": [],
              "unlabelled": [r["subject"] for r in rows if not r["labelled"]]}
    for k, test in enumerate(test_sets):
        rest = [s for s in order if s not in set(test)]
        rest = grade_balanced_order(rest, [grade[s] for s in rest],
                                    np.random.default_rng([seed, 2, k]))
        validation, pool = rest[:local_validation], rest[local_validation:]
        result["folds"].append({
            "fold": k, "test": sorted(test), "local_validation": sorted(validation),
            "training_order": pool,
            "training": {str(n): sorted(pool[:n]) for n in sorted(sizes)},
        })
    return result


def source_splits(dataset, rows, validation_fraction, seed):
    labelled = [r for r in rows if r["labelled"]]
    if len(labelled) < 2:
        raise SplitError(f"dataset {dataset}: a train/validation split needs at least 2 "
                         f"labelled subjects, found {len(labelled)}")
    rng = np.random.default_rng([seed, 0])
    subjects = [r["subject"] for r in labelled]
    order = grade_balanced_order(subjects, [r["site"] or "unknown" for r in labelled], rng)
    count = min(max(1, int(round(validation_fraction * len(order)))), len(order) - 1)
    return {"dataset": dataset, "role": "source", "seed": seed,
            "validation": sorted(order[:count]), "train": sorted(order[count:]),
            "unlabelled": [r["subject"] for r in rows if not r["labelled"]]}


def write_splits(splits, path):
    write_text(path, json.dumps(splits, indent=1))


def read_splits(path):
    with open(path) as handle:
        return json.load(handle)


def fitting_subjects(splits):
    """Subjects that fitted things (Nyul landmarks, statistics) may see: source training only."""
    if splits["role"] != "source":
        raise ValueError("only the source's training subjects fit preprocessing parameters")
    return list(splits["train"])
