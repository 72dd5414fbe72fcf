"""Grids, random transforms and smooth random fields for the phantoms."""

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation


def grid_affine(shape, spacing, centre_world, flip_xy=False):
    """An axis-aligned voxel-to-world affine whose grid centre sits at `centre_world`.

    `flip_xy` stores x and y reversed, as BraTS files are (LPS-like arrays).
    """
    signs = np.array([-1.0, -1.0, 1.0]) if flip_xy else np.ones(3)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(signs * spacing)
    half_extent = (np.asarray(shape) - 1) / 2.0
    affine[:3, 3] = np.asarray(centre_world) - affine[:3, :3] @ half_extent
    return affine


def world_coordinates(shape, affine):
    """World coordinates (mm) of every voxel centre, shape (3, *shape)."""
    index = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = affine[:3, :3].astype(np.float32) @ index + affine[:3, 3:4].astype(np.float32)
    return world.reshape(3, *shape)


def apply_affine(matrix, points):
    """Apply a 4x4 matrix to points of shape (3, ...)."""
    flat = points.reshape(3, -1)
    out = matrix[:3, :3].astype(np.float32) @ flat + matrix[:3, 3:4].astype(np.float32)
    return out.reshape(points.shape)


def sample(volume, affine, points, order=1):
    """Values of `volume` (on grid `affine`) at world points (3, ...); zero outside."""
    voxels = apply_affine(np.linalg.inv(affine), points)
    return ndimage.map_coordinates(volume, voxels, order=order, mode="constant", cval=0.0)


def random_similarity(rng, max_rotation_deg, max_translation_mm, max_scale):
    """Rotation, anisotropic scale and translation, each uniform within its bound.

    Returns a 3x3 linear part and a translation (mm); applied about a centre by the caller.
    """
    angles = rng.uniform(-max_rotation_deg, max_rotation_deg, size=3)
    rotation = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    scale = np.diag(1.0 + rng.uniform(-max_scale, max_scale, size=3))
    translation = rng.uniform(-max_translation_mm, max_translation_mm, size=3)
    return rotation @ scale, translation


def subject_to_template(linear, translation, subject_centre, template_centre):
    """4x4 matrix mapping subject world -> template world about the two centres."""
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = template_centre + translation - linear @ subject_centre
    return matrix


def smooth_noise(shape, spacing, correlation_mm, rng):
    """Zero-mean, unit-variance Gaussian random field with the given correlation length.

    Drawn on a coarse grid and interpolated, so its cost does not grow with the length.
    """
    spacing = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    coarse_step = correlation_mm / 2.0
    extent = np.asarray(shape) * spacing
    coarse_shape = np.ceil(extent / coarse_step).astype(int) + 4
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), sigma=1.0, mode="wrap")
    positions = [
        (np.arange(n) * s) / coarse_step + 2.0 for n, s in zip(shape, spacing)
    ]
    mesh = np.meshgrid(*positions, indexing="ij")
    field = ndimage.map_coordinates(coarse, mesh, order=3, mode="nearest").astype(np.float32)
    field -= field.mean()
    return field / max(float(field.std()), 1e-6)


def smooth_displacement(shape, spacing, amplitude_mm, correlation_mm, rng):
    """A smooth non-linear displacement field (3, *shape) in mm, RMS `amplitude_mm` per axis."""
    return np.stack(
        [amplitude_mm * smooth_noise(shape, spacing, correlation_mm, rng) for _ in range(3)]
    )
