"""Cached subjects, patch sampling that oversamples lesions, light augmentation."""


import numpy as np
import torch

from lesion_transfer import TARGET_LABELS  # noqa: F401 (label values <-> class indices)
from lesion_transfer.io.cache import CachedSubject, load_cached  # noqa: F401 (the loaders' input)
from lesion_transfer.labels import UNKNOWN_LABEL


def label_to_classes(label, labels):
    """Label values -> class indices (0..K-1); unknown values -> -1 (ignored by the loss)."""
    classes = np.full(label.shape, -1, dtype=np.int64)
    for index, value in enumerate(labels):
        classes[label == value] = index
    return classes


def classes_to_label(classes, labels):
    return np.asarray(labels, dtype=np.uint8)[classes]


def brain_of(image):
    """Voxels inside the brain: the cache is 0 outside it in every channel."""
    return np.asarray(image).max(axis=0) > 0


def class_frequencies(subjects, labels):
    """Voxel counts per class inside the brain, over the given subjects."""
    counts = np.zeros(len(labels))
    for subject in subjects:
        classes = label_to_classes(np.asarray(subject.label), labels)[brain_of(subject.image)]
        counts += np.bincount(classes[classes >= 0], minlength=len(labels))
    return counts


class PatchSampler:
    """Random patches; a fraction is centred on a labelled (foreground) voxel, as nnU-Net does."""

    def __init__(self, subjects, patch_size, foreground_fraction, labels, rng):
        self.subjects = subjects
        self.patch_size = tuple(patch_size)
        self.foreground_fraction = foreground_fraction
        self.labels = labels
        self.rng = rng
        self.foreground = [np.argwhere((np.asarray(s.label) > 0)
                                       & (np.asarray(s.label) != UNKNOWN_LABEL))
                           for s in subjects]

    def batch(self, size):
        images, targets = [], []
        for _ in range(size):
            index = int(self.rng.integers(len(self.subjects)))
            image, target = self.patch(index)
            images.append(image)
            targets.append(target)
        return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(targets))

    def patch(self, index):
        subject = self.subjects[index]
        shape = subject.label.shape
        foreground = self.foreground[index]
        if len(foreground) and self.rng.random() < self.foreground_fraction:
            centre = foreground[self.rng.integers(len(foreground))]
        else:
            centre = np.array([self.rng.integers(n) for n in shape])
        start = [int(c) - p // 2 for c, p in zip(centre, self.patch_size)]
        start = [min(max(s, 0), max(n - p, 0)) for s, n, p in zip(start, shape, self.patch_size)]
        window = tuple(slice(s, s + p) for s, p in zip(start, self.patch_size))
        image = _pad_to(np.asarray(subject.image[(slice(None), *window)], np.float32),
                        self.patch_size)
        label = _pad_to(np.asarray(subject.label[window]), self.patch_size, channels=False)
        image, label = augment(image, label, self.rng)
        return image, label_to_classes(label, self.labels)


def _pad_to(array, size, channels=True):
    spatial = array.shape[1:] if channels else array.shape
    pad = [(0, max(p - n, 0)) for n, p in zip(spatial, size)]
    return np.pad(array, ([(0, 0)] if channels else []) + pad)


def augment(image, label, rng):
    """Random flips along each axis; per-channel intensity scale and shift (inside the brain)."""
    for axis in range(3):
        if rng.random() < 0.5:
            image = np.flip(image, axis=axis + 1)
            label = np.flip(label, axis=axis)
    brain = image.max(axis=0, keepdims=True) > 0
    scale = rng.uniform(0.9, 1.1, size=(image.shape[0], 1, 1, 1))
    shift = rng.uniform(-0.05, 0.05, size=(image.shape[0], 1, 1, 1))
    image = np.where(brain, image * scale + shift, 0.0)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(label)
