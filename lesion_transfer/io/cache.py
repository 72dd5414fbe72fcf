"""The cache, the one format every model reads: per subject a folder with image.npy
(C, x, y, z float16 in [0, 1]), label.npy (uint8) and meta.json (how it was made and how
to go back to the native grid). This module alone reads and writes it."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesion_transfer.io.atomic import atomic_path, write_text
from lesion_transfer.io.broken import BrokenFileError, reading


@dataclass
class CachedSubject:
    name: str
    image: np.ndarray  # (C, D, H, W) float16, memory-mapped
    label: np.ndarray  # (D, H, W) uint8
    meta: dict
    # which write of the cache this is (size and time of its arrays): a checkpoint resumes
    # only on the same one, without reading gigabytes of arrays to hash them
    fingerprint: str = ""


def cache_folder(meta_path):
    """The folder of a subject's cache, from its meta.json (what rules name as input)."""
    return Path(meta_path).parent


def write_cache(folder, channels, label, meta):
    """image.npy (C, D, H, W) float16 in [0, 1], label.npy uint8, meta.json; each atomic."""
    folder = Path(folder)
    image = np.stack(channels).astype(np.float16)
    with atomic_path(folder / "image.npy") as tmp:
        np.save(tmp, image)
    with atomic_path(folder / "label.npy") as tmp:
        np.save(tmp, label.astype(np.uint8))
    write_text(folder / "meta.json", json.dumps(meta, indent=1, sort_keys=True))


def results_folder_of(cache_folder):
    """A cache lies at <results>/cache/<dataset>/<subject>: the results folder it belongs to."""
    return Path(cache_folder).resolve().parents[2]


def path_in_results(cache_folder, path):
    """How meta.json records another file of its results folder: relative to that folder, so
    that a copied or moved results folder reads its own files, not the original's."""
    return os.path.relpath(Path(path).resolve(), results_folder_of(cache_folder))


def read_meta(meta_path):
    """meta.json, with the transforms folder it names resolved inside its results folder (a
    path that leads out of it, edited in or left by a copy, is refused, naming the file)."""
    with reading(meta_path, "the cache's JSON description"):
        meta = json.loads(Path(meta_path).read_text())
    if "transforms" in meta:
        root = results_folder_of(Path(meta_path).parent)
        folder = (root / meta["transforms"]).resolve()  # older caches hold absolute paths
        if root not in folder.parents:
            raise BrokenFileError(meta_path, f"expected 'transforms' to name a folder inside "
                                             f"its results folder {root}, found "
                                             f"{meta['transforms']!r}")
        meta["transforms"] = str(folder)
    return meta


def load_cached(folder):
    """A subject's cache, memory-mapped; a truncated or corrupted file is named."""
    folder = Path(folder)
    meta = read_meta(folder / "meta.json")
    with reading(folder / "image.npy", "a cached image array"):
        image = np.load(folder / "image.npy", mmap_mode="r", allow_pickle=False)
    with reading(folder / "label.npy", "a cached label array"):
        label = np.load(folder / "label.npy", mmap_mode="r", allow_pickle=False)
    shape = tuple(meta.get("crop_shape") or image.shape[1:])
    channels = len(meta["channels"]) if meta.get("channels") else image.shape[0]
    for path, array, expected in ((folder / "image.npy", image, (channels, *shape)),
                                  (folder / "label.npy", label, shape)):
        if tuple(array.shape) != expected:
            raise BrokenFileError(path, f"expected an array of shape {expected} (meta.json), "
                                        f"found {tuple(array.shape)}")
    stats = [(folder / name).stat() for name in ("image.npy", "label.npy")]
    fingerprint = ";".join(f"{s.st_size}:{s.st_mtime_ns}" for s in stats)
    return CachedSubject(name=folder.name, image=image, label=label, meta=meta,
                         fingerprint=fingerprint)
