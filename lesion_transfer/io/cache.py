"""The cache, the one format every model reads: per subject a folder with image.npy
(C, x, y, z float16 on the study's intensity scale, 0 outside the brain), label.npy (uint8)
and meta.json (how it was made and how to go back to the native grid). This module alone
reads and writes it."""

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lesion_transfer.io.atomic import atomic_path, file_sha256, write_text
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


def cache_folder(meta_path: str | Path) -> Path:
    """The folder of a subject's cache, from its meta.json (what rules name as input)."""
    return Path(meta_path).parent


ARRAYS = ("image.npy", "label.npy")


def write_cache(folder: str | Path, channels: Sequence[np.ndarray], label: np.ndarray,
                meta: dict[str, Any]) -> None:
    """image.npy (C, D, H, W) float16 (provenance.INTENSITY_SCALES), label.npy uint8,
    meta.json; each atomic.
    meta.json, written last, records each array's size and SHA-256 (`arrays`), so that a
    cache whose bytes changed afterwards is known (stale_arrays)."""
    folder = Path(folder)
    image = np.stack(channels).astype(np.float16)
    with atomic_path(folder / "image.npy") as tmp:
        np.save(tmp, image)
    with atomic_path(folder / "label.npy") as tmp:
        np.save(tmp, label.astype(np.uint8))
    arrays = {name: {"bytes": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
              for name in ARRAYS}
    write_text(folder / "meta.json", json.dumps({**meta, "arrays": arrays}, indent=1,
                                                sort_keys=True))


def stale_arrays(folder: str | Path) -> list[str]:
    """Why a subject's cache no longer holds what its meta.json recorded: one reason per array
    that is missing, of another size, or (written after meta.json, so possibly rewritten)
    of other bytes; an unreadable meta.json is a reason too. [] for a current cache, and for a
    cache written before sizes were recorded. Only arrays newer than meta.json are hashed, so
    checking a whole study's cache costs a few stats per subject."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        recorded = meta.get("arrays", {})
    except (OSError, ValueError, AttributeError) as error:
        return [f"meta.json cannot be read ({type(error).__name__})"]
    written = (folder / "meta.json").stat().st_mtime_ns
    reasons = []
    for name, record in recorded.items():
        path = folder / name
        if not path.is_file():
            reasons.append(f"{name} is missing")
        elif path.stat().st_size != record["bytes"]:
            reasons.append(f"{name} holds {path.stat().st_size} bytes, {record['bytes']} when "
                           f"it was written")
        elif path.stat().st_mtime_ns > written and file_sha256(path) != record["sha256"]:
            reasons.append(f"{name} holds other bytes than when it was written (SHA-256)")
    return reasons


def stale_caches(cache_root: str | Path) -> dict[Path, list[str]]:
    """{cache folder: stale_arrays} of every subject's cache under cache_root
    (<results>/cache/<dataset>/<subject>) that is stale."""
    folders = sorted(path.parent for path in Path(cache_root).glob("*/*/meta.json"))
    return {folder: reasons for folder in folders if (reasons := stale_arrays(folder))}


def discard_stale_caches(cache_root: str | Path, dry_run: bool) -> list[str]:
    """What the workflow does before building its DAG: every stale cache under cache_root
    loses its meta.json (discard), so that the run rebuilds it (a dry run discards nothing);
    returns one line per stale cache that says so."""
    lines = []
    for folder, reasons in stale_caches(cache_root).items():
        what = ("a run that is not a dry run rebuilds it" if dry_run else
                "rebuilt in this run (what read it reruns if it comes out other)")
        lines.append(f"stale, the cache {folder} ({'; '.join(reasons)}): {what}")
        if not dry_run:
            discard(folder)
    return lines


def discard(folder: str | Path) -> None:
    """A stale cache's meta.json, the stand-in every rule names, removed: Snakemake then
    rebuilds the cache (its temporary inputs too); the jobs that read it rerun if the new
    meta.json (the arrays' checksums) differs from the one they read."""
    (Path(folder) / "meta.json").unlink()


def results_folder_of(cache_folder: str | Path) -> Path:
    """A cache lies at <results>/cache/<dataset>/<subject>: the results folder it belongs to."""
    return Path(cache_folder).resolve().parents[2]


def path_in_results(cache_folder: str | Path, path: str | Path) -> str:
    """How meta.json records another file of its results folder: relative to that folder, so
    that a copied or moved results folder reads its own files, not the original's."""
    return os.path.relpath(Path(path).resolve(), results_folder_of(cache_folder))


def read_meta(meta_path: str | Path) -> dict[str, Any]:
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


def load_cached(folder: str | Path) -> CachedSubject:
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
