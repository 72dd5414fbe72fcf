"""Ingestion: find a dataset's subjects, check every file, write the subjects table.

All problems of a dataset are collected and reported together, each naming the subject,
the file, what was expected and what was found, and the table is written only when there
are none, so that no later stage starts on bad data.
"""

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from lesion_transfer import MODALITIES, SAFE_ID_PATTERN
from lesion_transfer.errors import Refusal
from lesion_transfer.io.atomic import file_sha256, write_tsv
from lesion_transfer.io.layouts import (
    LABEL_SCHEMES,
    Subject,
    brats_label_scheme,
    find_brats,
    find_manifest,
)
from lesion_transfer.io.nifti import spacing_of

TABLE_COLUMNS = ["subject", *MODALITIES, "label", "labelled", "group", "site", "label_scheme",
                 "mask"]
GRID_TOLERANCE_MM = 1e-3
# a volume's grid: its shape and its voxel-to-world affine
Grid = tuple[tuple[int, ...], np.ndarray]
# a row of the subjects table, as read_subjects_table gives it
TableRow = dict[str, Any]


class IngestionError(Refusal):
    """Every problem found in a dataset, one per line."""

    def __init__(self, dataset: str, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"dataset {dataset}: {len(self.problems)} problem(s) found, "
                         f"nothing written:\n{lines}")


def default_label_scheme(spec: Mapping[str, Any]) -> str:
    return str(spec.get("label_scheme") or ("binary" if spec["role"] == "source" else "brats"))


def label_scheme_of(spec: Mapping[str, Any], subject: str) -> str:
    """A subject's label scheme from its dataset's config entry and its id alone."""
    if spec["format"] == "brats":
        return brats_label_scheme(subject)
    return default_label_scheme(spec)


def find_subjects(spec: Mapping[str, Any]) -> list[Subject]:
    """Subjects of one dataset's config entry (`format`, `location`, a manifest's `columns`),
    files unopened."""
    if spec["format"] == "brats":
        subjects = find_brats(spec["location"], labelled=True,
                              grade_mapping=spec.get("grade_mapping"))
        if spec.get("unlabelled_location"):
            subjects += find_brats(spec["unlabelled_location"], labelled=False)
        return subjects
    # every column named: the config fills the schema's defaults (config.with_manifest_columns)
    return find_manifest(spec["location"], spec["columns"], default_label_scheme(spec))


def ingest_dataset(name: str, spec: Mapping[str, Any], threads: int = 1) -> list[Subject]:
    """Find and check every subject; raise IngestionError listing all problems, if any.

    An empty label (no lesion, no tumour) is a problem unless the dataset's
    `allow_empty_labels` says such subjects belong to the study (a target only)."""
    subjects = find_subjects(spec)
    problems = duplicate_problems(subjects) + id_problems(subjects)
    allow_empty = bool(spec.get("allow_empty_labels")) and spec["role"] == "target"
    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        for subject_problems in pool.map(lambda s: check_subject(s, allow_empty), subjects):
            problems.extend(subject_problems)
        problems.extend(shared_scan_problems(subjects, pool))
    if problems:
        raise IngestionError(name, problems)
    return subjects


def duplicate_problems(subjects: Sequence[Subject]) -> list[str]:
    seen: dict[str, list[str]] = {}
    for subject in subjects:
        seen.setdefault(subject.subject, []).append(subject.source)
    return [f"subject {sid}: files {', '.join(places)}: expected a unique subject id, found it "
            f"{len(places)} times" for sid, places in seen.items() if len(places) > 1]


def shared_scan_problems(subjects: Sequence[Subject], pool: ThreadPoolExecutor) -> list[str]:
    """One scan in two subjects (the same path, or the same bytes under another name) would put
    one person on both sides of a split: name both. Labels and masks may repeat (an empty
    label, a shared mask); scans may not."""
    scans = [(s.subject, path) for s in subjects for m in MODALITIES
             if (path := s.images[m]) is not None and Path(path).is_file()]
    return [f"subjects {', '.join(dict.fromkeys(owner for owner, _ in found))}: files "
            f"{', '.join(str(path) for _, path in found)}: expected each subject's scans to be "
            f"its own, found {how} in {len(found)} places"
            for found, how in _shared_scans(scans, pool)]


def _shared_scans(scans: Sequence[tuple[Any, str | Path]], pool: ThreadPoolExecutor
                  ) -> list[tuple[list[tuple[Any, str | Path]], str]]:
    """(its (owner, path) pairs, "one file" or "the same bytes") for each scan that more than
    one owner holds; scans: (owner, path) pairs."""
    found_by_digest: dict[str, list[tuple[Any, str | Path]]] = {}
    for (owner, path), digest in zip(scans, pool.map(lambda scan: file_sha256(scan[1]), scans)):
        found_by_digest.setdefault(digest, []).append((owner, path))
    shared = []
    for found in found_by_digest.values():
        if len({owner for owner, _ in found}) > 1:
            same_path = len({Path(path).resolve() for _, path in found}) == 1
            shared.append((found, "one file" if same_path else "the same bytes"))
    return shared


class SharedAcrossDatasets(Refusal):
    """Scans that two datasets of one study both hold, one per line."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"datasets of this study: {len(self.problems)} scan(s) in two "
                         f"datasets, nothing written:\n{lines}")


def check_datasets_disjoint(tables: Mapping[str, str | Path], threads: int = 1
                            ) -> dict[str, int]:
    """tables: {dataset: its subjects table}. A scan (by resolved path or by its bytes) in two
    datasets would let what a model was trained on reach the subjects it is tested on (a
    control's pretraining set copied from the target, a source that holds target scans):
    raise SharedAcrossDatasets naming each such scan's datasets, subjects and files.
    Returns {dataset: scans checked}."""
    scans: list[tuple[Any, str | Path]] = []
    counts: dict[str, int] = {}
    for dataset, table in tables.items():
        found = [((dataset, row["subject"]), row[m]) for row in read_subjects_table(table)
                 for m in MODALITIES if row[m]]
        counts[dataset] = len(found)
        scans += found
    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        shared = _shared_scans(scans, pool)
    problems = []
    for found, how in shared:
        datasets = list(dict.fromkeys(dataset for (dataset, _), _ in found))
        if len(datasets) < 2:
            continue  # two subjects of one dataset: its ingestion refuses them
        places = ", ".join(f"{path} ({dataset} subject {subject})"
                           for (dataset, subject), path in found)
        problems.append(f"datasets {', '.join(datasets)}: files {places}: expected each "
                        f"dataset's scans to be its own, found {how} in {len(found)} places")
    if problems:
        raise SharedAcrossDatasets(problems)
    return counts


def id_problems(subjects: Sequence[Subject]) -> list[str]:
    """Ids become folder names: letters, digits, '-', '_', '.', starting with a letter or digit."""
    return [f"subject {s.subject!r}: {s.source}: expected an id of letters, digits, '-', '_' "
            f"and '.', starting with a letter or digit, found {s.subject!r}"
            for s in subjects if s.subject and not re.fullmatch(SAFE_ID_PATTERN, s.subject)]


def check_subject(subject: Subject, allow_empty_label: bool = False) -> list[str]:
    """Problems of one subject: each file readable, 3D, finite; grids; label values."""
    problems = list(subject.missing)
    grids: dict[str, Grid] = {}
    files: dict[str, Path] = {m: path for m in MODALITIES
                              if (path := subject.images[m]) is not None}
    if subject.label is not None:
        files["label"] = subject.label
    if subject.mask is not None:
        files["mask"] = subject.mask
    for role, path in files.items():
        read = _read_volume(subject.subject, path)
        if isinstance(read, str):
            problems.append(read)
            continue
        data, grids[role] = read
        if role == "label":
            problems.extend(_label_problems(subject, path, data, allow_empty_label))
    problems.extend(_grid_problems(subject, files, grids))
    if "mask" in grids and "t1" in grids and not same_grid(grids["mask"], grids["t1"]):
        problems.append(f"subject {subject.subject}: file {files['mask']}: expected the grid of "
                        f"{files['t1']} ({describe_grid(*grids['t1'])}), found "
                        f"{describe_grid(*grids['mask'])}")
    return problems


def _read_volume(subject: str, path: str | Path) -> tuple[np.ndarray, Grid] | str:
    """The volume's data and grid, or the problem that stops it being read."""
    where = f"subject {subject}: file {path}"
    if not Path(path).exists():
        return f"{where}: expected a NIfTI file, found no such file"
    try:
        image: Any = nib.load(str(path))  # NIfTI-1 or -2: the loader picks the class
        data = np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel raises many kinds for a corrupt or foreign file
        return f"{where}: expected a readable NIfTI image, found: {error}"
    if data.ndim != 3:
        return (f"{where}: expected a 3D image, found {data.ndim}D data of "
                            f"shape {data.shape}")
    bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
    if bad:
        return (f"{where}: expected finite voxel values, found {bad} NaN or "
                            f"infinite voxel(s)")
    return data, (data.shape, image.affine)


def _label_problems(subject: Subject, path: str | Path, data: np.ndarray,
                    allow_empty: bool = False) -> list[str]:
    allowed = sorted(LABEL_SCHEMES[subject.label_scheme])
    where = f"subject {subject.subject}: file {path}"
    if not np.all(np.equal(np.mod(data, 1), 0)):
        return [f"{where}: expected integer label values {allowed}, found fractional values"]
    values, counts = np.unique(data.astype(np.int64), return_counts=True)
    unexpected = {int(v): int(c) for v, c in zip(values, counts) if int(v) not in allowed}
    if unexpected:
        found = ", ".join(f"{v} ({c} voxels)" for v, c in unexpected.items())
        return [f"{where}: expected label values in {allowed} ({subject.label_scheme} scheme), "
                f"found {found}"]
    if not allow_empty and not np.any(data):
        return [f"{where}: expected a label with at least one labelled voxel, found an empty "
                f"label (all 0); remove the subject, or, for a target whose cohort includes "
                f"subjects without a lesion, set 'allow_empty_labels: true' for its dataset"]
    return []


def _grid_problems(subject: Subject, files: Mapping[str, str | Path],
                   grids: Mapping[str, Grid]) -> list[str]:
    """BraTS promises one grid for everything; a manifest's label must match some image."""
    if subject.same_grid and "t1" in grids:
        reference = grids["t1"]
        return [f"subject {subject.subject}: file {files[role]}: expected the grid of "
                f"{files['t1']} ({describe_grid(*reference)}), found {describe_grid(*grid)}"
                for role, grid in grids.items()
                if role != "mask" and not same_grid(grid, reference)]
    if "label" in grids and not subject.same_grid:
        image_grids = [grids[m] for m in MODALITIES if m in grids]
        if image_grids and not any(same_grid(grids["label"], g) for g in image_grids):
            return [f"subject {subject.subject}: file {files['label']}: expected the grid of "
                    f"one of its images ({describe_grid(*image_grids[0])} for "
                    f"{files[MODALITIES[0]]}), found {describe_grid(*grids['label'])}"]
    return []


def same_grid(a: Grid, b: Grid) -> bool:
    return a[0] == b[0] and bool(np.allclose(a[1], b[1], atol=GRID_TOLERANCE_MM))


def describe_grid(shape: Sequence[int], affine: np.ndarray) -> str:
    spacing = spacing_of(affine)
    origin = np.asarray(affine)[:3, 3]
    return (f"shape {tuple(int(s) for s in shape)}, spacing "
            f"{tuple(round(float(s), 3) for s in spacing)} mm, origin "
            f"{tuple(round(float(o), 2) for o in origin)} mm")


def table_path(file: str | Path) -> str:
    """A file as the subjects table names it: relative to the working directory when it lies
    inside it (the phantom cohort, under results/: a copied study folder reads its own
    scans), else absolute (a user's dataset, wherever the study runs from)."""
    resolved = Path(file).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def write_subjects_table(subjects: Sequence[Subject], path: str | Path) -> None:
    rows = []
    for s in subjects:
        # ingestion refused a subject without every modality: none is None here
        paths = [table_path(scan) if (scan := s.images[m]) else "" for m in MODALITIES]
        label = table_path(s.label) if s.label is not None else ""
        mask = table_path(s.mask) if s.mask is not None else ""
        rows.append(dict(zip(TABLE_COLUMNS, [s.subject, *paths, label, str(s.labelled).lower(),
                                             s.group, s.site, s.label_scheme, mask])))
    write_tsv(rows, path, TABLE_COLUMNS)


def read_subjects_table(path: str | Path) -> list[TableRow]:
    """The subjects table as a list of dicts, `labelled` as a bool."""
    with Path(path).open(newline="") as handle:
        rows: list[TableRow] = list(csv.DictReader(handle, dialect="excel-tab"))
    for row in rows:
        row["labelled"] = row["labelled"] == "true"
    return rows
