"""Splits, written once to results/splits/{dataset}.json and read by every later stage.

Source: train / validation. Target: K folds stratified by grade; per fold a local validation
set (for choosing epochs and operating points) and nested training subsets of the
configured sizes, every one of them balanced in grade to within one subject. A target may hold
back a reserve (`control_reserve`: train / validation, in no fold) on which the positive
control pretrains when the study has no dataset with role control.
"""

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lesion_transfer.errors import Refusal
from lesion_transfer.io.atomic import write_text


class SplitError(Refusal):
    """A split the data cannot supply (sizes, reserve, folds)."""


def _shuffled_groups(subjects: Sequence[str], groups: Sequence[str],
                     rng: np.random.Generator) -> dict[str, list[str]]:
    by_group: dict[str, list[str]] = defaultdict(list)
    for subject, group in zip(subjects, groups):
        by_group[group].append(subject)
    return {group: [str(s) for s in rng.permutation(sorted(by_group[group]))]
            for group in sorted(by_group)}


def grade_balanced_order(subjects: Sequence[str], groups: Sequence[str],
                         rng: np.random.Generator) -> list[str]:
    """Shuffle subjects so that every prefix holds each group in proportion (within one).

    At each position the group furthest below its share is drawn next (largest-deficit
    apportionment), so nested subsets can simply be prefixes of one order.
    """
    members = _shuffled_groups(subjects, groups, rng)
    share = {g: len(m) / len(subjects) for g, m in members.items()}
    taken = dict.fromkeys(members, 0)
    order = []
    for position in range(1, len(subjects) + 1):
        open_groups = [g for g in members if taken[g] < len(members[g])]
        group = max(open_groups, key=lambda g: (share[g] * position - taken[g], g))
        order.append(members[group][taken[group]])
        taken[group] += 1
    return order


def stratified_folds(subjects: Sequence[str], groups: Sequence[str], folds: int,
                     rng: np.random.Generator) -> list[list[str]]:
    """Deal each group's shuffled subjects round-robin: a group's count per fold differs by
    at most one between folds, and so do the folds' sizes."""
    dealt: list[list[str]] = [[] for _ in range(folds)]
    position = 0
    for members in _shuffled_groups(subjects, groups, rng).values():
        for subject in members:
            dealt[position % folds].append(subject)
            position += 1
    return dealt


def check_target_sizes(dataset: str, labelled: int, folds: int, local_validation: int,
                       sizes: Sequence[int], reserve: int = 0) -> None:
    """Raise SplitError naming the numbers when the data cannot supply the configured split
    (`reserve`: labelled subjects held out of every fold for the positive control)."""
    if reserve and not 2 <= reserve <= labelled - 2:
        raise SplitError(f"dataset {dataset}: config key 'splits.control_reserve': expected "
                         f"between 2 and {labelled - 2} of its {labelled} labelled "
                         f"subjects, found {reserve}")
    labelled -= reserve
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


def control_reserve(labelled: Sequence[str], grade: dict[str, str], count: int,
                    validation_fraction: float, seed: int) -> dict[str, list[str]]:
    """`count` labelled target subjects, balanced in grade, held out of every fold: the
    positive control's pretraining set, split into train / validation (check_target_sizes
    has checked the count)."""
    order = grade_balanced_order(labelled, [grade[s] for s in labelled],
                                 np.random.default_rng([seed, 4]))[:count]
    validation = min(max(1, int(round(validation_fraction * count))), count - 1)
    return {"train": sorted(order[validation:]), "validation": sorted(order[:validation])}


def target_splits(dataset: str, rows: Sequence[dict], folds: int, local_validation: int,
                  sizes: Sequence[int], seed: int,
                  reserve: dict[str, Any] | None = None) -> dict[str, Any]:
    """rows: subjects-table rows. Folds partition the labelled subjects (less the control
    reserve: reserve = {"count", "validation_fraction"}, or None).

    Each fold's training pool is written as one order (`training_order`); a training set of
    size n is its first n subjects (`training_subset`). The file does not depend on the
    configured sizes, so adding a size leaves it, and everything fitted on it, untouched;
    `sizes` (may be empty) are only checked against what the data can supply.
    """
    labelled = [r for r in rows if r["labelled"]]
    grade = {r["subject"]: r["group"] or "unknown" for r in labelled}
    check_target_sizes(dataset, len(grade), folds, local_validation, list(sizes) or [1],
                       reserve["count"] if reserve else 0)
    result: dict[str, Any] = {"dataset": dataset, "role": "target", "seed": seed, "folds": [],
              "unlabelled": [r["subject"] for r in rows if not r["labelled"]]}
    if reserve:
        result["control_reserve"] = control_reserve(
            list(grade), grade, reserve["count"], reserve["validation_fraction"], seed)
        held = {*result["control_reserve"]["train"], *result["control_reserve"]["validation"]}
        grade = {s: g for s, g in grade.items() if s not in held}
    test_sets = stratified_folds(list(grade), list(grade.values()), folds,
                                 np.random.default_rng([seed, 1]))
    for k, test in enumerate(test_sets):
        rest = [s for s in grade if s not in set(test)]
        rest = grade_balanced_order(rest, [grade[s] for s in rest],
                                    np.random.default_rng([seed, 2, k]))
        validation = rest[:local_validation]
        # the pool gets an order of its own, so that each of its prefixes is balanced too
        pool = grade_balanced_order(rest[local_validation:],
                                    [grade[s] for s in rest[local_validation:]],
                                    np.random.default_rng([seed, 3, k]))
        result["folds"].append({
            "fold": k, "test": sorted(test), "local_validation": sorted(validation),
            "training_order": pool,
        })
    return result


def source_splits(dataset: str, rows: Sequence[dict], validation_fraction: float, seed: int,
                  role: str = "source") -> dict[str, Any]:
    labelled = [r for r in rows if r["labelled"]]
    if len(labelled) < 2:
        raise SplitError(f"dataset {dataset}: a train/validation split needs at least 2 "
                         f"labelled subjects, found {len(labelled)}")
    rng = np.random.default_rng([seed, 0])
    subjects = [r["subject"] for r in labelled]
    order = grade_balanced_order(subjects, [r["site"] or "unknown" for r in labelled], rng)
    count = min(max(1, int(round(validation_fraction * len(order)))), len(order) - 1)
    return {"dataset": dataset, "role": role, "seed": seed,
            "validation": sorted(order[:count]), "train": sorted(order[count:]),
            "unlabelled": [r["subject"] for r in rows if not r["labelled"]]}


def write_splits(splits: dict[str, Any], path: str | Path) -> None:
    write_text(path, json.dumps(splits, indent=1))


def read_splits(path: str | Path) -> dict[str, Any]:
    with open(path) as handle:
        return json.load(handle)


def fitting_subjects(splits: dict[str, Any]) -> list[str]:
    """Subjects that fitted things (Nyul landmarks, statistics) may see: source training only."""
    if splits["role"] != "source":
        raise ValueError("only the source's training subjects fit preprocessing parameters")
    return list(splits["train"])


def splits_for(role: str, dataset: str, rows: Sequence[dict], settings: dict[str, Any],
               seed: int) -> dict[str, Any]:
    """The splits file's content for a dataset of any role (`settings`: the config's `splits`
    block): a pretraining set (source, control) is split into train / validation."""
    if role in ("source", "control"):
        return source_splits(dataset, rows, settings["source_validation_fraction"], seed, role)
    reserve = None
    if settings.get("control_reserve"):
        reserve = {"count": settings["control_reserve"],
                   "validation_fraction": settings["source_validation_fraction"]}
    return target_splits(dataset, rows, settings["folds"], settings["local_validation"],
                         settings.get("sizes", []), seed, reserve)


@dataclass(frozen=True)
class Splitting:
    """Rule make_splits's settings: the dataset, its role in the study, the config's `splits`
    block and the study's seed."""

    dataset: str
    role: str
    settings: dict
    seed: int


def make_splits_stage(splitting: Splitting, *, subjects_table: Path, out_path: Path) -> dict:
    """The splits of one dataset from its subjects table, written to `out_path`."""
    from lesion_transfer.io.ingest import read_subjects_table

    splits = splits_for(splitting.role, splitting.dataset, read_subjects_table(subjects_table),
                        splitting.settings, splitting.seed)
    write_splits(splits, out_path)
    return splits


def describe(splits: dict[str, Any]) -> str:
    if splits["role"] in ("source", "control"):
        return f"{len(splits['train'])} train, {len(splits['validation'])} validation"
    pools = sorted({len(f["training_order"]) for f in splits["folds"]})
    reserve = splits.get("control_reserve")
    held = (f"; {len(reserve['train'])} + {len(reserve['validation'])} held out for the "
            "positive control" if reserve else "")
    return (f"{len(splits['folds'])} folds, local validation "
            f"{len(splits['folds'][0]['local_validation'])}, training pools of {pools} "
            f"subjects{held}")


def pretraining_split(splits: dict[str, Any]) -> dict[str, list[str]]:
    """The train / validation subjects a model pretrains on: a source's or control dataset's
    split, or a target's control reserve."""
    part = splits["control_reserve"] if splits["role"] == "target" else splits
    return {"train": list(part["train"]), "validation": list(part["validation"])}


def training_subset(fold: dict[str, Any], size: int | str) -> list[str]:
    """A fold's training set of `size` subjects: the first `size` of its pool, so that the
    sets of growing size are nested."""
    order = fold["training_order"]
    if int(size) > len(order):
        raise SplitError(f"fold {fold['fold']}: a training set of {size} subjects, but its pool "
                         f"holds {len(order)}")
    return sorted(order[:int(size)])
