"""Montages of subjects: rows of subjects, columns of modalities plus the label overlaid."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
from matplotlib.colors import ListedColormap

from lesion_transfer.io.atomic import atomic_path

# BraTS colours: 1 core red, 2 edema green, 4 enhancing yellow; a binary lesion shows red.
LABEL_COLOURS = ListedColormap(["none", "red", "lime", "none", "yellow"])
# a montage's row: (name, {column: (data, affine)}, its label as (data, affine) or None)
Row = tuple[str, Mapping[str, tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray] | None]


def canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient an array to RAS so that every subject is drawn the same way up."""
    image = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data), affine))
    return np.asarray(image.dataobj), image.affine


def axial_slice_through(label: np.ndarray | None, brain: np.ndarray) -> int:
    """The axial slice with the most label, else the brain's middle one."""
    weights = label.sum(axis=(0, 1)) if label is not None and label.any() else None
    if weights is None:
        weights = (brain > 0).sum(axis=(0, 1))
        occupied = np.flatnonzero(weights)
        return int(occupied[len(occupied) // 2]) if occupied.size else brain.shape[2] // 2
    return int(np.argmax(weights))


def plot_montage(rows: Sequence[Row], path: str | Path, title: str | None = None,
                 follow_label: bool = True) -> None:
    """rows: list of (name, {column: (data, affine)}, label (data, affine) or None).

    Each row shows the axial slice with the most label (`follow_label`) or the brain's middle.
    """
    columns = list(rows[0][1])
    figure, axes = plt.subplots(
        len(rows), len(columns) + 1, figsize=(2.2 * (len(columns) + 1), 2.4 * len(rows)),
        squeeze=False,
    )
    for row_axes, (name, images, label) in zip(axes, rows):
        volumes = {c: canonical(*images[c])[0] for c in columns}
        first = volumes[columns[0]]
        label_volume = canonical(*label)[0].astype(int) if label is not None else None
        if label_volume is not None and label_volume.shape != first.shape:
            label_volume = None  # a label on another modality's grid: no overlay on this one
        guide = label_volume if follow_label else None
        height = axial_slice_through(guide, first) / max(first.shape[2] - 1, 1)
        for axis, column in zip(row_axes, columns):
            volume = volumes[column]
            z = int(round(height * (volume.shape[2] - 1)))
            _show(axis, volume[:, :, z], f"{name}\n{column}" if axis is row_axes[0] else column)
        z = int(round(height * (first.shape[2] - 1)))
        _show(row_axes[-1], first[:, :, z], "label")
        if label_volume is not None:
            overlay = np.ma.masked_equal(label_volume[:, :, z], 0)
            row_axes[-1].imshow(overlay.T, origin="lower", cmap=LABEL_COLOURS, vmin=0, vmax=4,
                                interpolation="nearest", alpha=0.7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=80, format="png")
    plt.close(figure)


def _show(axis: Any, image: np.ndarray, title: str) -> None:
    upper = np.percentile(image, 99.5) if image.any() else 1.0
    axis.imshow(image.T, origin="lower", cmap="gray", vmin=0, vmax=upper or 1.0)
    axis.set_title(title, fontsize=8)
    axis.axis("off")


def plot_dataset_montage(table: str | Path, path: str | Path, count: int,
                         title: str | None = None) -> None:
    """Montage of the first `count` subjects of a subjects table, labelled ones first."""
    from lesion_transfer import MODALITIES
    from lesion_transfer.io.ingest import read_subjects_table
    from lesion_transfer.io.nifti import load_nifti

    subjects = sorted(read_subjects_table(table), key=lambda row: not row["labelled"])[:count]
    rows: list[Row] = []
    for row in subjects:
        images = {m: load_nifti(row[m]) for m in MODALITIES}
        label = load_nifti(row["label"], dtype="uint8") if row["label"] else None
        rows.append((row["subject"], images, label))
    plot_montage(rows, path, title=title)
