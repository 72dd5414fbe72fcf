"""The per-subject preprocessing QC montage: the key stages of the chain side by side."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from lesion_transfer.io.cache import load_cached
from lesion_transfer.io.nifti import load_nifti
from lesion_transfer.labels import MODALITIES, UNKNOWN_LABEL
from lesion_transfer.preprocess.volumes import load_channels, load_mask
from lesion_transfer.report.montage import plot_montage


@dataclass(frozen=True)
class PreprocessingChain:
    """A subject's files along the chain: coregistered image and its brain mask, the bias-
    corrected image, the image registered to the template, the template, the cache folder."""

    coregistered: Path
    mask: Path
    bias_corrected: Path
    registered: Path
    template: Path
    cache: Path


def plot_preprocessing_qc(subject: str, chain: PreprocessingChain, out_png: Path) -> None:
    raw, native_affine = load_channels(chain.coregistered)
    mask, _ = load_mask(chain.mask)
    corrected, _ = load_channels(chain.bias_corrected)
    warped, template_affine = load_channels(chain.registered)
    template_t1, _ = load_nifti(chain.template)
    cached = load_cached(chain.cache)
    image, label, meta = np.asarray(cached.image, dtype=np.float32), cached.label, cached.meta
    cache_affine = np.asarray(meta["template_affine"]).copy()
    cache_affine[:3, 3] += cache_affine[:3, :3] @ np.asarray(meta["crop_start"])

    def row(title: str, channels: Sequence[np.ndarray], affine: np.ndarray,
            overlay: np.ndarray | None = None) -> tuple[str, dict[str, Any], Any]:
        images = {m: (c, affine) for m, c in zip(MODALITIES, channels)}
        return (title, images, (overlay, affine) if overlay is not None else None)

    rows = [
        row(f"{subject}: raw + brain mask", raw, native_affine, _edge(mask)),
        row("bias corrected", corrected, native_affine),
        row("registered + template edge", warped, template_affine, _edge(template_t1 > 0)),
        row("cache + label", list(image), cache_affine, np.where(label == UNKNOWN_LABEL, 0, label)),
    ]
    plot_montage(rows, out_png, title=f"{subject}: preprocessing", follow_label=False)


def _edge(mask: np.ndarray) -> np.ndarray:
    """The mask's outline within each axial slice (thick slices make a 3D edge patchy)."""
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    return (mask & ~ndimage.binary_erosion(mask, structure=in_plane)).astype(np.uint8)
