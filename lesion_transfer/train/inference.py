"""Sliding-window inference with Gaussian weighting (whole volume when it fits one window)."""

import itertools

import numpy as np
import torch


def gaussian_weights(patch_size, sigma_scale=0.125):
    """Weights that favour a window's centre, where its predictions are best (nnU-Net's)."""
    axes = [np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2.0) / (sigma_scale * n)) ** 2)
            for n in patch_size]
    weights = np.einsum("i,j,k->ijk", *axes)
    return torch.from_numpy((weights / weights.max()).astype(np.float32)).clamp_min(1e-3)


def window_starts(size, patch, overlap):
    if size <= patch:
        return [0]
    step = max(1, int(patch * (1 - overlap)))
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


@torch.no_grad()
def predict_volume(model, image, patch_size=None, overlap=0.5, device="cpu", autocast=None):
    """Logits (K, D, H, W) for one image (C, D, H, W), a numpy or torch array."""
    model.eval()
    image = torch.as_tensor(np.asarray(image, dtype=np.float32))
    shape = tuple(image.shape[1:])
    patch = tuple(shape if patch_size is None else (min(p, n) for p, n in zip(patch_size, shape)))
    weights = gaussian_weights(patch).to(device) if patch != shape else torch.ones(patch,
                                                                                 device=device)
    output, norm = None, torch.zeros(shape, device=device)
    for start in itertools.product(*(window_starts(n, p, overlap) for n, p in zip(shape, patch))):
        window = tuple(slice(s, s + p) for s, p in zip(start, patch))
        x = image[(slice(None), *window)][None].to(device)
        with autocast() if autocast else _nothing():
            logits = model(x)[0].float()
        if output is None:
            output = torch.zeros((logits.shape[0], *shape), device=device)
        output[(slice(None), *window)] += logits * weights
        norm[window] += weights
    return (output / norm).cpu()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False
