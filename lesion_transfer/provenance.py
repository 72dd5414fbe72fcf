"""What makes two caches comparable: the preprocessing settings that define the space and the
intensity scale a model sees. A model card stores their hash; fine-tuning checks it."""

import hashlib
import json

SHARED_SETTINGS = ("spacing_mm", "crop_shape", "bias_correction", "registration", "template",
                   "template_mask")


def shared_settings(settings):
    return {key: settings.get(key) for key in SHARED_SETTINGS}


def preprocessing_hash(settings):
    text = json.dumps(shared_settings(settings), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
