"""Glioma-like tumours: a core, edema around it, and the mass effect that pushes tissue away."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lesion_transfer.io.nifti import Spacing
from lesion_transfer.phantoms.fields import smooth_noise
from lesion_transfer.phantoms.template import TissueTemplate

NECROSIS, EDEMA, ENHANCING = 1, 2, 4  # BraTS 2018 label values
NON_ENHANCING = NECROSIS  # BraTS 2018 merges necrosis and non-enhancing core in label 1


@dataclass(frozen=True)
class Tumour:
    centre_mm: tuple[float, ...]
    core_radius_mm: float
    edema_margin_mm: float
    rim_mm: float
    grade: str


def draw_tumour(rng: np.random.Generator, grade: str, core_radius_range: tuple[float, float],
                edema_margin_range: tuple[float, float], rim_range: tuple[float, float],
                centre_mm: Sequence[float] | np.ndarray) -> Tumour:
    return Tumour(
        centre_mm=tuple(float(c) for c in centre_mm),
        core_radius_mm=float(rng.uniform(*core_radius_range)),
        edema_margin_mm=float(rng.uniform(*edema_margin_range)),
        rim_mm=float(rng.uniform(*rim_range)),
        grade=grade,
    )


def tumour_site(rng: np.random.Generator, template: TissueTemplate, reach_mm: float
                ) -> np.ndarray:
    """A template-space point in white matter at least `reach_mm` inside the brain."""
    depth = template.depth
    candidates = np.argwhere((template.wm > 0.8) & (depth > reach_mm))
    if len(candidates) == 0:
        candidates = np.argwhere(depth >= depth.max() - 1)
    voxel = candidates[rng.integers(len(candidates))]
    return template.affine[:3, :3] @ voxel + template.affine[:3, 3]


def mass_effect(points: np.ndarray, tumour: Tumour, strength: float) -> np.ndarray:
    """Pull-back of a radial push: tissue that sits at radius r came from radius h(r) < r.

    h(r) = r (1 - k exp(-r^2 / 2 s^2)) is monotone for k < 1, so the push never folds tissue.
    """
    centre = np.asarray(tumour.centre_mm, dtype=np.float32).reshape(3, *[1] * (points.ndim - 1))
    offset = points - centre
    radius_sq = (offset**2).sum(axis=0, keepdims=True)
    sigma = 1.2 * tumour.core_radius_mm
    return centre + offset * (1.0 - strength * np.exp(-radius_sq / (2.0 * sigma**2)))


def tumour_labels(rng: np.random.Generator, tumour: Tumour, points: np.ndarray, brain: np.ndarray,
                  wm: np.ndarray, spacing: Spacing) -> np.ndarray:
    """BraTS labels around the tumour: irregular core, a rim that enhances in high grade."""
    centre = np.asarray(tumour.centre_mm, dtype=np.float32).reshape(3, 1, 1, 1)
    distance = np.sqrt(((points - centre) ** 2).sum(axis=0))
    core_wobble = 1.0 + 0.15 * smooth_noise(brain.shape, spacing, 12.0, rng)
    edema_wobble = 1.0 + 0.20 * smooth_noise(brain.shape, spacing, 15.0, rng)
    core_extent = distance / (tumour.core_radius_mm * core_wobble)
    edema_extent = distance / ((tumour.core_radius_mm + tumour.edema_margin_mm) * edema_wobble)
    inside_brain = brain > 0.5
    core = (core_extent < 1.0) & inside_brain
    # Edema follows white-matter tracts: it reaches its full extent only in white matter.
    edema = (edema_extent < np.where(wm > 0.3, 1.0, 0.6)) & inside_brain & ~core
    labels = np.zeros(brain.shape, dtype=np.uint8)
    labels[edema] = EDEMA
    if tumour.grade == "HGG":
        # Necrosis is the core eroded by the rim's thickness (at least a voxel), so the
        # enhancing rim closes around it at any spacing.
        depth = max(1, int(round(tumour.rim_mm / float(np.min(spacing)))))
        necrosis = ndimage.binary_erosion(core, iterations=depth)
        labels[core] = ENHANCING
        labels[necrosis] = NECROSIS
    else:
        labels[core] = NON_ENHANCING
        if rng.random() < 0.3:  # a few low-grade tumours show a small enhancing focus
            focus = core & (distance < 0.3 * tumour.core_radius_mm)
            labels[focus] = ENHANCING
    return labels
