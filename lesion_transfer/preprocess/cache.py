"""Cached tensors: crop or zero-pad the template-space volumes to `crop_shape`, and map a
cache-space label back to the native grid (`to_native`). Reading and writing the cache:
lesion_transfer.io.cache."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def crop_start(template_mask: np.ndarray, crop_shape: Sequence[int]) -> list[int]:
    """Start index of a window of `crop_shape` centred on the template brain's bounding box.

    One window for every subject (they all live in template space); a negative start means
    zero-padding on that side.
    """
    occupied = np.argwhere(template_mask)
    centre = (occupied.min(axis=0) + occupied.max(axis=0) + 1) / 2.0
    return [int(np.floor(c - s / 2.0)) for c, s in zip(centre, crop_shape)]


def crop_or_pad(volume: np.ndarray, start: Sequence[int], crop_shape: Sequence[int],
                fill: float = 0) -> np.ndarray:
    out = np.full(tuple(crop_shape), fill, dtype=volume.dtype)
    src, dst = _overlap(volume.shape, start, crop_shape)
    out[dst] = volume[src]
    return out


def uncrop(volume: np.ndarray, start: Sequence[int], full_shape: Sequence[int],
           fill: float = 0) -> np.ndarray:
    """The inverse of crop_or_pad: the window back in the full grid (fill outside it)."""
    out = np.full(tuple(full_shape), fill, dtype=volume.dtype)
    src, dst = _overlap(full_shape, start, volume.shape)
    out[src] = volume[dst]
    return out


def _overlap(full_shape: Sequence[int], start: Sequence[int], crop_shape: Sequence[int]
             ) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    src, dst = [], []
    for n, s, c in zip(full_shape, start, crop_shape):
        lo, hi = max(s, 0), min(s + c, n)
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    return tuple(src), tuple(dst)


def to_native(label: np.ndarray, meta: Mapping[str, Any]) -> np.ndarray:
    """A cache-space label (crop_shape) back on the subject's native (T1) grid, same values."""
    from lesion_transfer.preprocess.register import read_transforms, warp_to_native

    full = uncrop(np.asarray(label, dtype=np.uint8), meta["crop_start"], meta["template_shape"])
    transforms = read_transforms(meta["transforms"])
    return warp_to_native(full, np.asarray(meta["template_affine"]), tuple(meta["native_shape"]),
                          np.asarray(meta["native_affine"]), transforms)
