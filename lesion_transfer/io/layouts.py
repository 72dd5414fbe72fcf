"""Dataset layouts: where each subject's files are, for BraTS downloads and manifests.

Discovery only finds files and names what is missing; ingest.py opens and checks them.
"""

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lesion_transfer import MODALITIES
from lesion_transfer.errors import Refusal

# Label schemes: the raw values a dataset may hold and their canonical values. The target's
# canonical values are BraTS 2018's (1 core, 2 edema, 4 enhancing); BraTS 2023 calls
# enhancing tumour 3.
LABEL_SCHEMES = {
    "binary": {0: 0, 1: 1},
    "brats": {0: 0, 1: 1, 2: 2, 4: 4},
    "brats2023": {0: 0, 1: 1, 2: 2, 3: 4},
}

# File suffixes per BraTS generation: (separator, {our modality: their suffix}, label suffix)
BRATS_NAMING = {
    "brats": ("_", {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair"}, "seg"),
    "brats2023": ("-", {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}, "seg"),
}
NIFTI_SUFFIXES = (".nii.gz", ".nii")
GRADES = ("HGG", "LGG")
# Folder names of a BraTS 2018 download (the phantom target is written the same way)
BRATS_TRAINING = "MICCAI_BraTS_2018_Data_Training"
BRATS_VALIDATION = "MICCAI_BraTS_2018_Data_Validation"


@dataclass
class Subject:
    """One subject as found on disk, before any file is opened."""

    subject: str
    images: dict[str, Path | None]  # modality -> Path (or None when missing)
    label: Path | None
    labelled: bool
    mask: Path | None = None  # a brain mask the user provides (manifest column `mask`)
    group: str = ""
    site: str = ""
    label_scheme: str = "brats"
    same_grid: bool = True  # the layout promises one grid for every modality and the label
    source: str = ""  # where it was found: a folder or a manifest row
    missing: list[str] = field(default_factory=list)  # problems found by discovery itself


class LayoutError(Refusal):
    """The dataset's location does not look like the layout its config names."""


def find_brats(root: str | Path, labelled: bool = True,
               grade_mapping: Mapping[str, str] | None = None) -> list[Subject]:
    """Subjects under a BraTS training folder (HGG/LGG/<ID>/ or <ID>/) or validation folder."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"BraTS folder {root}: expected a directory, found "
                          f"{'a file' if root.exists() else 'nothing'}")
    grade_folders = [root / g for g in GRADES if (root / g).is_dir()]
    folders = [(d, parent.name) for parent in grade_folders for d in sorted(parent.iterdir())
               if d.is_dir()]
    if not grade_folders:
        folders = [(d, "") for d in sorted(root.iterdir()) if d.is_dir()]
    if not folders:
        raise LayoutError(f"BraTS folder {root}: expected subject folders (optionally under "
                          f"HGG/ and LGG/), found none")
    grades = read_grade_mapping(grade_mapping) if grade_mapping else {}
    return [_brats_subject(folder, grade or grades.get(folder.name, ""), labelled)
            for folder, grade in folders]


def brats_label_scheme(subject: str) -> str:
    """BraTS 2023+ ids (BraTS-GLI-00000-000) use label 3 for enhancing tumour."""
    return "brats2023" if re.match(r"BraTS-[A-Z]+-\d+-\d+$", subject) else "brats"


def _brats_subject(folder: Path, grade: str, labelled: bool) -> Subject:
    subject = folder.name
    scheme = brats_label_scheme(subject)
    separator, suffixes, label_suffix = BRATS_NAMING[scheme]
    images: dict[str, Path | None] = {}
    missing: list[str] = []
    for modality in MODALITIES:
        images[modality] = _find_nifti(folder, f"{subject}{separator}{suffixes[modality]}")
        if images[modality] is None:
            missing.append(_missing(subject, folder, f"{subject}{separator}{suffixes[modality]}",
                                    modality))
    label = _find_nifti(folder, f"{subject}{separator}{label_suffix}") if labelled else None
    if labelled and label is None:
        missing.append(_missing(subject, folder, f"{subject}{separator}{label_suffix}", "label"))
    return Subject(subject=subject, images=images, label=label, labelled=labelled, group=grade,
                   label_scheme=scheme, same_grid=True, source=str(folder), missing=missing)


def _find_nifti(folder: Path, stem: str) -> Path | None:
    for suffix in NIFTI_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.exists():
            return path
    return None


def _missing(subject: str, folder: Path, stem: str, what: str) -> str:
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return (f"subject {subject}: file {folder / (stem + '.nii.gz')}: expected the {what} image, "
            f"found no such file (folder holds: {', '.join(present) or 'nothing'})")


def read_grade_mapping(mapping: Mapping[str, str]) -> dict[str, str]:
    """{subject: grade} from a CSV/TSV: `path`, `subject_column`, `grade_column`."""
    path = Path(mapping["path"])
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle, dialect=_dialect(path)))
    subject_column, grade_column = mapping["subject_column"], mapping["grade_column"]
    for column in (subject_column, grade_column):
        if rows and column not in rows[0]:
            raise LayoutError(f"grade mapping {path}: expected a column '{column}', found "
                              f"{', '.join(rows[0])}")
    return {row[subject_column]: row[grade_column] for row in rows}


def _dialect(path: Path) -> str:
    return "excel-tab" if path.suffix.lower() in (".tsv", ".txt") else "excel"


def find_manifest(path: str | Path, columns: Mapping[str, str], label_scheme: str
                  ) -> list[Subject]:
    """Subjects listed one per row; relative paths are relative to the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"manifest {path}: expected a CSV or TSV file, found "
                          f"{'a directory' if path.exists() else 'nothing'}")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle, dialect=_dialect(path)))
    header = list(rows[0]) if rows else []
    required = [columns["subject"], *(columns[m] for m in MODALITIES)]
    absent = [c for c in required if c not in header]
    if absent:
        raise LayoutError(f"manifest {path}: expected columns {', '.join(required)}, "
                          f"missing {', '.join(absent)} (found: {', '.join(header) or 'none'})")
    return [_manifest_subject(path, number, row, columns, label_scheme)
            for number, row in enumerate(rows, start=2)]


def _manifest_subject(path: Path, line: int, row: Mapping[str, str | None],
                      columns: Mapping[str, str], label_scheme: str) -> Subject:
    def resolve(value: str | None) -> Path | None:
        value = (value or "").strip()
        return (path.parent / value) if value and not Path(value).is_absolute() else (
            Path(value) if value else None)

    subject = (row.get(columns["subject"]) or "").strip()
    images = {m: resolve(row.get(columns[m])) for m in MODALITIES}
    label = resolve(row.get(columns["label"]))
    mask = resolve(row.get(columns["mask"]))
    missing = [f"subject {subject or '(no id)'}: file {path} line {line}: expected a path in "
               f"column '{columns[m]}' for the {m} image, found an empty cell"
               for m in MODALITIES if images[m] is None]
    if not subject:
        missing.append(f"subject (no id): file {path} line {line}: expected a subject id in "
                       f"column '{columns['subject']}', found an empty cell")
    return Subject(
        subject=subject, images=images, label=label, labelled=label is not None, mask=mask,
        group=(row.get(columns["group"]) or "").strip(),
        site=(row.get(columns["site"]) or "").strip(), label_scheme=label_scheme,
        same_grid=False, source=f"{path}:{line}", missing=missing,
    )
