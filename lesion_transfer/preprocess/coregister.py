"""Bring every modality of a subject onto its T1 grid (rigidly, where the grids differ)."""

from typing import Any

import numpy as np

from lesion_transfer import MODALITIES
from lesion_transfer.io.ingest import same_grid
from lesion_transfer.io.layouts import LABEL_SCHEMES
from lesion_transfer.labels import UNKNOWN_LABEL
from lesion_transfer.preprocess.volumes import ants_seed, from_ants, to_ants

Grid = tuple[np.ndarray, np.ndarray]  # (data, affine)


def coregister_modalities(images: dict[str, Grid], label: Grid | None = None,
                          label_scheme: str = "brats", seed: int | None = None
                          ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, dict[str, str]]:
    """images: {modality: (data, affine)}; label: (data, affine) or None.

    Returns (channels on the T1 grid in MODALITIES order, T1 affine, label on the T1 grid in
    canonical values, or UNKNOWN_LABEL everywhere when there is none, and a report).
    Same-grid modalities pass through untouched, and ANTs is not even loaded when all are
    (BraTS, most curated data): its import costs a job seconds. With `seed` (see
    volumes.ants_seed) the rigid registrations are the same on every run.
    """
    t1_data, t1_affine = images["t1"]
    fixed = None
    channels: list[np.ndarray] = []
    transforms: dict[str, Any] = {}
    report: dict[str, str] = {}
    for modality in MODALITIES:
        data, affine = images[modality]
        if same_grid((data.shape, affine), (t1_data.shape, t1_affine)):
            channels.append(np.asarray(data, dtype=np.float32))
            report[modality] = "same grid"
            continue
        import ants

        fixed = fixed if fixed is not None else to_ants(t1_data, t1_affine)
        moving = to_ants(data, affine)
        with ants_seed(seed):
            registration = ants.registration(fixed, moving, type_of_transform="Rigid")
        transforms[modality] = ((data.shape, affine), registration["fwdtransforms"])
        warped = ants.apply_transforms(fixed, moving, registration["fwdtransforms"],
                                       interpolator="linear")
        channels.append(from_ants(warped)[0].astype(np.float32))
        report[modality] = "rigid"
    return channels, t1_affine, _label_on_t1(label, label_scheme, fixed, t1_data, t1_affine,
                                             transforms), report


def _label_on_t1(label: Grid | None, scheme: str, fixed: Any, t1_data: np.ndarray,
                 t1_affine: np.ndarray, transforms: dict[str, Any]) -> np.ndarray:
    """fixed: the T1 as an ANTs image, or None when no modality needed registering."""
    if label is None:
        return np.full(t1_data.shape, UNKNOWN_LABEL, dtype=np.uint8)
    data, affine = label
    data = canonical_labels(data, scheme)
    if same_grid((data.shape, affine), (t1_data.shape, t1_affine)):
        return data
    for grid, forward in transforms.values():
        if same_grid((data.shape, affine), grid):
            import ants

            warped = ants.apply_transforms(fixed, to_ants(data, affine), forward,
                                           interpolator="genericLabel")
            return np.rint(from_ants(warped)[0]).astype(np.uint8)
    raise ValueError("the label's grid matches none of the subject's images")


def canonical_labels(data: np.ndarray, scheme: str) -> np.ndarray:
    """Map a dataset's label values to the canonical ones (BraTS 2023's 3 becomes 4)."""
    mapping = LABEL_SCHEMES[scheme]
    data = np.rint(np.asarray(data)).astype(np.int64)
    out = np.zeros(data.shape, dtype=np.uint8)
    for raw, canonical in mapping.items():
        out[data == raw] = canonical
    return out
