"""Cached subjects, patch sampling that oversamples lesions, augmented batches made in
background workers (a torch DataLoader)."""


from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from lesion_transfer.io.cache import CachedSubject
from lesion_transfer.labels import UNKNOWN_LABEL
from lesion_transfer.train.augment import augment


def label_to_classes(label: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Label values -> class indices (0..K-1); unknown values -> -1 (ignored by the loss)."""
    classes = np.full(label.shape, -1, dtype=np.int64)
    for index, value in enumerate(labels):
        classes[label == value] = index
    return classes


def brain_of(image: np.ndarray) -> np.ndarray:
    """Voxels inside the brain: the cache is 0 outside it in every channel, and not 0 in
    some channel inside (a z-scored cache is negative there too)."""
    return (np.asarray(image) != 0).any(axis=0)


def class_frequencies(subjects: Sequence[CachedSubject], labels: Sequence[int]) -> np.ndarray:
    """Voxel counts per class inside the brain, over the given subjects."""
    counts = np.zeros(len(labels))
    for subject in subjects:
        classes = label_to_classes(np.asarray(subject.label), labels)[brain_of(subject.image)]
        counts += np.bincount(classes[classes >= 0], minlength=len(labels))
    return counts


FOREGROUND_SAMPLING = ("each_class", "any_voxel")  # the schema's train.*.foreground_sampling


class PatchSampler:
    """Random patches; a fraction is centred on a foreground voxel. each_class (nnU-Net v2's
    oversampling): first one of the foreground classes the subject has, uniformly, then one of
    its voxels, so a rare class (enhancing tumour) is a patch's centre as often as a large one
    (edema); any_voxel: one of all foreground voxels, so classes come in proportion to their
    volume. Each batch comes from its own seed (see TrainingBatches), never a shared state."""

    def __init__(self, subjects: Sequence[CachedSubject], patch_size: Sequence[int],
                 foreground_fraction: float, labels: Sequence[int], transforms: Any,
                 foreground_sampling: str) -> None:
        if foreground_sampling not in FOREGROUND_SAMPLING:
            raise ValueError(f"foreground_sampling: expected one of "
                             f"{', '.join(FOREGROUND_SAMPLING)}, found {foreground_sampling!r}")
        self.subjects = subjects
        self.patch_size = tuple(patch_size)
        self.foreground_fraction = foreground_fraction
        self.labels = labels
        self.transforms = transforms
        self.each_class = foreground_sampling == "each_class"
        self.foreground = [self._foreground_voxels(np.asarray(s.label)) for s in subjects]

    def _foreground_voxels(self, label: np.ndarray) -> Any:
        """Per subject: each present foreground class's voxels (each_class), or one array of
        every foreground voxel (any_voxel)."""
        foreground = (label > 0) & (label != UNKNOWN_LABEL)
        if not self.each_class:
            return np.argwhere(foreground)
        return [np.argwhere(label == value) for value in np.unique(label[foreground])]

    def _foreground_centre(self, index: int, rng: np.random.Generator) -> np.ndarray | None:
        voxels = self.foreground[index]
        if self.each_class:
            voxels = voxels[rng.integers(len(voxels))] if len(voxels) else voxels
        return voxels[rng.integers(len(voxels))] if len(voxels) else None

    def batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = [], []
        for _ in range(size):
            index = int(rng.integers(len(self.subjects)))
            image, target = self.patch(index, rng)
            images.append(image)
            targets.append(target)
        return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(targets))

    def patch(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        subject = self.subjects[index]
        shape = subject.label.shape
        centre = None
        if len(self.foreground[index]) and rng.random() < self.foreground_fraction:
            centre = self._foreground_centre(index, rng)
        if centre is None:
            centre = np.array([rng.integers(n) for n in shape])
        start = [int(c) - p // 2 for c, p in zip(centre, self.patch_size)]
        start = [min(max(s, 0), max(n - p, 0)) for s, n, p in zip(start, shape, self.patch_size)]
        window = tuple(slice(s, s + p) for s, p in zip(start, self.patch_size))
        image = _pad_to(np.asarray(subject.image[(slice(None), *window)], np.float32),
                        self.patch_size)
        label = _pad_to(np.asarray(subject.label[window]), self.patch_size, channels=False)
        image, label = augment(self.transforms, image, label, int(rng.integers(2**31)))
        return image, label_to_classes(label, self.labels)


class TrainingBatches(torch.utils.data.Dataset):
    """Batch number `step` of a training job (counted over all its epochs), made from the
    seed (seed, step) alone: the same batch in any worker, in any order, after a resume."""

    def __init__(self, sampler: PatchSampler, batch_size: int, seed: int) -> None:
        self.sampler, self.batch_size, self.seed = sampler, batch_size, seed

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sampler.batch(self.batch_size, np.random.default_rng([self.seed, step]))


def batches(dataset: TrainingBatches, steps: range, workers: int, pin_memory: bool = False
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of `steps` (a range), made `workers` processes ahead of the training loop
    (0: in the training process, one at a time). pin_memory: into page-locked memory, so that
    a copy to a CUDA device can overlap the step (the trainer asks for it on CUDA only)."""
    if workers == 0:
        return (dataset[step] for step in steps)
    return iter(torch.utils.data.DataLoader(dataset, batch_size=None, sampler=steps,
                                            num_workers=workers, prefetch_factor=4,
                                            persistent_workers=False, pin_memory=pin_memory))


def _pad_to(array: np.ndarray, size: Sequence[int], channels: bool = True) -> np.ndarray:
    spatial = array.shape[1:] if channels else array.shape
    pad = [(0, max(p - n, 0)) for n, p in zip(spatial, size)]
    return np.pad(array, ([(0, 0)] if channels else []) + pad)
