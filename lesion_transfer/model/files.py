"""Model and checkpoint files: tensors and plain values only, never code.

Models are what labs hand each other, and checkpoints sit in shared results folders, so a
file is read with torch's restricted loader (`weights_only=True`): tensors, dicts, lists,
tuples, strings and numbers. A file that holds anything else (a pickled object, which could
run code when unpickled) is refused before any of it runs, and the error names the file.
Files written by earlier versions of lesion-transfer hold only such values and load as they
are.
"""

import math
import pickle
import zipfile

import torch

from lesion_transfer.errors import Refusal
from lesion_transfer.io.atomic import atomic_path
from lesion_transfer.io.broken import BrokenFileError
from lesion_transfer.model.unet import UNet3D, UNetConfig


class UnsafeModelFile(Refusal):
    """A model or checkpoint file that holds more than tensors and plain values."""


class BrokenModelFile(BrokenFileError):
    """A model or checkpoint file that cannot be read (truncated, corrupted, not torch's)."""


def read_tensor_file(path, device="cpu", also_allowed=()):
    """The contents of a torch file holding only tensors and plain values. `also_allowed`:
    classes that rebuild values and run nothing (numpy's scalars, which nnU-Net's
    checkpoints log), allowed for this read only."""
    try:
        with torch.serialization.safe_globals(list(also_allowed)):
            return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeModelFile(
            f"{path}: refused, nothing in it was run: the file holds Python objects other "
            f"than tensors and plain values ({str(error).splitlines()[0]}). lesion-transfer "
            f"models and checkpoints never do; if you trust where it came from, load it in "
            f"your own Python session and save only its tensors and settings again "
            f"({{'unet': ..., 'state_dict': ...}})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise BrokenModelFile(path, f"expected a torch file, found one that cannot be read "
                                    f"(truncated or corrupted?): {str(error).splitlines()[0]}"
                              ) from None


def save_model(model, state, path, extra):
    """The model's settings, its weights (`state`) and plain `extra` values, atomically."""
    with atomic_path(path) as tmp:
        torch.save({"unet": model.config.to_dict(), "state_dict": state, **extra}, tmp)


def load_model(path, device="cpu"):
    """(UNet3D with the file's weights, the file's contents)."""
    saved = read_tensor_file(path, device)
    if not isinstance(saved, dict) or not {"unet", "state_dict"} <= set(saved):
        raise BrokenModelFile(path, f"expected a lesion-transfer model (keys 'unet' and "
                                    f"'state_dict'), found {type(saved).__name__}"
                                    f"{sorted(saved)[:6] if isinstance(saved, dict) else ''}")
    model = UNet3D(_settings_that_match_the_tensors(path, saved))
    model.load_state_dict(saved["state_dict"])
    return model, saved


def _settings_that_match_the_tensors(path, saved):
    """The file's UNet settings, once the network they describe has been laid out without
    memory (torch's meta device) and found to hold exactly the file's tensors: settings that
    do not match (a hand-edited width, another architecture) are refused before anything is
    allocated, however large the network they describe."""
    try:
        config = UNetConfig(**saved["unet"])
        with torch.device("meta"):
            expected = {key: tuple(value.shape)
                        for key, value in UNet3D(config).state_dict().items()}
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as error:
        raise BrokenModelFile(path, f"expected UNet settings lesion-transfer can build, found "
                                    f"'unet' {saved['unet']!r} ({error})") from None
    tensors = saved["state_dict"]
    held = {key: tuple(value.shape) for key, value in tensors.items()
            if isinstance(value, torch.Tensor)} if isinstance(tensors, dict) else {}
    if held != expected:
        key = sorted(set(expected) ^ set(held)) or [k for k in expected if expected[k] != held[k]]
        values = sum(math.prod(shape) for shape in expected.values())
        raise BrokenModelFile(path, f"expected the tensors its settings 'unet' {saved['unet']!r} "
                                    f"describe ({values:,} values), found others: {key[0]} is "
                                    f"{list(held.get(key[0], ())) or 'missing'} in the file, "
                                    f"{list(expected.get(key[0], ())) or 'absent'} in the "
                                    f"settings")
    return config
