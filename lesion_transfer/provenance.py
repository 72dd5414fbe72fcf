"""What makes two caches comparable: the preprocessing settings that define the space and the
intensity scale a model sees. A model card stores their hash; fine-tuning checks it."""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

SHARED_SETTINGS = ("spacing_mm", "crop_shape", "bias_correction", "registration", "template",
                   "template_mask", "intensity")

# The intensity scales a cache can have (preprocess.intensity), described for messages.
INTENSITY_SCALES = {
    "unit": "z-score in the brain remapped to [0, 1]",
    "zscore": "z-score in the brain, 0 outside (nnU-Net's ZScoreNormalization)",
}
# The paper's scale, the only one before preprocess.intensity existed: a record that holds it
# leaves the key out, so that the caches and models of those studies keep their hash.
PAPER_SCALE = "unit"


def shared_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    shared = {key: settings.get(key) for key in SHARED_SETTINGS}
    if shared["intensity"] in (None, PAPER_SCALE):
        del shared["intensity"]
    return shared


def preprocessing_hash(settings: Mapping[str, Any]) -> str:
    text = json.dumps(shared_settings(settings), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
