"""Ingestion of BraTS and manifest datasets, and the errors bad inputs must raise."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SHAPE, brats_label, write_brats2018_subject, write_volume

from lesion_transfer.config import with_manifest_columns
from lesion_transfer.io.ingest import (
    IngestionError,
    ingest_dataset,
    read_subjects_table,
    write_subjects_table,
)


def brats_spec(training, validation=None, **extra):
    return {"role": "target", "format": "brats", "location": str(training),
            "unlabelled_location": str(validation) if validation else None, **extra}


def manifest_spec(path, **extra):
    """A manifest dataset's entry as the workflow hands it to ingestion: columns the entry
    does not name get the schema's defaults."""
    return with_manifest_columns({"role": "source", "format": "manifest",
                                  "location": str(path), **extra})


def test_brats2018_training_and_validation(brats2018, tmp_path):
    training, validation = brats2018
    subjects = ingest_dataset("brats", brats_spec(training, validation))
    by_id = {s.subject: s for s in subjects}
    assert set(by_id) == {"Brats18_A_1", "Brats18_B_1", "Brats18_C_1", "Brats18_V_1",
                          "Brats18_W_1"}
    assert by_id["Brats18_C_1"].group == "LGG" and by_id["Brats18_A_1"].group == "HGG"
    assert by_id["Brats18_A_1"].labelled and not by_id["Brats18_V_1"].labelled
    assert by_id["Brats18_V_1"].label is None
    table = tmp_path / "subjects.tsv"
    write_subjects_table(subjects, table)
    rows = {r["subject"]: r for r in read_subjects_table(table)}
    assert rows["Brats18_A_1"]["flair"].endswith("Brats18_A_1_flair.nii.gz")
    assert rows["Brats18_A_1"]["labelled"] is True and rows["Brats18_V_1"]["label"] == ""
    assert rows["Brats18_A_1"]["label_scheme"] == "brats"


def test_the_table_names_scans_inside_the_study_relative_to_it(brats2018, tmp_path,
                                                                 monkeypatch):
    """Scans under the working directory (the phantom cohort, in results/) are named relative
    to it, so a copied study folder reads its own; others by their absolute path."""
    training, validation = brats2018
    study = tmp_path / "study"
    inside = shutil.copytree(training, study / "results" / "data")
    monkeypatch.chdir(study)
    table = study / "subjects.tsv"
    write_subjects_table(ingest_dataset("brats", brats_spec(inside, validation)), table)
    rows = {r["subject"]: r for r in read_subjects_table(table)}
    assert rows["Brats18_A_1"]["flair"] == str(
        Path("results", "data", "HGG", "Brats18_A_1", "Brats18_A_1_flair.nii.gz"))
    assert rows["Brats18_A_1"]["label"].startswith("results/data/")
    outside = Path(rows["Brats18_V_1"]["flair"])  # the validation set stayed where it was
    assert outside.is_absolute() and outside.is_relative_to(validation.resolve())


def test_brats2023_naming_and_label_3(brats2023):
    subjects = ingest_dataset("gli", brats_spec(brats2023))
    assert [s.subject for s in subjects] == ["BraTS-GLI-00000-000", "BraTS-GLI-00002-001"]
    assert all(s.label_scheme == "brats2023" for s in subjects)
    assert subjects[0].images["t1ce"].name == "BraTS-GLI-00000-000-t1c.nii.gz"
    assert subjects[0].images["flair"].name == "BraTS-GLI-00000-000-t2f.nii.gz"


def test_brats2021_layout_with_grade_mapping(tmp_path):
    root = tmp_path / "RSNA_ASNR_MICCAI_BraTS2021_TrainingData"
    for subject in ("BraTS2021_00000", "BraTS2021_00002"):
        write_brats2018_subject(root, subject)
    mapping = tmp_path / "grades.csv"
    mapping.write_text("BraTS_ID,Grade\nBraTS2021_00000,HGG\nBraTS2021_00002,LGG\n")
    spec = brats_spec(root, grade_mapping={"path": str(mapping), "subject_column": "BraTS_ID",
                                           "grade_column": "Grade"})
    subjects = ingest_dataset("b21", spec)
    assert {s.subject: s.group for s in subjects} == {"BraTS2021_00000": "HGG",
                                                      "BraTS2021_00002": "LGG"}


def test_manifest_relative_paths_and_label_on_flair_grid(manifest):
    subjects = ingest_dataset("ms", manifest_spec(manifest))
    assert [(s.subject, s.site, s.group) for s in subjects] == [("ms01", "a", "RRMS"),
                                                                ("ms02", "b", "RRMS")]
    assert subjects[0].images["t2"] == manifest.parent / "ms01" / "t2.nii.gz"
    assert subjects[0].label_scheme == "binary" and subjects[0].labelled


def test_manifest_with_own_column_names(manifest):
    text = manifest.read_text().replace("subject,t1,", "ID,T1w,", 1)
    manifest.write_text(text)
    spec = manifest_spec(manifest, columns={"subject": "ID", "t1": "T1w"})
    assert [s.subject for s in ingest_dataset("ms", spec)] == ["ms01", "ms02"]


# --- bad inputs: each message names the subject and the file, expected and found ----------


def problems_of(name, spec):
    with pytest.raises(IngestionError) as caught:
        ingest_dataset(name, spec)
    return caught.value.problems


def test_missing_modality(brats2018):
    training, _ = brats2018
    (training / "HGG" / "Brats18_A_1" / "Brats18_A_1_t2.nii.gz").unlink()
    [problem] = problems_of("brats", brats_spec(training))
    assert "subject Brats18_A_1" in problem and "Brats18_A_1_t2.nii.gz" in problem
    assert "expected the t2 image" in problem and "found no such file" in problem


def test_missing_modality_in_manifest(manifest):
    manifest.write_text(manifest.read_text().replace("ms02/t1ce.nii.gz", ""))
    [problem] = problems_of("ms", manifest_spec(manifest))
    assert "subject ms02" in problem and str(manifest) in problem and "'t1ce'" in problem


def test_unreadable_file(brats2018):
    training, _ = brats2018
    path = training / "HGG" / "Brats18_B_1" / "Brats18_B_1_flair.nii.gz"
    path.write_bytes(b"this is not a NIfTI file")
    [problem] = problems_of("brats", brats_spec(training))
    assert "subject Brats18_B_1" in problem and str(path) in problem
    assert "expected a readable NIfTI image" in problem


def test_4d_image(brats2018):
    training, _ = brats2018
    path = training / "LGG" / "Brats18_C_1" / "Brats18_C_1_t1.nii.gz"
    write_volume(path, np.zeros((*SHAPE, 2)))
    [problem] = problems_of("brats", brats_spec(training))
    assert "subject Brats18_C_1" in problem and str(path) in problem
    assert "expected a 3D image, found 4D" in problem


def test_nan_voxels(manifest):
    path = manifest.parent / "ms01" / "t2.nii.gz"
    data = np.ones(SHAPE, dtype=np.float32)
    data[1, 1, 1] = np.nan
    data[2, 2, 2] = np.inf
    write_volume(path, data, dtype=np.float32)
    [problem] = problems_of("ms", manifest_spec(manifest))
    assert "subject ms01" in problem and str(path) in problem
    assert "expected finite voxel values, found 2 NaN or infinite" in problem


def test_label_value_3_in_brats2018(brats2018):
    training, _ = brats2018
    path = training / "HGG" / "Brats18_A_1" / "Brats18_A_1_seg.nii.gz"
    write_volume(path, brats_label((0, 1, 3)), dtype=np.uint8)
    [problem] = problems_of("brats", brats_spec(training))
    assert "subject Brats18_A_1" in problem and str(path) in problem
    assert "expected label values in [0, 1, 2, 4]" in problem and "found 3 (9 voxels)" in problem


def test_label_grid_differs_from_image_grid(brats2018):
    training, _ = brats2018
    path = training / "HGG" / "Brats18_B_1" / "Brats18_B_1_seg.nii.gz"
    write_volume(path, brats_label(), affine=np.diag([1.0, 1.0, 2.0, 1.0]), dtype=np.uint8)
    [problem] = problems_of("brats", brats_spec(training))
    assert "subject Brats18_B_1" in problem and str(path) in problem
    assert "expected the grid of" in problem and "spacing (1.0, 1.0, 2.0)" in problem


def test_manifest_label_on_no_image_grid(manifest):
    path = manifest.parent / "ms02" / "lesions.nii.gz"
    write_volume(path, np.ones((5, 5, 5)), dtype=np.uint8)
    [problem] = problems_of("ms", manifest_spec(manifest))
    assert "subject ms02" in problem and str(path) in problem
    assert "expected the grid of one of its images" in problem and "shape (5, 5, 5)" in problem


def test_duplicate_subject_id(brats2018):
    training, _ = brats2018
    shutil.copytree(training / "HGG" / "Brats18_A_1", training / "LGG" / "Brats18_A_1")
    [problem] = problems_of("brats", brats_spec(training))
    assert "subject Brats18_A_1" in problem and "found it 2 times" in problem
    assert str(training / "HGG" / "Brats18_A_1") in problem
    assert str(training / "LGG" / "Brats18_A_1") in problem


def test_duplicate_subject_id_in_manifest(manifest):
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([*lines, lines[1]]) + "\n")
    [problem] = problems_of("ms", manifest_spec(manifest))
    assert "subject ms01" in problem and f"{manifest}:2" in problem and f"{manifest}:4" in problem


def test_all_problems_are_reported_together(brats2018):
    training, _ = brats2018
    (training / "HGG" / "Brats18_A_1" / "Brats18_A_1_t1ce.nii.gz").unlink()
    write_volume(training / "LGG" / "Brats18_C_1" / "Brats18_C_1_seg.nii.gz",
                 brats_label((0, 5)), dtype=np.uint8)
    problems = problems_of("brats", brats_spec(training))
    assert len(problems) == 2
    assert any("Brats18_A_1" in p for p in problems) and any("Brats18_C_1" in p for p in problems)


@pytest.mark.parametrize("bad_id", ["../evil id", ".hidden", "a/b", "name with space", "-x"])
def test_an_id_that_could_leave_its_folder_is_refused_naming_the_manifest_line(manifest, bad_id):
    lines = manifest.read_text().splitlines()
    lines[2] = lines[2].replace("ms02,", f"{bad_id},", 1)
    manifest.write_text("\n".join(lines) + "\n")
    [problem] = problems_of("ms", manifest_spec(manifest))
    assert repr(bad_id) in problem and f"{manifest}:3" in problem
    assert "letters, digits" in problem


def test_an_id_from_a_brats_folder_is_checked_too(brats2018):
    training, _ = brats2018
    folder = training / "HGG" / "Brats18_A_1"
    renamed = training / "HGG" / "Brats 18"
    folder.rename(renamed)
    for path in renamed.iterdir():
        path.rename(renamed / path.name.replace("Brats18_A_1", "Brats 18"))
    [problem] = problems_of("brats", brats_spec(training))
    assert "'Brats 18'" in problem and str(renamed) in problem


def test_an_empty_label_is_refused_unless_the_target_allows_it(brats2018, manifest):
    empty = np.zeros(SHAPE, dtype=np.uint8)
    lesions = manifest.parent / "ms02" / "lesions.nii.gz"
    write_volume(lesions, empty, affine=np.diag([0.9, 0.9, 3.0, 1.0]), dtype=np.uint8)
    [problem] = problems_of("ms", manifest_spec(manifest))
    assert "subject ms02" in problem and str(lesions) in problem and "empty label" in problem
    # a source never: pretraining on a subject without lesions teaches nothing of lesions
    assert problems_of("ms", manifest_spec(manifest, allow_empty_labels=True))
    training, _ = brats2018
    seg = training / "LGG" / "Brats18_C_1" / "Brats18_C_1_seg.nii.gz"
    write_volume(seg, empty, dtype=np.uint8)
    [problem] = problems_of("brats", brats_spec(training))
    assert "subject Brats18_C_1" in problem and "allow_empty_labels" in problem
    subjects = ingest_dataset("brats", brats_spec(training, allow_empty_labels=True))
    assert "Brats18_C_1" in [s.subject for s in subjects]


@pytest.mark.parametrize("how", ["one file", "the same bytes"])
def test_one_scan_in_two_subjects_is_refused_naming_both(manifest, how):
    """A copied scan (or a manifest line pointing at another subject's file) would put one
    person in training and test at once."""
    lines = manifest.read_text().splitlines()
    if how == "one file":
        lines[2] = lines[2].replace("ms02/t2.nii.gz", "ms01/t2.nii.gz")
    else:
        root = manifest.parent
        (root / "ms02" / "t2.nii.gz").write_bytes((root / "ms01" / "t2.nii.gz").read_bytes())
    manifest.write_text("\n".join(lines) + "\n")
    [problem] = problems_of("ms", manifest_spec(manifest))
    assert problem.startswith("subjects ms01, ms02: files ") and "ms01/t2.nii.gz" in problem
    assert problem.endswith(f"expected each subject's scans to be its own, found {how} in 2 "
                            f"places")


def subjects_table(path, scans):
    """A subjects table whose subjects hold the given scans: {subject: {modality: file}}."""
    from lesion_transfer.io.atomic import write_tsv
    from lesion_transfer.io.ingest import TABLE_COLUMNS

    rows = [{"subject": subject, **files, "labelled": "true", "label_scheme": "brats"}
            for subject, files in scans.items()]
    write_tsv(rows, path, TABLE_COLUMNS)
    return path


@pytest.mark.parametrize("how", ["one file", "the same bytes"])
def test_a_scan_in_two_datasets_is_refused_naming_both(tmp_path, how):
    from lesion_transfer.io.ingest import SharedAcrossDatasets, check_datasets_disjoint

    scans = {}
    for name in ("t1", "t1ce", "t2", "flair", "copy"):
        scans[name] = tmp_path / f"{name}.nii.gz"
        scans[name].write_bytes(name.encode() * 100)
    scans["copy"].write_bytes(scans["flair"].read_bytes())
    shared = scans["flair"] if how == "one file" else scans["copy"]
    tables = {
        "target": subjects_table(tmp_path / "target.tsv", {
            "T1": {"t1": scans["t1"], "flair": scans["flair"]},
            "T2": {"t1": scans["t1ce"]}}),
        "control": subjects_table(tmp_path / "control.tsv", {"C1": {"flair": shared}}),
        "source": subjects_table(tmp_path / "source.tsv", {"S1": {"t2": scans["t2"]}}),
    }
    with pytest.raises(SharedAcrossDatasets) as refused:
        check_datasets_disjoint(tables)
    [problem] = refused.value.problems
    assert problem == (f"datasets target, control: files {scans['flair']} (target subject T1), "
                       f"{shared} (control subject C1): expected each dataset's scans to be its "
                       f"own, found {how} in 2 places")
    assert str(refused.value).startswith("datasets of this study: 1 scan(s) in two datasets")


def test_datasets_without_a_shared_scan_pass_and_say_how_many_scans_were_checked(tmp_path):
    from lesion_transfer.io.ingest import check_datasets_disjoint

    files = []
    for index in range(4):
        files.append(tmp_path / f"{index}.nii.gz")
        files[-1].write_bytes(bytes([index]) * 64)
    tables = {
        # one dataset's two subjects sharing a scan is ingestion's to refuse, not this check's
        "target": subjects_table(tmp_path / "a.tsv", {"A": {"t1": files[0], "t2": files[1]},
                                                      "B": {"t1": files[0]}}),
        "source": subjects_table(tmp_path / "b.tsv", {"S": {"flair": files[2],
                                                            "t1": files[3]}}),
    }
    assert check_datasets_disjoint(tables) == {"target": 3, "source": 2}
