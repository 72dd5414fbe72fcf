"""The cache, the one format every model reads: per subject a folder with image.npy
(C, x, y, z float16 in [0, 1]), label.npy (uint8) and meta.json (how it was made and how
to go back to the native grid). This module alone reads and writes it."""

import json
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


def read_meta(meta_path):
    with reading(meta_path, "the cache's JSON description"):
        return json.loads(Path(meta_path).read_text())


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
