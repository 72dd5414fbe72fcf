"""Grids, random transforms and smooth random fields for the phantoms."""

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from lesion_transfer.io.nifti import Spacing


def grid_affine(shape: Sequence[int], spacing: float | np.ndarray, centre_world: np.ndarray,
                flip_xy: bool = False) -> np.ndarray:
    """An axis-aligned voxel-to-world affine whose grid centre sits at `centre_world`.

    `flip_xy` stores x and y reversed, as BraTS files are (LPS-like arrays).
    """
    signs = np.array([-1.0, -1.0, 1.0]) if flip_xy else np.ones(3)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(signs * spacing)
    half_extent = (np.asarray(shape) - 1) / 2.0
    affine[:3, 3] = np.asarray(centre_world) - affine[:3, :3] @ half_extent
    return affine


def world_coordinates(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of every voxel centre, shape (3, *shape)."""
    index = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = affine[:3, :3].astype(np.float32) @ index + affine[:3, 3:4].astype(np.float32)
    return world.reshape(3, *shape)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 matrix to points of shape (3, ...)."""
    flat = points.reshape(3, -1)
    out = matrix[:3, :3].astype(np.float32) @ flat + matrix[:3, 3:4].astype(np.float32)
    return out.reshape(points.shape)


def sample(volume: np.ndarray, affine: np.ndarray, points: np.ndarray, order: int = 1
           ) -> np.ndarray:
    """Values of `volume` (on grid `affine`) at world points (3, ...); zero outside."""
    voxels = apply_affine(np.linalg.inv(affine), points)
    return ndimage.map_coordinates(volume, voxels, order=order, mode="constant", cval=0.0)


def random_similarity(rng: np.random.Generator, max_rotation_deg: float,
                      max_translation_mm: float, max_scale: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Rotation, anisotropic scale and translation, each uniform within its bound.

    Returns a 3x3 linear part and a translation (mm); applied about a centre by the caller.
    """
    angles = rng.uniform(-max_rotation_deg, max_rotation_deg, size=3)
    rotation = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    scale = np.diag(1.0 + rng.uniform(-max_scale, max_scale, size=3))
    translation = rng.uniform(-max_translation_mm, max_translation_mm, size=3)
    return rotation @ scale, translation


def subject_to_template(linear: np.ndarray, translation: np.ndarray, subject_centre: np.ndarray,
                        template_centre: np.ndarray) -> np.ndarray:
    """4x4 matrix mapping subject world -> template world about the two centres."""
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = template_centre + translation - linear @ subject_centre
    return matrix


def smooth_noise(shape: Sequence[int], spacing: Spacing,
                 correlation_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with the given correlation length.

    Drawn on a coarse grid and interpolated, so its cost does not grow with the length.
    """
    per_axis = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    coarse_step = correlation_mm / 2.0
    extent = np.asarray(shape) * per_axis
    coarse_shape = np.ceil(extent / coarse_step).astype(int) + 4
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), sigma=1.0, mode="wrap")
    positions = [
        (np.arange(n) * s) / coarse_step + 2.0 for n, s in zip(shape, per_axis)
    ]
    mesh = np.meshgrid(*positions, indexing="ij")
    field = ndimage.map_coordinates(coarse, mesh, order=3, mode="nearest").astype(np.float32)
    field -= field.mean()
    return field / max(float(field.std()), 1e-6)


def smooth_displacement(shape: Sequence[int], spacing: Spacing,
                        amplitude_mm: float, correlation_mm: float, rng: np.random.Generator
                        ) -> np.ndarray:
    """A smooth non-linear displacement field (3, *shape) in mm, RMS `amplitude_mm` per axis."""
    return np.stack(
        [amplitude_mm * smooth_noise(shape, spacing, correlation_mm, rng) for _ in range(3)]
    )
