"""Names and values every layer shares: channels, label values, tumour regions, ids; and
Dice, the overlap of two masks, which preprocessing QC, training and evaluation all measure."""

import numpy as np

# The channel order used everywhere: source and target caches, models and model cards.
MODALITIES = ("t1", "t1ce", "t2", "flair")
# Target label values (BraTS 2018) in the order of the fine-tuned network's output channels.
TARGET_LABELS = (0, 1, 2, 4)
# The BraTS regions scored everywhere: whole tumour, tumour core, enhancing tumour.
REGIONS = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}
# The label of a voxel (or a whole subject) without a label: ignored by the loss.
UNKNOWN_LABEL = 255
# Subject and dataset ids become folder and file names: they must never leave their folder
# (no '/', no '..', no leading dot) and must survive a shell and a wildcard.
SAFE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"


def dice(a, b):
    """Dice overlap of two masks; 1 when both are empty (nothing to find, nothing found)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * (a & b).sum() / total)
