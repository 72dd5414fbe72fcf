"""Phantom subjects and cohorts, written in the layouts real datasets arrive in.

Every subject is deterministic from (seed, subject id): the random generator is seeded with
both, so a cohort can grow without changing the subjects it already has.
"""

import json
import shutil
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from lesion_transfer import MODALITIES
from lesion_transfer.io.atomic import write_text
from lesion_transfer.io.layouts import BRATS_TRAINING, BRATS_VALIDATION
from lesion_transfer.io.nifti import save_nifti
from lesion_transfer.phantoms import contrast
from lesion_transfer.phantoms.contrast import Site
from lesion_transfer.phantoms.fields import (
    apply_affine,
    grid_affine,
    random_similarity,
    sample,
    smooth_displacement,
    subject_to_template,
    world_coordinates,
)
from lesion_transfer.phantoms.head import head_layers
from lesion_transfer.phantoms.lesions import Lesion, draw_lesions
from lesion_transfer.phantoms.template import TissueTemplate, load_tissue_template
from lesion_transfer.phantoms.tumour import draw_tumour, mass_effect, tumour_labels, tumour_site

# Fields of view (mm): a raw head scan, and the BraTS grid (240 x 240 x 155 at 1 mm).
HEAD_FOV_MM = (200.0, 240.0, 210.0)
BRATS_FOV_MM = (240.0, 240.0, 155.0)


@dataclass(frozen=True)
class PhantomSettings:
    """The `phantom` block of a dataset in the validated config. No defaults here: the schema
    owns them (`$defs/phantom`); code outside a workflow run fills them with
    `lesion_transfer.config.schema_defaults("phantom")`."""

    kind: str  # "ms" (source, manifest layout) or "glioma" (target, BraTS 2018 layout)
    subjects: int
    seed: int
    unlabelled_subjects: int
    hgg_fraction: float
    sites: int
    spacing_mm: float
    lesion_count: tuple[int, int]
    lesion_diameter_mm: tuple[float, float]
    enhancing_lesion_fraction: float
    core_radius_mm: tuple[float, float]
    edema_margin_mm: tuple[float, float]
    enhancing_rim_mm: tuple[float, float]
    mass_effect: float
    rotation_deg: float
    translation_mm: float
    scale: float
    deformation_mm: float
    deformation_correlation_mm: float
    bias_strength: float
    noise: float
    site_gamma: tuple[float, float]
    tissue_jitter: float
    # per subject and sequence, each tumour compartment's intensity x [1 - this, 1 + this]:
    # how much one glioma looks unlike another (0: only tissue_jitter, the same in every
    # sequence)
    tumour_jitter: float
    truth_fields: bool  # dense bias and displacement fields: for tests of their own

    @classmethod
    def from_config(cls, block: Mapping[str, Any], seed: int) -> "PhantomSettings":
        """From a validated `phantom` block; `seed` (the study's) where the block has none,
        and truth_fields off and tumour_jitter 0 where they are absent (the schema gives them
        no default, so that studies written before the keys existed keep their phantoms)."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in block.items() if k in known}
        values.setdefault("seed", seed)
        values.setdefault("truth_fields", False)
        values.setdefault("tumour_jitter", 0.0)
        return cls(**values)


@dataclass
class SubjectPhantom:
    """One subject's images, label and the truth that generated them."""

    subject: str
    images: dict[str, np.ndarray]
    label: np.ndarray
    affine: np.ndarray
    brain_mask: np.ndarray
    bias: dict[str, np.ndarray]
    subject_to_template: np.ndarray  # 4x4, subject world -> template world (mm)
    displacement: np.ndarray  # (3, *shape): template point = matrix @ x + displacement(x)
    tissues: np.ndarray  # 0 outside the brain, 1 CSF, 2 GM, 3 WM (largest fraction)
    info: dict[str, Any] = field(default_factory=dict)


def subject_rng(seed: int, subject: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(subject.encode())])


def site_of(settings: PhantomSettings, index: int, kind: str) -> Site:
    """Sites are assigned round-robin; a site's scanner depends on (seed, kind, site) only."""
    number = index % settings.sites + 1
    rng = subject_rng(settings.seed, f"{kind}-site-{number}")
    return contrast.make_site(rng, f"site{number}", settings.site_gamma)


def _anatomy(rng: np.random.Generator, settings: PhantomSettings, shape: tuple[int, ...],
             affine: np.ndarray, template: TissueTemplate, subject_centre: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Random similarity + smooth deformation: subject voxel -> template world point."""
    linear, translation = random_similarity(
        rng, settings.rotation_deg, settings.translation_mm, settings.scale
    )
    matrix = subject_to_template(linear, translation, subject_centre, template.brain_centre)
    spacing = np.full(3, settings.spacing_mm)
    deformation = smooth_displacement(
        shape, spacing, settings.deformation_mm, settings.deformation_correlation_mm, rng
    )
    return matrix, deformation


def _tissues(template: TissueTemplate, points: np.ndarray) -> dict[str, np.ndarray]:
    return {
        name: np.clip(sample(getattr(template, name), template.affine, points), 0.0, 1.0)
        for name in ("csf", "gm", "wm", "brain")
    }


def _tissue_classes(tissue: Mapping[str, np.ndarray], brain: np.ndarray) -> np.ndarray:
    fractions = np.stack([tissue["csf"], tissue["gm"], tissue["wm"]])
    return np.where(brain > 0.5, fractions.argmax(axis=0) + 1, 0).astype(np.uint8)


def _jitter(rng: np.random.Generator, amount: float) -> dict[str, float]:
    return {t: 1.0 + rng.uniform(-amount, amount) for t in contrast.TISSUE_INTENSITY["t1"]}


def _tumour_contrast(settings: PhantomSettings, subject: str, compartments: Sequence[str]
                     ) -> dict[str, dict[str, float]]:
    """{compartment: {modality: factor}}, each factor in 1 +- tumour_jitter: one glioma's
    edema faint on FLAIR, another's rim bright on T1c. Drawn from a stream of its own, so
    that every other draw of the subject, and with 0 its images, stay as they were."""
    if not settings.tumour_jitter:
        return {name: dict.fromkeys(MODALITIES, 1.0) for name in compartments}
    rng = subject_rng(settings.seed, f"{subject}-tumour-contrast")
    amount = settings.tumour_jitter
    return {name: {m: float(1.0 + rng.uniform(-amount, amount)) for m in MODALITIES}
            for name in compartments}


def _acquire(rng: np.random.Generator, settings: PhantomSettings, site: Site,
             signals: Mapping[str, np.ndarray], brain_only_mask: np.ndarray | None = None
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Scanner effects on noiseless signals: site curve, bias field, Rician noise, int16."""
    images: dict[str, np.ndarray] = {}
    bias: dict[str, np.ndarray] = {}
    shape = next(iter(signals.values())).shape
    for modality in MODALITIES:
        bias[modality] = contrast.polynomial_bias_field(shape, rng, settings.bias_strength)
        signal = site.apply(modality, signals[modality]) * bias[modality]
        signal = contrast.rician(signal, settings.noise * site.scale[modality], rng)
        if brain_only_mask is not None:
            signal = signal * brain_only_mask
        images[modality] = np.clip(np.round(signal), 0, np.iinfo(np.int16).max).astype(np.int16)
    return images, bias


def synthesize_ms_subject(settings: PhantomSettings, subject: str, index: int) -> SubjectPhantom:
    """A raw MS-like head scan: skull and scalp, white-matter lesions, binary label."""
    rng = subject_rng(settings.seed, subject)
    spacing = np.full(3, settings.spacing_mm)
    template = load_tissue_template(smoothing_mm=max(settings.spacing_mm - 1.0, 0.0))
    shape = tuple(int(round(f / settings.spacing_mm)) for f in HEAD_FOV_MM)
    affine = grid_affine(shape, spacing, centre_world=np.zeros(3))
    matrix, deformation = _anatomy(rng, settings, shape, affine, template, np.zeros(3))
    points = world_coordinates(shape, affine)
    template_points = apply_affine(matrix, points) + deformation
    tissue = _tissues(template, template_points)
    brain = tissue.pop("brain")

    lesion_mask, lesions = draw_lesions(
        rng, tissue["wm"], tissue["csf"], brain, spacing, settings.lesion_count,
        settings.lesion_diameter_mm, settings.enhancing_lesion_fraction,
    )
    head = head_layers(brain, spacing, rng)
    fractions = {**tissue, "csf": tissue["csf"] + head["csf"],
                 "skull": head["skull"], "scalp": head["scalp"]}
    lesion_weight = _partial_volume(lesion_mask)
    enhancing_weight = _partial_volume(_enhancing_part(lesion_mask, lesions))
    jitter = _jitter(rng, settings.tissue_jitter)
    signals = {}
    for modality in MODALITIES:
        table = contrast.TISSUE_INTENSITY[modality]
        signal = contrast.tissue_signal(modality, fractions, jitter)
        signal = contrast.blend(signal, lesion_weight, table["lesion"] * jitter["lesion"])
        signal = contrast.blend(signal, enhancing_weight, table["enhancing_lesion"])
        signals[modality] = signal
    site = site_of(settings, index, "ms")
    images, bias = _acquire(rng, settings, site, signals)
    brain_mask = (brain > 0.5) | lesion_mask
    return SubjectPhantom(
        subject=subject, images=images, label=lesion_mask.astype(np.uint8), affine=affine,
        brain_mask=brain_mask.astype(np.uint8), bias=bias, subject_to_template=matrix,
        displacement=template_points - apply_affine(matrix, points),
        tissues=_tissue_classes(tissue, brain),
        info={"site": site.name, "site_scale": site.scale, "site_gamma": site.gamma,
              "lesions": [asdict(lesion) for lesion in lesions]},
    )


def synthesize_glioma_subject(settings: PhantomSettings, subject: str, index: int, grade: str
                              ) -> SubjectPhantom:
    """A BraTS-like scan: skull-stripped, on the fixed BraTS grid, one tumour with mass effect."""
    rng = subject_rng(settings.seed, subject)
    spacing = np.full(3, settings.spacing_mm)
    template = load_tissue_template(smoothing_mm=max(settings.spacing_mm - 1.0, 0.0))
    shape = tuple(int(round(f / settings.spacing_mm)) for f in BRATS_FOV_MM)
    centre = np.array([-120.0, 120.0, 77.0])  # the centre of BraTS's (-1, -1, 1) grid
    affine = grid_affine(shape, spacing, centre_world=centre, flip_xy=True)
    matrix, deformation = _anatomy(rng, settings, shape, affine, template, centre)

    reach = settings.core_radius_mm[1] + 5.0
    site_in_template = tumour_site(rng, template, reach)
    tumour_centre = np.linalg.solve(matrix[:3, :3], site_in_template - matrix[:3, 3])
    tumour = draw_tumour(rng, grade, settings.core_radius_mm, settings.edema_margin_mm,
                         settings.enhancing_rim_mm, tumour_centre)
    points = world_coordinates(shape, affine)
    template_points = apply_affine(matrix, mass_effect(points, tumour, settings.mass_effect))
    template_points += deformation
    tissue = _tissues(template, template_points)
    brain = tissue.pop("brain")
    labels = tumour_labels(rng, tumour, points, brain, tissue["wm"], spacing)

    jitter = _jitter(rng, settings.tissue_jitter)
    compartments = {"edema": labels == 2, "core": (labels == 1) & (grade == "LGG"),
                    "necrosis": (labels == 1) & (grade == "HGG"), "enhancing": labels == 4}
    weights = {name: _partial_volume(mask) for name, mask in compartments.items()}
    tumour_contrast = _tumour_contrast(settings, subject, list(compartments))
    signals = {}
    for modality in MODALITIES:
        table = contrast.TISSUE_INTENSITY[modality]
        signal = contrast.tissue_signal(modality, tissue, jitter)
        for name, weight in weights.items():
            value = table[name] * jitter[name] * tumour_contrast[name][modality]
            signal = contrast.blend(signal, weight, value)
        signals[modality] = signal
    brain_mask = (brain > 0.5) | (labels > 0)
    site = site_of(settings, index, "glioma")
    images, bias = _acquire(rng, settings, site, signals, brain_only_mask=brain_mask)
    return SubjectPhantom(
        subject=subject, images=images, label=labels, affine=affine,
        brain_mask=brain_mask.astype(np.uint8), bias=bias, subject_to_template=matrix,
        displacement=template_points - apply_affine(matrix, points),
        tissues=_tissue_classes(tissue, brain),
        info={"site": site.name, "site_scale": site.scale, "site_gamma": site.gamma,
              "grade": grade, "tumour": asdict(tumour), "tumour_contrast": tumour_contrast},
    )


def _partial_volume(mask: np.ndarray) -> np.ndarray:
    return np.maximum(ndimage.gaussian_filter(mask.astype(np.float32), 0.5), 0.8 * mask)


def _enhancing_part(mask: np.ndarray, lesions: Sequence[Lesion]) -> np.ndarray:
    components, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    enhancing = [components[lesion.centre_voxel] for lesion in lesions if lesion.enhancing]
    return np.isin(components, enhancing)


# ---------------------------------------------------------------------------------------
# Cohorts on disk


def synthesize_cohort(settings: PhantomSettings, out_dir: str | Path,
                      log: Callable[[str], object] = print) -> dict[str, Any]:
    """Write a whole phantom cohort to `out_dir` (built beside it, then renamed into place)."""
    out_dir = Path(out_dir)
    building = out_dir.with_name(f".{out_dir.name}.building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    writer = {"ms": _write_ms_cohort, "glioma": _write_glioma_cohort}[settings.kind]
    subjects = writer(settings, building, log)
    description = {"settings": asdict(settings), "subjects": subjects}
    write_text(building / "cohort.json", json.dumps(description, indent=1, sort_keys=True))
    shutil.rmtree(out_dir, ignore_errors=True)
    building.rename(out_dir)
    return description


def ms_subject_ids(settings: PhantomSettings) -> list[str]:
    return [f"MS{i + 1:03d}" for i in range(settings.subjects)]


def glioma_subject_ids(settings: PhantomSettings) -> list[tuple[str, str, bool]]:
    """(id, grade, labelled) in BraTS 2018 style: Brats18_<site>_<number>_1."""
    hgg = int(round(settings.hgg_fraction * settings.subjects))
    ids = []
    for i in range(settings.subjects + settings.unlabelled_subjects):
        labelled = i < settings.subjects
        grade = ("HGG" if i < hgg else "LGG") if labelled else ("HGG" if i % 2 == 0 else "LGG")
        site = i % settings.sites + 1
        prefix = "Brats18" if labelled else "Brats18_VAL"
        ids.append((f"{prefix}_SITE{site}_{i + 1:03d}_1", grade, labelled))
    return ids


def _write_ms_cohort(settings: PhantomSettings, root: Path, log: Callable[[str], object]
                     ) -> list[dict[str, Any]]:
    rows: list[list[str]] = []
    subjects: list[dict[str, Any]] = []
    for index, subject in enumerate(ms_subject_ids(settings)):
        phantom = synthesize_ms_subject(settings, subject, index)
        folder = Path("raw") / subject
        paths = {m: folder / f"{subject}_{m}.nii.gz" for m in MODALITIES}
        paths["label"] = folder / f"{subject}_lesions.nii.gz"
        _write_images(root, phantom, paths)
        _write_truth(root / "truth" / subject, phantom, settings.truth_fields)
        site = phantom.info["site"]
        rows.append([subject, *(str(paths[m]) for m in MODALITIES), str(paths["label"]), "MS",
                     site])
        subjects.append({"subject": subject, "site": site, "lesions": len(phantom.info["lesions"])})
        log(f"{subject}: {len(phantom.info['lesions'])} lesions, {site}")
    header = ["subject", *MODALITIES, "label", "group", "site"]
    table = "\n".join("\t".join(row) for row in [header, *rows]) + "\n"
    write_text(root / "manifest.tsv", table)
    return subjects


def _write_glioma_cohort(settings: PhantomSettings, root: Path, log: Callable[[str], object]
                         ) -> list[dict[str, Any]]:
    subjects: list[dict[str, Any]] = []
    for index, (subject, grade, labelled) in enumerate(glioma_subject_ids(settings)):
        phantom = synthesize_glioma_subject(settings, subject, index, grade)
        folder = (Path(BRATS_TRAINING) / grade / subject) if labelled else (
            Path(BRATS_VALIDATION) / subject)
        paths = {m: folder / f"{subject}_{m}.nii.gz" for m in MODALITIES}
        if labelled:
            paths["label"] = folder / f"{subject}_seg.nii.gz"
        _write_images(root, phantom, paths)
        _write_truth(root / "truth" / subject, phantom, settings.truth_fields,
                     with_label=not labelled)
        subjects.append({"subject": subject, "grade": grade, "labelled": labelled,
                         "site": phantom.info["site"]})
        log(f"{subject}: {grade}, {'labelled' if labelled else 'unlabelled'}")
    return subjects


def _write_images(root: Path, phantom: SubjectPhantom, paths: Mapping[str, Path]) -> None:
    for modality in MODALITIES:
        save_nifti(root / paths[modality], phantom.images[modality], phantom.affine)
    if "label" in paths:
        save_nifti(root / paths["label"], phantom.label, phantom.affine, dtype=np.uint8)


def _write_truth(folder: Path, phantom: SubjectPhantom, with_fields: bool,
                 with_label: bool = False) -> None:
    save_nifti(folder / "brain_mask.nii.gz", phantom.brain_mask, phantom.affine, dtype=np.uint8)
    save_nifti(folder / "tissues.nii.gz", phantom.tissues, phantom.affine, dtype=np.uint8)
    if with_fields:  # float fields gzip poorly: 90 % of a cohort's bytes, read by no stage
        for modality, bias in phantom.bias.items():
            save_nifti(folder / f"bias_{modality}.nii.gz", bias, phantom.affine,
                       dtype=np.float32)
        displacement = np.moveaxis(phantom.displacement, 0, -1).astype(np.float32)
        save_nifti(folder / "displacement.nii.gz", displacement, phantom.affine)
    if with_label:
        save_nifti(folder / "label.nii.gz", phantom.label, phantom.affine, dtype=np.uint8)
    transform = {
        "subject_to_template": np.asarray(phantom.subject_to_template).tolist(),
        "convention": "template_world = subject_to_template @ subject_world + displacement",
        "template": "MNI152 2009 (nilearn), world coordinates in mm",
        **phantom.info,
    }
    write_text(folder / "truth.json", json.dumps(transform, indent=1, sort_keys=True))
