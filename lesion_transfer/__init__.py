"""lesion-transfer: transfer learning across brain diseases, from raw MRI to result tables."""

__version__ = "0.1.0"

# The channel order used everywhere: source and target caches, models and model cards.
MODALITIES = ("t1", "t1ce", "t2", "flair")
# Target label values (BraTS 2018) in the order of the fine-tuned network's output channels.
TARGET_LABELS = (0, 1, 2, 4)
