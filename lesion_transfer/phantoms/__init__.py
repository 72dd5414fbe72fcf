"""Phantom cohorts built from the MNI152 template that nilearn ships.

A source (MS-like) cohort in the manifest layout and a target (glioma-like) cohort in the
BraTS 2018 layout, with the truth beside them (brain mask, transform, bias field), so that
every preprocessing step can be tested against known answers and the whole study runs with
no data at all.
"""

from lesion_transfer.phantoms.cohort import (
    PhantomSettings,
    synthesize_cohort,
    synthesize_glioma_subject,
    synthesize_ms_subject,
)

__all__ = [
    "PhantomSettings",
    "synthesize_cohort",
    "synthesize_glioma_subject",
    "synthesize_ms_subject",
]
