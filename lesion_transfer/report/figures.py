"""The study's figures: the learning curve (Dice against training size, a line per strategy,
a panel per region, the bootstrap interval as a band) and qualitative panels (the same test
subjects under every strategy, beside the ground truth)."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lesion_transfer.io.atomic import atomic_path
from lesion_transfer.report.montage import LABEL_COLOURS
from lesion_transfer.report.tables import REGION_ORDER

REGION_TITLES = {"WT": "whole tumour", "TC": "tumour core", "ET": "enhancing tumour",
                 "ET_present": "ET, subjects that have it"}


def save(figure: Any, path: str | Path, dpi: int) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(figure)


def learning_curve(summary: pd.DataFrame, path: str | Path, strategies: Sequence[str], dpi: int,
                   metric: str = "dice") -> None:
    regions = [r for r in REGION_ORDER if r in set(summary["region"])]
    figure, axes = plt.subplots(1, len(regions), figsize=(4.2 * len(regions), 3.6), sharey=True,
                                squeeze=False)
    sizes = sorted(summary["size"].unique())
    for axis, region in zip(axes[0], regions):
        for strategy in strategies:
            rows = summary[(summary["region"] == region) & (summary["strategy"] == strategy)]
            rows = rows.sort_values("size")
            if not len(rows):
                continue
            line, = axis.plot(rows["size"], rows[f"{metric}_mean"], marker="o", label=strategy)
            axis.fill_between(rows["size"], rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"],
                              color=line.get_color(), alpha=0.15, linewidth=0)
        axis.set_title(f"{region} ({REGION_TITLES[region]})")
        axis.set_xlabel("training cases")
        axis.set_xticks(sizes)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"mean {metric} (95 % bootstrap interval)")
    axes[0][-1].legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    save(figure, path, dpi)


def tumour_slice(label: np.ndarray) -> int:
    """The axial (last-axis) slice with the most tumour."""
    counts = (np.asarray(label) > 0).sum(axis=(0, 1))
    return int(np.argmax(counts)) if counts.any() else label.shape[2] // 2


def qualitative_panels(subjects: Sequence[tuple[str, np.ndarray, np.ndarray]],
                       predictions: Mapping[str, Mapping[str, np.ndarray]], path: str | Path,
                       dpi: int, flair_channel: int = 3) -> None:
    """subjects: [(name, image (C, D, H, W), truth label)]; predictions: {strategy: {name:
    label}}. A row per subject: FLAIR, ground truth, then each strategy."""
    strategies = list(predictions)
    columns = 2 + len(strategies)
    figure, axes = plt.subplots(len(subjects), columns, figsize=(2.2 * columns,
                                                                 2.4 * len(subjects)),
                                squeeze=False)
    for row, (name, image, truth) in zip(axes, subjects):
        z = tumour_slice(truth)
        flair = np.asarray(image[flair_channel], float)[:, :, z]
        panels = [("FLAIR", None), ("ground truth", truth)] + [
            (strategy, predictions[strategy][name]) for strategy in strategies]
        for axis, (title, label) in zip(row, panels):
            # cache arrays are (x, y, z) in RAS-ish template order: show with anterior up
            axis.imshow(np.rot90(flair), cmap="gray", vmin=0, vmax=1)
            if label is not None:
                overlay = np.ma.masked_equal(np.rot90(np.asarray(label)[:, :, z]), 0)
                axis.imshow(overlay, cmap=LABEL_COLOURS, vmin=0, vmax=4, alpha=0.6,
                            interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if axis is row[0]:
                axis.set_ylabel(name, fontsize="x-small")
            axis.set_title(title, fontsize="small")
    figure.suptitle("red: necrotic/non-enhancing core (1), green: edema (2), yellow: "
                    "enhancing (4)", fontsize="small")
    figure.tight_layout()
    save(figure, path, dpi)
