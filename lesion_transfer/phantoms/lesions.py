"""MS-like lesions: small ellipsoids in white matter, more of them periventricular."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from lesion_transfer.io.nifti import Spacing


@dataclass(frozen=True)
class Lesion:
    centre_voxel: tuple[int, ...]
    semi_axes_mm: tuple[float, ...]
    enhancing: bool
    voxels: int


def periventricular_weight(wm: np.ndarray, csf: np.ndarray, brain: np.ndarray,
                           spacing: Spacing) -> np.ndarray:
    """Where lesion centres are drawn: white matter, favouring the ventricles' surroundings."""
    depth = ndimage.distance_transform_edt(brain > 0.5, sampling=spacing)
    ventricles = (csf > 0.5) & (depth > 15.0)  # deep CSF, not the sulci
    if ventricles.any():
        to_ventricles = ndimage.distance_transform_edt(~ventricles, sampling=spacing)
    else:
        to_ventricles = np.full(wm.shape, np.inf)
    weight = np.where((wm > 0.7) & (depth > 4.0), wm, 0.0)
    return weight * (1.0 + 4.0 * np.exp(-to_ventricles / 6.0))


def draw_lesions(rng: np.random.Generator, wm: np.ndarray, csf: np.ndarray, brain: np.ndarray,
                 spacing: Spacing, count_range: Sequence[int],
                 diameter_mm_range: tuple[float, float], enhancing_fraction: float
                 ) -> tuple[np.ndarray, list[Lesion]]:
    """Place non-touching ellipsoids; return the binary mask and one Lesion per component.

    Every lesion holds at least its centre voxel and lesions never touch (26-connectivity),
    so the number of connected components of the mask equals the number of lesions.
    """
    per_axis = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    count = int(rng.integers(count_range[0], count_range[1] + 1))
    weight = periventricular_weight(wm, csf, brain, per_axis).ravel()
    probability = weight / weight.sum()
    mask = np.zeros(wm.shape, dtype=bool)
    taken = np.zeros(wm.shape, dtype=bool)  # lesions grown by one voxel: keeps them apart
    lesions: list[Lesion] = []
    for _ in range(50 * count):
        if len(lesions) == count:
            break
        centre = np.unravel_index(rng.choice(weight.size, p=probability), wm.shape)
        semi_axes = rng.uniform(*diameter_mm_range, size=3) / 2.0
        rotation = Rotation.random(random_state=rng).as_matrix()
        lesion = _ellipsoid(wm.shape, centre, semi_axes, rotation, per_axis) & (brain > 0.5)
        lesion[centre] = True
        if (lesion & taken).any():
            continue
        mask |= lesion
        taken |= ndimage.binary_dilation(lesion, structure=np.ones((3, 3, 3), bool))
        lesions.append(
            Lesion(
                centre_voxel=tuple(int(c) for c in centre),
                semi_axes_mm=tuple(float(a) for a in semi_axes),
                enhancing=bool(rng.random() < enhancing_fraction),
                voxels=int(lesion.sum()),
            )
        )
    return mask, lesions


def _ellipsoid(shape: tuple[int, ...], centre: tuple[np.intp, ...], semi_axes: np.ndarray,
               rotation: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Voxels whose centres fall inside a rotated ellipsoid (semi-axes in mm)."""
    reach = int(np.ceil(max(semi_axes) / spacing.min())) + 1
    lower = np.maximum(np.asarray(centre) - reach, 0)
    upper = np.minimum(np.asarray(centre) + reach + 1, shape)
    box = np.indices(upper - lower).reshape(3, -1) + (lower - np.asarray(centre))[:, None]
    offsets_mm = rotation.T @ (box * spacing[:, None])
    inside = ((offsets_mm / np.asarray(semi_axes)[:, None]) ** 2).sum(axis=0) <= 1.0
    mask = np.zeros(shape, dtype=bool)
    region = mask[lower[0]:upper[0], lower[1]:upper[1], lower[2]:upper[2]]
    region[...] = inside.reshape(region.shape)
    return mask


def lesion_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label each lesion of a mask (26-connectivity); returns (labels, count)."""
    return ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
