"""Torch files read as data: tensors and plain values only, never code.

Models are what labs hand each other, and checkpoints sit in shared results folders, so a
file is read with torch's restricted loader (`weights_only=True`): tensors, dicts, lists,
tuples, strings and numbers. A file that holds anything else (a pickled object, which could
run code when unpickled) is refused before any of it runs, and the error names the file.
Files written by earlier versions of lesion-transfer hold only such values and load as they
are. Every reader of a model, checkpoint or another framework's weights goes through here.
"""

import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from lesion_transfer.errors import Refusal
from lesion_transfer.io.broken import BrokenFileError


class UnsafeModelFile(Refusal):
    """A model or checkpoint file that holds more than tensors and plain values."""


class BrokenModelFile(BrokenFileError):
    """A model or checkpoint file that cannot be read (truncated, corrupted, not torch's)."""


def read_tensor_file(path: str | Path, device: str | torch.device = "cpu",
                     also_allowed: Iterable[type] = ()) -> Any:
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
