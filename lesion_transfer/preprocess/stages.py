"""One function per workflow rule: read the stage's input files, call the stage, write its
outputs. The rules' scripts only pass paths and parameters to these."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lesion_transfer import MODALITIES
from lesion_transfer.io.atomic import write_text, write_tsv
from lesion_transfer.io.cache import path_in_results, write_cache
from lesion_transfer.io.nifti import load_nifti, save_nifti
from lesion_transfer.labels import UNKNOWN_LABEL
from lesion_transfer.preprocess import bias, brain, cache, coregister, normalise, nyul, qc, register
from lesion_transfer.preprocess.volumes import (
    load_channels,
    load_mask,
    save_channels,
)
from lesion_transfer.provenance import PAPER_SCALE


def coregister_modalities_stage(label_scheme: str, seed: int | None, *, raw: dict,
                                out_image: Path, out_label: Path) -> dict:
    """raw: {modality: path, optional 'label': path}."""
    images = {m: load_nifti(raw[m]) for m in MODALITIES}
    label = load_nifti(raw["label"]) if raw.get("label") else None
    channels, affine, label_on_t1, report = coregister.coregister_modalities(
        images, label, label_scheme, seed)
    save_channels(out_image, channels, affine)
    save_nifti(out_label, label_on_t1, affine, dtype=np.uint8)
    return report


def extract_brain_stage(method: str, *, image: Path, out_mask: Path,
                        given_mask: Path | None = None) -> int:
    channels, affine = load_channels(image)
    given = load_nifti(given_mask)[0] if given_mask else None
    mask = brain.extract_brain(method, channels, affine, given)
    save_nifti(out_mask, mask.astype(np.uint8), affine, dtype=np.uint8)
    return int(mask.sum())


@dataclass(frozen=True)
class BiasCorrection:
    """Rule correct_bias's settings: n4 or n3, and the resolution its field is fitted at."""

    method: str
    fit_resolution_mm: float


def correct_bias_stage(settings: BiasCorrection, *, image: Path, mask: Path, out_image: Path,
                       out_field: Path) -> None:
    channels, affine = load_channels(image)
    brain_mask, _ = load_mask(mask)
    corrected, fields = zip(*(bias.correct_bias(c, affine, brain_mask, settings.method,
                                                settings.fit_resolution_mm)
                              for c in channels))
    save_channels(out_image, list(corrected), affine)
    save_channels(out_field, list(fields), affine)


def fit_nyul_stage(subjects: list, *, images: list, masks: list, out_paths: list) -> None:
    """images/masks: the source training subjects' bias-corrected images and brain masks."""
    loaded = [(load_channels(i)[0], load_mask(m)[0]) for i, m in zip(images, masks)]
    for c, (modality, path) in enumerate(zip(MODALITIES, out_paths)):
        scale = nyul.fit_standard_scale((channels[c], mask) for channels, mask in loaded)
        scale.update(modality=modality, fitted_on=list(subjects))
        write_text(path, json.dumps(scale, indent=1))


def apply_nyul_stage(*, image: Path, mask: Path, scales: list, out_image: Path) -> None:
    """scales: the fitted landmarks' JSON, one per modality."""
    channels, affine = load_channels(image)
    brain_mask, _ = load_mask(mask)
    landmarks = [json.loads(Path(p).read_text()) for p in scales]
    standardised = [nyul.apply_standard_scale(c, brain_mask, s)
                    for c, s in zip(channels, landmarks)]
    save_channels(out_image, standardised, affine)


def prepare_template_stage(spacing_mm: float, *, template: Path | None,
                           template_mask: Path | None, out_template: Path,
                           out_mask: Path) -> None:
    """template, template_mask: the user's (None: nilearn's MNI152)."""
    t1, mask, affine = register.load_template(spacing_mm, template, template_mask)
    save_nifti(out_template, t1, affine, dtype=np.float32)
    save_nifti(out_mask, mask.astype(np.uint8), affine, dtype=np.uint8)


# An affine registration to the template that leaves the brain mask below this Dice with the
# template's has failed (seen once in CI on a real MS patient at 4 mm, unseeded: the brain
# scaled 1.9x linearly, mask Dice far below; a rerun of the same input registered it well). It
# is tried again with the next seed, up to REGISTRATION_ATTEMPTS times; the QC table flags one
# that never passes.
MIN_MASK_DICE = 0.8
REGISTRATION_ATTEMPTS = 3


@dataclass(frozen=True)
class Registration:
    """Rule register_to_template's settings: the ANTs transform and the seed (None: ANTs
    unseeded, multi-threaded)."""

    transform: str
    seed: int | None


@dataclass(frozen=True)
class Template:
    """The template's T1 and brain mask, on the study's grid (rule prepare_template)."""

    t1: Path
    mask: Path


@dataclass(frozen=True)
class Registered:
    """Rule register_to_template's outputs: the warped image and brain mask, the transforms'
    folder and the QC measures (JSON)."""

    image: Path
    mask: Path
    transforms: Path
    qc: Path


def register_to_template_stage(settings: Registration, *, image: Path, mask: Path,
                               template: Template, outputs: Registered) -> dict:
    channels, affine = load_channels(image)
    brain_mask, _ = load_mask(mask)
    template_t1, template_affine = load_nifti(template.t1)
    template_mask, _ = load_mask(template.mask)
    shape = template_t1.shape
    seed = settings.seed
    for attempt in range(1, REGISTRATION_ATTEMPTS + 1):
        register.register_to_template(channels[0], affine, brain_mask, template_t1,
                                      template_affine, settings.transform, outputs.transforms,
                                      seed=None if seed is None else seed + attempt - 1)
        transforms = register.read_transforms(outputs.transforms)
        warped_mask = register.warp_to_template(brain_mask.astype(np.uint8), affine, shape,
                                                template_affine, transforms, label=True) > 0
        if qc.dice(warped_mask, template_mask) >= MIN_MASK_DICE:
            break  # else the next seed draws other sample points
    warped = [register.warp_to_template(np.where(brain_mask, c, 0.0), affine, shape,
                                        template_affine, transforms) for c in channels]
    save_channels(outputs.image, warped, template_affine)
    save_nifti(outputs.mask, warped_mask.astype(np.uint8), template_affine, dtype=np.uint8)
    measures = qc.registration_qc(warped[0], warped_mask, template_t1, template_mask, brain_mask,
                                      affine)
    measures["registration_attempts"] = attempt
    write_text(outputs.qc, json.dumps(measures, indent=1))
    return measures


def normalise_intensity_stage(*, image: Path, mask: Path, out_image: Path,
                              scale: str = PAPER_SCALE) -> None:
    """Each channel to the intensity scale `scale` (provenance.INTENSITY_SCALES)."""
    channels, affine = load_channels(image)
    brain_mask, _ = load_mask(mask)
    normaliser = normalise.NORMALISERS[scale]
    save_channels(out_image, [normaliser(c, brain_mask) for c in channels], affine)


@dataclass(frozen=True)
class Caching:
    """Rule cache_tensors's settings: the crop (its shape, and the template's brain mask it is
    centred on) and what meta.json records of the job (subject, preprocessing settings)."""

    crop_shape: tuple
    template_mask: Path
    record: dict


def cache_tensors_stage(settings: Caching, *, image: Path, native_label: Path,
                        transforms: Path, out_folder: Path) -> dict:
    """native_label: the coregistered label, UNKNOWN_LABEL everywhere for an unlabelled one;
    transforms: the registration's folder."""
    crop_shape, transforms_dir = settings.crop_shape, transforms
    channels, template_affine = load_channels(image)
    template_mask, _ = load_mask(settings.template_mask)
    label, native_affine = load_nifti(native_label, dtype=np.uint8)
    labelled = not np.all(label == UNKNOWN_LABEL)
    registration = register.read_transforms(transforms_dir)
    shape = channels[0].shape
    if labelled:
        warped = register.warp_to_template(label, native_affine, shape, template_affine,
                                           registration, label=True)
    else:
        warped = np.full(shape, UNKNOWN_LABEL, dtype=np.uint8)
    start = cache.crop_start(template_mask, crop_shape)
    cropped = [cache.crop_or_pad(c, start, crop_shape) for c in channels]
    fill = 0 if labelled else UNKNOWN_LABEL
    meta = {
        **settings.record,
        "channels": list(MODALITIES),
        "labelled": bool(labelled),
        "unknown_label": UNKNOWN_LABEL,
        "crop_start": start,
        "crop_shape": list(crop_shape),
        "template_shape": list(shape),
        "template_affine": np.asarray(template_affine).tolist(),
        "native_shape": list(label.shape),
        "native_affine": np.asarray(native_affine).tolist(),
        "transforms": path_in_results(out_folder, transforms_dir),
    }
    write_cache(out_folder, cropped, cache.crop_or_pad(warped, start, crop_shape, fill), meta)
    return meta


def summarise_qc_stage(qc_by_subject: Mapping[str, Path], out_table: Path) -> list[dict[str, Any]]:
    """qc_by_subject: {subject: its qc.json}."""
    rows = [{"subject": subject, **json.loads(Path(p).read_text())}
            for subject, p in qc_by_subject.items()]
    measures = ["similarity_to_template", "mask_dice_with_template", "brain_volume_ml"]
    qc.flag_outliers(rows, measures)
    write_tsv(rows, out_table, list(rows[0]))
    return rows
