"""What evaluation writes between its rules: region probabilities (3, D, H, W: WT, TC, ET)
quantised to uint8 and label maps, one compressed .npz per model; score tables. Needs numpy
only, so that the native-space rules run in the imaging environment without torch."""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lesion_transfer.io.atomic import atomic_path, write_tsv
from lesion_transfer.io.broken import reading
from lesion_transfer.operating_point import REGION_NAMES


def save_probabilities(maps: Mapping[str, np.ndarray], path: str | Path) -> None:
    quantised: dict[str, Any] = {name: np.round(np.clip(p, 0, 1) * 255).astype(np.uint8)
                                 for name, p in maps.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **quantised)


def load_probabilities(path: str | Path) -> dict[str, np.ndarray]:
    with reading(path, "region probabilities as uint8 arrays"), np.load(path) as stored:
        return {name: stored[name].astype(np.float32) / 255.0 for name in stored.files}


def save_labels(labels: Mapping[str, np.ndarray], path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **dict[str, Any](labels))


def load_labels(path: str | Path) -> dict[str, np.ndarray]:
    with reading(path, "label maps as integer arrays"), np.load(path) as stored:
        return {name: stored[name] for name in stored.files}


def write_table(rows: Sequence[Mapping], path: str | Path,
                columns: Sequence[str]) -> None:
    write_tsv(rows, path, columns, float_format=".6g")


def read_thresholds(path: str | Path) -> dict[str, float]:
    with reading(path, "an operating point: a threshold per region, in JSON"):
        regions = json.loads(Path(path).read_text())["regions"]
        return {region: float(regions[region]["threshold"]) for region in REGION_NAMES}
