"""Model and checkpoint files hold data, never code: a malicious file runs nothing."""

import logging
import os
import re
from pathlib import Path

import pytest
import torch
from conftest import train_settings

from lesion_transfer.model import UNet3D, UNetConfig
from lesion_transfer.model.files import (
    BrokenModelFile,
    UnsafeModelFile,
    load_model,
    save_model,
)
from lesion_transfer.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TINY = {"width": 4, "depth": 3, "norm": "instance"}


class RunsACommand:
    """What a booby-trapped pickle holds: unpickling it calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def tiny_model():
    torch.manual_seed(0)
    return UNet3D(UNetConfig(out_channels=1, **TINY))


def malicious_file(path, marker):
    model = tiny_model()
    torch.save({"unet": model.config.to_dict(), "state_dict": model.state_dict(),
                "note": RunsACommand(marker)}, path)
    return path


def test_a_saved_model_loads_with_its_weights(tmp_path):
    model = tiny_model()
    save_model(model, model.state_dict(), tmp_path / "model.pt", {"classes": [0, 1]})
    loaded, saved = load_model(tmp_path / "model.pt")
    assert saved["classes"] == [0, 1]
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_a_malicious_model_file_runs_nothing_and_is_named(tmp_path):
    marker = tmp_path / "it-ran"
    path = malicious_file(tmp_path / "model.pt", marker)
    with pytest.raises(UnsafeModelFile) as caught:
        load_model(path)
    assert str(path) in str(caught.value) and "nothing in it was run" in str(caught.value)
    assert not marker.exists()


def test_a_malicious_checkpoint_runs_nothing(tmp_path):
    """A shared results folder: someone else's last.pt is not trusted either."""
    marker = tmp_path / "it-ran"
    checkpoint = tmp_path / "checkpoints" / "last.pt"
    checkpoint.parent.mkdir()
    malicious_file(checkpoint, marker)
    settings = train_settings(epochs=1, iterations_per_epoch=1, batch_size=1,
                              patch_size=(16, 16, 16))
    trainer = Trainer.__new__(Trainer)  # only what _resume reads
    trainer.checkpoint, trainer.device, trainer.log = checkpoint, torch.device("cpu"), \
        logging.getLogger("test")
    trainer.settings = settings
    with pytest.raises(UnsafeModelFile) as caught:
        trainer._resume()
    assert str(checkpoint) in str(caught.value)
    assert not marker.exists()


def test_a_truncated_model_file_names_the_file(tmp_path):
    model = tiny_model()
    path = tmp_path / "model.pt"
    save_model(model, model.state_dict(), path, {})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BrokenModelFile) as caught:
        load_model(path)
    assert str(path) in str(caught.value) and "truncated or corrupted" in str(caught.value)


def test_a_file_that_is_not_a_model_is_named(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(BrokenModelFile, match=re.escape(str(path))):
        load_model(path)


def test_nothing_unpickles_files_a_user_can_hand_in():
    """No torch.load without weights_only=True, no pickle, no np.load(allow_pickle=True) in the
    library or the workflow's scripts."""
    unsafe = re.compile(r"weights_only\s*=\s*False|pickle\.loads?\(|allow_pickle\s*=\s*True|"
                        r"torch\.load\((?![^)]*weights_only\s*=\s*True)")
    offenders = []
    for folder in ("lesion_transfer", "workflow_scripts", "rules"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".smk"):
                text = path.read_text()
                offenders += [f"{path.relative_to(REPO)}: {m.group(0)}"
                              for m in unsafe.finditer(text)]
    assert not offenders, offenders
