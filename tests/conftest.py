"""Shared fixtures: tiny datasets written with nibabel in each layout ingestion reads."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
# CI sets it: there ../shared lies beside the checkout, and a realdata test must run, not skip
REALDATA_REQUIRED = os.environ.get("LESION_TRANSFER_REQUIRE_REALDATA") == "1"


def needs_realdata(folder):
    """Skip where ../shared is absent (a clone elsewhere), unless CI requires it: then the
    tests run and fail, naming the missing folder."""
    return pytest.mark.skipif(not folder.exists() and not REALDATA_REQUIRED,
                              reason=f"{folder} is absent")
SHAPE = (12, 10, 8)
MODALITIES = ("t1", "t1ce", "t2", "flair")


def schema_training_block(**overrides):
    """A train.pretrain / train.finetune block as the workflow passes it: the schema's
    defaults (their one owner) with `overrides`."""
    from lesion_transfer.config import schema_defaults

    return schema_defaults("training", **overrides)


def preprocess_default(key):
    """The schema's default of `preprocess.<key>`, its one owner."""
    from lesion_transfer.config import defaults_of, load_schema

    return defaults_of(load_schema()["properties"]["preprocess"])[key]


def phantom_settings(**overrides):
    """PhantomSettings as a dataset's validated `phantom` block gives them: the schema's
    defaults with `overrides` (seed 0 unless given)."""
    from lesion_transfer.config import schema_defaults
    from lesion_transfer.phantoms import PhantomSettings

    return PhantomSettings.from_config(schema_defaults("phantom", **overrides),
                                       overrides.get("seed", 0))


def report_settings(strategies=("scratch", "ft_all"), **overrides):
    """ReportSettings as the report rules build them: the schema's `report` defaults with
    `overrides`, and the arms in table order."""
    from lesion_transfer.config import schema_defaults
    from lesion_transfer.report.settings import ReportSettings

    return ReportSettings.from_config(schema_defaults("report", **overrides), strategies)


def train_settings(seed=0, device="cpu", precision="auto", **overrides):
    from lesion_transfer.train.trainer import TrainSettings

    return TrainSettings.from_config(schema_training_block(**overrides), seed, device, precision)


def affine_parameters(transforms_folder):
    """The 12 parameters of the one affine (.mat) among a registration's forward transforms
    (register.register_to_template's folder): the linear part, then the translation in mm."""
    import json

    import ants

    description = json.loads((transforms_folder / "transforms.json").read_text())
    affine = [name for name in description["forward"] if name.endswith(".mat")]
    assert len(affine) == 1, description
    return np.asarray(ants.read_transform(str(transforms_folder / affine[0])).parameters)


def write_volume(path, data=None, affine=None, dtype=np.int16):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        # seeded by the whole path: two subjects never share a scan (ingestion refuses that)
        data = np.random.default_rng(abs(hash(str(path))) % 2**32).integers(0, 500, SHAPE)
    image = nib.Nifti1Image(np.asarray(data).astype(dtype), np.eye(4) if affine is None else affine)
    nib.save(image, path)
    return path


def brats_label(values=(0, 1, 2, 4)):
    label = np.zeros(SHAPE, dtype=np.uint8)
    for i, value in enumerate(values):
        label[2 + i, 2:5, 2:5] = value
    return label


def write_brats2018_subject(root, subject, grade=None, labelled=True, label=None):
    folder = Path(root) / grade / subject if grade else Path(root) / subject
    for modality in MODALITIES:
        write_volume(folder / f"{subject}_{modality}.nii.gz")
    if labelled:
        write_volume(folder / f"{subject}_seg.nii.gz",
                     brats_label() if label is None else label, dtype=np.uint8)
    return folder


@pytest.fixture
def brats2018(tmp_path):
    """Training folder (2 HGG, 1 LGG) and a validation folder (2 unlabelled)."""
    training, validation = tmp_path / "Training", tmp_path / "Validation"
    for subject, grade in [("Brats18_A_1", "HGG"), ("Brats18_B_1", "HGG"),
                           ("Brats18_C_1", "LGG")]:
        write_brats2018_subject(training, subject, grade)
    for subject in ("Brats18_V_1", "Brats18_W_1"):
        write_brats2018_subject(validation, subject, labelled=False)
    return training, validation


@pytest.fixture
def brats2023(tmp_path):
    root = tmp_path / "BraTS2023"
    names = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}
    for subject in ("BraTS-GLI-00000-000", "BraTS-GLI-00002-001"):
        for modality in MODALITIES:
            write_volume(root / subject / f"{subject}-{names[modality]}.nii.gz")
        write_volume(root / subject / f"{subject}-seg.nii.gz", brats_label((0, 1, 2, 3)),
                     dtype=np.uint8)
    return root


@pytest.fixture
def manifest(tmp_path):
    """An MS-like cohort: relative paths, FLAIR on its own grid, label on the FLAIR grid."""
    root = tmp_path / "ms"
    flair_affine = np.diag([0.9, 0.9, 3.0, 1.0])
    rows = ["subject,t1,t1ce,t2,flair,label,group,site"]
    for subject, site in [("ms01", "a"), ("ms02", "b")]:
        for modality in MODALITIES:
            affine = flair_affine if modality == "flair" else None
            write_volume(root / subject / f"{modality}.nii.gz", affine=affine)
        label = np.zeros(SHAPE, dtype=np.uint8)
        label[3:5, 3:5, 3:5] = 1
        write_volume(root / subject / "lesions.nii.gz", label, affine=flair_affine,
                     dtype=np.uint8)
        paths = [f"{subject}/{m}.nii.gz" for m in MODALITIES]
        rows.append(",".join([subject, *paths, f"{subject}/lesions.nii.gz", "RRMS", site]))
    path = root / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="session")
def ci_study(tmp_path_factory):
    """One complete run of configs/ci.yaml (cohort to report), shared by the workflow tests;
    a test that changes it works on a copy (`copy_study`)."""
    workdir = tmp_path_factory.mktemp("ci_study")
    run_snakemake(workdir, configfile=REPO / "configs" / "ci.yaml")
    return workdir


def copy_study(study, destination):
    """A complete run elsewhere, Snakemake's metadata and file times included."""
    import shutil

    shutil.copytree(study, destination, symlinks=True)
    return destination


# The tiny study takes about 10 minutes on 2 CPU cores; three times that is a hang.
SNAKEMAKE_TIMEOUT_S = 1800


def run_snakemake(workdir, *args, configfile=None, check=True, env=None):
    """Run the real Snakemake on this repository's workflow in `workdir`."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--cores", "2", "--nolock"]
    if configfile is not None:
        command += ["--configfile", str(configfile)]
    # `args` last but after an option of their own: --configfile takes every word that
    # follows it, and would read a target as one more config file
    process = subprocess.Popen(command + ["--nolock", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=SNAKEMAKE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # a hang fails its test instead of stalling CI; the jobs go with Snakemake
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"snakemake ran past {SNAKEMAKE_TIMEOUT_S} s and was killed:\n"
                             f"{stdout[-4000:]}\n{stderr[-8000:]}") from None
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    # every refusal, in any test: its message alone, never inside a Python traceback
    if "refused: " in stdout + stderr:
        assert "Traceback (most recent call last)" not in stdout + stderr, stderr[-8000:]
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result


class RunsACommand:
    """What a booby-trapped pickle holds: unpickling it calls os.system (touching `marker`,
    which a refused file therefore never creates)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def local_rules():
    """The rules the Snakefile's `localrules:` block runs where Snakemake runs, not `all`."""
    import re

    block = re.search(r"^localrules:\n((?:    \w+,?\n)+)", (REPO / "Snakefile").read_text(),
                      re.MULTILINE)
    assert block, "the Snakefile has no localrules block"
    return set(re.findall(r"\w+", block[1]))


def finished_rules(text):
    """The rule of every job a Snakemake log reports finished."""
    import re

    return re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", text)
