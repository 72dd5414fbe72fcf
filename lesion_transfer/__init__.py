"""lesion-transfer: transfer learning across brain diseases, from raw MRI to result tables."""

__version__ = "0.1.0"

# The channel order used everywhere: source and target caches, models and model cards.
MODALITIES = ("t1", "t1ce", "t2", "flair")
# Target label values (BraTS 2018) in the order of the fine-tuned network's output channels.
TARGET_LABELS = (0, 1, 2, 4)
# Subject and dataset ids become folder and file names: they must never leave their folder
# (no '/', no '..', no leading dot) and must survive a shell and a wildcard.
SAFE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"
