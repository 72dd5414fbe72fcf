"""Data augmentation with MONAI's transforms, at nnU-Net v2's default probabilities and
ranges: mirroring, rotation, scaling, (optional) elastic deformation, gamma, multiplicative
brightness, Gaussian noise. Spatial transforms move image and label together (label by
nearest neighbour, so its values, 255 for unknown included, stay what they were).

Every patch is augmented from a seed of its own, so a batch is the same whichever process
made it (a loader worker or the training process) and a resumed job repeats it exactly.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

KEYS = ("image", "label")


def augmentation(settings: Mapping[str, Any]) -> Any:
    """A MONAI Compose of the augmentations a training block's `augmentation` settings ask
    for (a probability of 0 leaves a transform out); None when it asks for none."""
    if not any(value > 0 for key, value in settings.items() if key.endswith("_prob")):
        return None  # without importing MONAI: seconds in every training job
    from monai import transforms as mt
    from monai.data import set_track_meta

    set_track_meta(False)  # plain tensors: the metadata costs time and nothing reads it
    steps: list[Callable[..., Any]] = []  # MONAI's dictionary transforms
    if settings["rotation_prob"] > 0:
        angle = math.radians(settings["rotation_deg"])
        steps.append(mt.RandAffined(KEYS, prob=settings["rotation_prob"],
                                    rotate_range=[(-angle, angle)] * 3,
                                    mode=("bilinear", "nearest"), padding_mode="zeros"))
    if settings["scale_prob"] > 0:
        low, high = settings["scale_range"]
        # MONAI scales each axis by 1 + U(low - 1, high - 1); nnU-Net draws one factor
        steps.append(mt.RandAffined(KEYS, prob=settings["scale_prob"],
                                    scale_range=[(low - 1.0, high - 1.0)] * 3,
                                    mode=("bilinear", "nearest"), padding_mode="zeros"))
    if settings["elastic_prob"] > 0:
        steps.append(mt.Rand3DElasticd(KEYS, prob=settings["elastic_prob"],
                                       sigma_range=tuple(settings["elastic_sigma"]),
                                       magnitude_range=tuple(settings["elastic_magnitude"]),
                                       mode=("bilinear", "nearest"), padding_mode="zeros"))
    if settings["mirror_prob"] > 0:
        steps += [mt.RandFlipd(KEYS, prob=settings["mirror_prob"], spatial_axis=axis)
                  for axis in range(3)]
    if settings["gamma_prob"] > 0:
        steps.append(mt.RandAdjustContrastd("image", prob=settings["gamma_prob"],
                                            gamma=tuple(settings["gamma_range"]),
                                            retain_stats=True))
    if settings["brightness_prob"] > 0:
        low, high = settings["brightness_range"]
        steps.append(mt.RandScaleIntensityd("image", factors=(low - 1.0, high - 1.0),
                                            prob=settings["brightness_prob"],
                                            channel_wise=True))
    if settings["noise_prob"] > 0:
        steps.append(mt.RandGaussianNoised("image", prob=settings["noise_prob"],
                                           std=settings["noise_std"]))
    return mt.Compose(steps) if steps else None


def augment(transforms: Any, image: np.ndarray, label: np.ndarray, seed: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """image (C, x, y, z) float32, label (x, y, z): both augmented from `seed`."""
    if transforms is None:
        return image, label
    transforms.set_random_state(seed=int(seed))
    out = transforms({"image": np.ascontiguousarray(image, np.float32),
                      "label": np.ascontiguousarray(label)[None]})
    image = np.asarray(out["image"], dtype=np.float32)
    label = np.rint(np.asarray(out["label"][0], dtype=np.float32)).astype(np.asarray(label).dtype)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)
