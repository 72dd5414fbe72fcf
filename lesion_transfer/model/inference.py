"""Sliding-window inference with Gaussian weighting (whole volume when it fits one window)."""

import itertools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
from numpy.typing import ArrayLike


def gaussian_weights(patch_size: Sequence[int], sigma_scale: float = 0.125) -> torch.Tensor:
    """Weights that favour a window's centre, where its predictions are best (nnU-Net's)."""
    axes = [np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2.0) / (sigma_scale * n)) ** 2)
            for n in patch_size]
    weights = np.einsum("i,j,k->ijk", *axes)
    return torch.from_numpy((weights / weights.max()).astype(np.float32)).clamp_min(1e-3)


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    if size <= patch:
        return [0]
    step = max(1, int(patch * (1 - overlap)))
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


@torch.no_grad()
def predict_volume(model: torch.nn.Module, image: ArrayLike | torch.Tensor,
                   patch_size: Sequence[int] | None = None, overlap: float = 0.5,
                   device: str | torch.device = "cpu",
                   autocast: Callable[[], AbstractContextManager] | None = None,
                   windows_per_batch: int = 4) -> torch.Tensor:
    """Logits (K, D, H, W) for one image (C, D, H, W), a numpy or torch array.

    Windows go through the network several at a time (MONAI's sw_batch_size): one window
    per forward pass leaves most of a CPU's or GPU's throughput unused.
    """
    model.eval()
    image = torch.as_tensor(np.asarray(image, dtype=np.float32))
    shape = tuple(image.shape[1:])
    patch = tuple(shape if patch_size is None else (min(p, n) for p, n in zip(patch_size, shape)))
    weights = gaussian_weights(patch).to(device) if patch != shape else torch.ones(patch,
                                                                                 device=device)
    windows = [tuple(slice(s, s + p) for s, p in zip(start, patch)) for start in
               itertools.product(*(window_starts(n, p, overlap) for n, p in zip(shape, patch)))]
    output, norm = None, torch.zeros(shape, device=device)
    for first in range(0, len(windows), windows_per_batch):
        batch = windows[first:first + windows_per_batch]
        x = torch.stack([image[(slice(None), *window)] for window in batch]).to(device)
        with autocast() if autocast else nullcontext():
            logits = model(x).float()
        if output is None:
            output = torch.zeros((logits.shape[1], *shape), device=device)
        for window, window_logits in zip(batch, logits):
            output[(slice(None), *window)] += window_logits * weights
            norm[window] += weights
    assert output is not None  # every volume has at least one window
    return (output / norm).cpu()
