"""Model and checkpoint files hold data, never code: a malicious file runs nothing."""

import logging
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import RunsACommand, train_settings

from lesion_transfer.evaluate.storage import load_labels
from lesion_transfer.io.atomic import DiskFull, write_text
from lesion_transfer.io.broken import BrokenFileError
from lesion_transfer.model.files import load_model, save_model
from lesion_transfer.model.tensor_files import BrokenModelFile, UnsafeModelFile
from lesion_transfer.model.unet import UNet3D, UNetConfig
from lesion_transfer.train.cards import read_card
from lesion_transfer.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TINY = {"width": 4, "depth": 3, "norm": "instance"}


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


@pytest.mark.parametrize("edit, found", [
    # a network of about 10^15 values: built, it could not be allocated; it is never built
    (lambda unet: unet.update(width=10**6),
     "found others: encoder.levels.0.0.weight is [4, 4, 3, 3, 3] in the file, "
     "[1000000, 4, 3, 3, 3] in the settings"),
    (lambda unet: unet.update(depth=4), "found others: "),
    (lambda unet: unet.update(widht=4), "expected UNet settings lesion-transfer can build, "
                                        "found 'unet' "),
    (lambda unet: unet.update(width=-3), "expected UNet settings lesion-transfer can build"),
])
def test_settings_that_do_not_describe_the_files_tensors_are_refused_before_allocating(
        tmp_path, edit, found):
    model = tiny_model()
    path = tmp_path / "model.pt"
    unet = model.config.to_dict()
    edit(unet)
    torch.save({"unet": unet, "state_dict": model.state_dict()}, path)
    with pytest.raises(BrokenModelFile) as caught:
        load_model(path)
    assert str(caught.value).startswith(f"{path}: expected ") and found in str(caught.value)


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


@pytest.mark.parametrize("content, found", [
    ("{not json", "JSONDecodeError"),
    ("[1, 2]", "found a JSON list"),
])
def test_a_model_card_that_is_not_one_is_named(tmp_path, content, found):
    card = tmp_path / "model_card.json"
    card.write_text(content)
    with pytest.raises(BrokenFileError, match=rf"{re.escape(str(card))}: expected a model card.*"
                                              rf"{found}"):
        read_card(card)


def test_stored_labels_that_hold_python_objects_are_named_and_not_unpickled(tmp_path):
    path = tmp_path / "labels.npz"
    np.savez(path, S1=np.array([{"a": 1}], dtype=object))
    with pytest.raises(BrokenFileError, match=rf"{re.escape(str(path))}: expected label maps as "
                                              rf"integer arrays, found .*allow_pickle"):
        load_labels(path)


@pytest.fixture
def full_disk(tmp_path):
    """A real 1 MiB file system (tmpfs), mounted for the test: needs root, as in CI."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_says_so_naming_the_file_and_keeps_nothing(full_disk):
    """torch words a full disk "unexpected pos", Python "No space left on device": both are
    refused as a full disk, and no half-written file is left."""
    model = UNet3D(UNetConfig(in_channels=4, out_channels=4, width=8, depth=4, norm="instance"))
    with pytest.raises(DiskFull, match=rf"{re.escape(str(full_disk))}/model.pt: expected to "
                                       rf"write it, found no space left on the disk"):
        save_model(model, model.state_dict(), full_disk / "model.pt", {"classes": [0, 1, 2, 4]})
    with pytest.raises(DiskFull, match=r"table.tsv: expected to write it, found no space left"):
        write_text(full_disk / "table.tsv", "x" * (2 << 20))
    assert list(full_disk.iterdir()) == []
