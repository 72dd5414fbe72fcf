"""Redraw docs/phantom_montage.png from a finished default run (results/subjects/*.tsv)."""

from lesion_transfer import MODALITIES
from lesion_transfer.io.ingest import read_subjects_table
from lesion_transfer.io.nifti import load_nifti
from lesion_transfer.report.montage import plot_montage


def first(table, **where):
    return next(r for r in read_subjects_table(table) if all(r[k] == v for k, v in where.items()))


rows = []
for row in (first("results/subjects/ms_phantom.tsv", subject="MS001"),
            first("results/subjects/ms_phantom.tsv", subject="MS002"),
            first("results/subjects/brats_phantom.tsv", group="HGG"),
            first("results/subjects/brats_phantom.tsv", group="LGG")):
    images = {m: load_nifti(row[m]) for m in MODALITIES}
    rows.append((row["subject"], images, load_nifti(row["label"], dtype="uint8")))
plot_montage(rows, "docs/phantom_montage.png",
             title="phantoms: MS-like source (rows 1-2), glioma-like target HGG / LGG (rows 3-4)")
