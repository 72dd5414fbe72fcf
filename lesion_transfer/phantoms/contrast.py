"""MR contrast for the phantoms: tissue intensities, scanner sites, bias field and noise."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lesion_transfer import MODALITIES

# Relative signal of each tissue per sequence (white matter on T1 near 0.9). Lesions and
# tumour compartments follow radiology: MS lesions and edema bright on T2/FLAIR and dark on
# T1; an enhancing rim bright on T1c; necrosis dark on T1/T1c and bright on T2; the skull
# dark everywhere; scalp fat bright on T1.
TISSUE_INTENSITY = {
    "t1": dict(csf=0.25, gm=0.62, wm=0.90, lesion=0.45, enhancing_lesion=0.55, necrosis=0.25,
               enhancing=0.62, core=0.45, edema=0.52, skull=0.06, scalp=0.95),
    "t1ce": dict(csf=0.25, gm=0.64, wm=0.90, lesion=0.48, enhancing_lesion=1.25, necrosis=0.28,
                 enhancing=1.35, core=0.50, edema=0.55, skull=0.06, scalp=0.95),
    "t2": dict(csf=1.00, gm=0.62, wm=0.42, lesion=0.88, enhancing_lesion=0.85, necrosis=0.95,
               enhancing=0.70, core=0.85, edema=0.88, skull=0.05, scalp=0.55),
    "flair": dict(csf=0.12, gm=0.60, wm=0.45, lesion=0.98, enhancing_lesion=0.95, necrosis=0.55,
                  enhancing=0.85, core=0.90, edema=1.00, skull=0.05, scalp=0.70),
}


@dataclass(frozen=True)
class Site:
    """A scanner: per-modality scale and a monotone non-linearity (signal ** gamma)."""

    name: str
    scale: dict[str, float]
    gamma: dict[str, float]

    def apply(self, modality: str, signal: np.ndarray) -> np.ndarray:
        return self.scale[modality] * np.power(np.clip(signal, 0.0, None), self.gamma[modality])


def make_site(rng: np.random.Generator, name: str, gamma_range: tuple[float, float]) -> Site:
    return Site(
        name=name,
        scale={m: float(rng.uniform(300.0, 1500.0)) for m in MODALITIES},
        gamma={m: float(rng.uniform(*gamma_range)) for m in MODALITIES},
    )


def tissue_signal(modality: str, fractions: Mapping[str, np.ndarray],
                  jitter: Mapping[str, float]) -> np.ndarray:
    """Partial-volume mix: sum over tissues of fraction x intensity (x a per-subject jitter)."""
    table = TISSUE_INTENSITY[modality]
    signal = np.zeros_like(next(iter(fractions.values())))
    for tissue, fraction in fractions.items():
        signal += fraction * (table[tissue] * jitter.get(tissue, 1.0))
    return signal


def blend(signal: np.ndarray, weight: np.ndarray, value: float | np.ndarray) -> np.ndarray:
    """Replace `signal` by `value` where `weight` is 1, partially where it is between."""
    return (1.0 - weight) * signal + weight * value


def polynomial_bias_field(shape: Sequence[int], rng: np.random.Generator, strength: float
                          ) -> np.ndarray:
    """A smooth multiplicative field exp(cubic polynomial); std of its log equals `strength`."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    log_field = np.zeros(shape, dtype=np.float32)
    for i in range(4):
        for j in range(4 - i):
            for k in range(4 - i - j):
                if i + j + k:
                    log_field += rng.standard_normal() * x**i * y**j * z**k
    log_field -= log_field.mean()
    log_field *= strength / max(float(log_field.std()), 1e-6)
    return np.exp(log_field)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of a complex signal with Gaussian noise in both channels."""
    real = signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    imaginary = sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.sqrt(real**2 + imaginary**2)
