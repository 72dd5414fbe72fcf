"""lesion-transfer: transfer learning across brain diseases, from raw MRI to result tables."""

from lesion_transfer.labels import MODALITIES, SAFE_ID_PATTERN, TARGET_LABELS

__version__ = "0.1.0"
__all__ = ["MODALITIES", "SAFE_ID_PATTERN", "TARGET_LABELS"]
