"""The UNet, the strategies, the trainer (freezing, learning, resuming) and the metrics."""

import json
import logging
import math
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import phantom_settings, schema_training_block, train_settings

from lesion_transfer.io.cache import load_cached, write_cache
from lesion_transfer.labels import UNKNOWN_LABEL, dice, region_dice
from lesion_transfer.model.files import load_model
from lesion_transfer.model.inference import predict_volume
from lesion_transfer.model.strategies import STRATEGIES, set_train_mode
from lesion_transfer.model.unet import UNet3D, UNetConfig
from lesion_transfer.phantoms import synthesize_glioma_subject
from lesion_transfer.preprocess.normalise import zscore_to_unit
from lesion_transfer.provenance import preprocessing_hash
from lesion_transfer.train import metrics
from lesion_transfer.train.augment import augment, augmentation
from lesion_transfer.train.cards import IncompatibleModelError, check_compatible
from lesion_transfer.train.data import PatchSampler, TrainingBatches, batches
from lesion_transfer.train.stages import (
    LossWeights,
    TrainingData,
    TrainingOutputs,
    TrainingSetup,
    finetune_stage,
)
from lesion_transfer.train.tasks import TumourTask
from lesion_transfer.train.trainer import Fit, Records, Trainer, TrainingDiverged

LOG = logging.getLogger("test")
SETTINGS = {"spacing_mm": 4.0, "crop_shape": [40, 48, 32], "bias_correction": "n4",
            "registration": "affine", "template": None, "template_mask": None}
TINY = {"width": 4, "depth": 3, "norm": "instance"}


def phantom_cache(subject, index, grade):
    """A glioma phantom as the cache holds it: channels in [0, 1], BraTS labels."""
    settings = phantom_settings(kind="glioma", subjects=2, seed=4, spacing_mm=4.0)
    phantom = synthesize_glioma_subject(settings, subject, index, grade)
    brain = phantom.brain_mask > 0
    channels = [zscore_to_unit(phantom.images[m].astype(np.float32), brain)
                for m in ("t1", "t1ce", "t2", "flair")]
    crop = tuple(slice(10, 10 + n) for n in SETTINGS["crop_shape"])
    return [c[crop] for c in channels], phantom.label[crop]


@pytest.fixture(scope="module")
def cache_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    folders = []
    for index, (subject, grade) in enumerate([("B1", "HGG"), ("B2", "LGG")]):
        channels, label = phantom_cache(subject, index, grade)
        meta = {"channels": ["t1", "t1ce", "t2", "flair"], "preprocessing": SETTINGS,
                "labelled": True}
        write_cache(root / subject, channels, label, meta)
        folders.append(root / subject)
    return folders


@pytest.fixture(scope="module")
def subjects(cache_folders):
    return [load_cached(f) for f in cache_folders]


def source_model():
    torch.manual_seed(0)
    return UNet3D(UNetConfig(out_channels=1, **TINY))


def tumour_task(subjects):
    """The target's task with the paper's loss, classes weighted up to 50."""
    return TumourTask(subjects, None, 50.0, "weighted_ce")


def trainer_for(model, strategy, subjects, tmp_path, **overrides):
    settings = train_settings(**{"epochs": 1, "iterations_per_epoch": 1, "batch_size": 1,
                                 "patch_size": (16, 16, 16), "seed": 1, **overrides})
    return Trainer(Fit(model, tumour_task(subjects), STRATEGIES[strategy], subjects,
                       subjects[:1]), settings, Records(tmp_path / "checkpoints", LOG))


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_a_step_changes_exactly_the_trainable_tensors(strategy, subjects, tmp_path):
    model = source_model().replace_head(4)
    for epoch, epochs in [(0, 10), (9, 10)]:  # lp_ft switches half way
        trainable = STRATEGIES[strategy].trainable_at(epoch, epochs)
        trainer = trainer_for(model, strategy, subjects, tmp_path)
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        optimizer = trainer.make_optimizer(trainable)
        set_train_mode(model, trainable)
        trainer.train_step(optimizer, *trainer.batches[0])
        for name, value in model.named_parameters():
            part = name.split(".")[0]
            if part in trainable:
                assert not torch.equal(value, before[name]), f"{strategy}: {name} did not train"
            else:
                assert torch.equal(value, before[name]), f"{strategy}: frozen {name} changed"


class HeadInsideDecoder(torch.nn.Module):
    """A network laid out like nnU-Net's: the last decoder block and the classifier (the
    head) live inside the decoder module, beside its other layers; batch norm everywhere, so
    that running statistics show which layers were in train mode."""

    def __init__(self):
        super().__init__()

        def block(channels_in, channels_out):
            return torch.nn.Sequential(torch.nn.Conv3d(channels_in, channels_out, 3, padding=1),
                                       torch.nn.BatchNorm3d(channels_out))

        self.encoder = block(4, 4)
        self.decoder = torch.nn.ModuleDict({"stages": torch.nn.ModuleList([block(4, 4),
                                                                           block(4, 4)]),
                                            "classifier": torch.nn.Conv3d(4, 4, 1)})

    class config:  # what a checkpoint's signature records of the network
        @staticmethod
        def to_dict():
            return {"layout": "head inside decoder"}

    def forward(self, x):
        x = self.decoder["stages"][1](self.decoder["stages"][0](self.encoder(x)))
        return self.decoder["classifier"](x)

    @staticmethod
    def part_of(name):
        if name.startswith(("decoder.stages.1", "decoder.classifier")):
            return "head"
        return name.split(".", 1)[0]


@pytest.mark.parametrize("strategy", ["ft_last_three", "ft_decoder"])
def test_parts_are_the_architectures_names_not_its_submodules(strategy, subjects, tmp_path):
    """Only what the architecture calls trainable moves (weights and batch norm statistics),
    although the head shares a submodule with the frozen decoder."""
    torch.manual_seed(0)
    model = HeadInsideDecoder()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer_for(model, strategy, subjects, tmp_path, learning_rate=0.01).fit()
    trainable = STRATEGIES[strategy].trainable_at(0, 1)
    for name, value in model.state_dict().items():
        moved = not torch.equal(value, before[name])
        if name.endswith("num_batches_tracked") or "running" in name or name.endswith("bias"):
            if model.part_of(name) not in trainable:
                assert not moved, f"{strategy}: frozen {name} changed"
            continue
        assert moved == (model.part_of(name) in trainable), f"{strategy}: {name}"


@pytest.mark.parametrize("strategy, encoder, decoder, head", [
    ("scratch", 0.01, 0.01, 0.01), ("ft_all", 0.001, 0.001, 0.01),
    ("ft_decoder", 0.0, 0.001, 0.01), ("ft_last_three", 0.0, 0.0, 0.01),
    ("positive_control", 0.001, 0.001, 0.001)])
def test_the_sources_layers_train_at_their_share_of_the_learning_rate(
        strategy, encoder, decoder, head, subjects, tmp_path):
    """source_lr_scale 0.1: what a source gave trains at a tenth of the learning rate, a new
    head at all of it (a kept head is the source's); scratch has no source. Adam's first step
    moves every weight with a gradient by its learning rate, so the largest move in each part
    is that part's rate."""
    model = source_model().replace_head(4)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    trainer_for(model, strategy, subjects, tmp_path, source_lr_scale=0.1, learning_rate=0.01,
                lr_schedule="constant").fit()
    moved = {part: max(float((value.detach() - before[name]).abs().max())
                       for name, value in model.named_parameters() if name.startswith(part))
             for part in ("encoder", "decoder", "head")}
    assert moved == pytest.approx({"encoder": encoder, "decoder": decoder, "head": head},
                                  rel=1e-3, abs=1e-7), moved


def test_the_new_head_has_the_targets_shape():
    model = source_model()
    old_head = model.head
    model.replace_head(4)
    assert model.head is not old_head
    assert model.head.classifier.weight.shape == (4, 4, 1, 1, 1)
    assert model.head.convs[0].weight.shape == (4, 8, 3, 3, 3)  # skip + upsampled
    assert model(torch.zeros(1, 4, 16, 16, 16)).shape == (1, 4, 16, 16, 16)


def test_scratch_shares_no_weights_with_the_source(cache_folders, tmp_path):
    source = source_model()
    path = tmp_path / "source.pt"
    torch.save({"unet": source.config.to_dict(), "state_dict": source.state_dict()}, path)
    outputs = TrainingOutputs(*(tmp_path / "scratch" / n for n in ("model", "card", "history")),
                              checkpoints=tmp_path / "ck")
    settings = train_settings(epochs=1, iterations_per_epoch=1, batch_size=1,
                              patch_size=(16, 16, 16))
    setup = TrainingSetup("train.finetune", settings, TINY, LossWeights(None, None, 50.0),
                          "target", {})
    finetune_stage("scratch", setup, TrainingData(cache_folders, cache_folders[:1]), outputs,
                   LOG)
    scratch, saved = load_model(outputs.model)
    assert saved["strategy"] == "scratch"
    for name, value in source.state_dict().items():
        if not name.startswith("head") and value.numel() > 1 and value.dtype.is_floating_point:
            assert not torch.equal(value, scratch.state_dict()[name]), name


def _save_source(model, tmp_path, classes):
    """A source model file and its card, as a pretraining rule writes them."""
    from lesion_transfer.model.files import save_model
    from lesion_transfer.train.cards import make_card, write_card

    path = tmp_path / "control" / "model.pt"
    save_model(model, model.state_dict(), path, {"classes": classes})
    meta = {"channels": ["t1", "t1ce", "t2", "flair"], "preprocessing": SETTINGS}
    task = type("Task", (), {"labels": tuple(classes)})
    write_card(make_card(model, task, meta, {}, 1, {"settings": {"patch_size": [24, 24, 24]}},
                         "control"), path.with_name("card.json"))
    return path, path.with_name("card.json")


def test_the_positive_control_starts_from_its_sources_whole_network(cache_folders, tmp_path):
    """Its head is the source's (not a new one), so its start is the source itself; a source
    of other classes is refused, naming the card, before a step is taken."""
    torch.manual_seed(5)
    source = UNet3D(UNetConfig(out_channels=4, **TINY))
    model_path, card_path = _save_source(source, tmp_path, [0, 1, 2, 4])
    setup = TrainingSetup("train.finetune", train_settings(
        epochs=1, iterations_per_epoch=1, batch_size=1, patch_size=(16, 16, 16),
        learning_rate=1e-30), TINY, LossWeights(None, None, 50.0), "target", {})
    outputs = TrainingOutputs(*(tmp_path / "pc" / n for n in ("model", "card", "history")),
                              checkpoints=tmp_path / "ck")
    data = TrainingData(cache_folders, cache_folders[:1], model_path, card_path)
    finetune_stage("positive_control", setup, data, outputs, LOG)
    kept, saved = load_model(outputs.model)
    assert saved["strategy"] == "positive_control"
    for name, value in source.state_dict().items():  # a learning rate of 1e-30 moves nothing
        assert torch.allclose(value, kept.state_dict()[name], atol=1e-12), name
    # no epoch beat the start, so the model is the source: it predicts with the source's
    # window (24), not fine-tuning's (16)
    card = json.loads(outputs.card.read_text())
    assert card["best_epoch"] == 0 and card["inference_patch_size"] == [24, 24, 24]

    other_path, other_card = _save_source(UNet3D(UNetConfig(out_channels=2, **TINY)),
                                          tmp_path / "binary", [0, 1])
    with pytest.raises(IncompatibleModelError) as caught:
        finetune_stage("positive_control", setup, TrainingData(
            cache_folders, cache_folders[:1], other_path, other_card),
            TrainingOutputs(*(tmp_path / "pc2" / n for n in ("model", "card", "history")),
                            checkpoints=tmp_path / "ck2"), LOG)
    assert str(other_card) in str(caught.value)
    assert "expected the target's classes [0, 1, 2, 4]" in str(caught.value)
    assert "found [0, 1]" in str(caught.value)
    assert not (tmp_path / "pc2").exists()


@pytest.mark.parametrize("scores, best_epoch, epochs_run", [
    ([0.9, 0.1, 0.5, 0.4, 0.3, 0.2], 0, 3),   # no epoch beats the start: the start is kept
    ([0.3, 0.1, 0.5, 0.4, 0.2, 0.2], 2, 5)])  # the second epoch does: it is kept
def test_a_kept_head_is_validated_before_the_first_step(scores, best_epoch, epochs_run,
                                                        subjects, tmp_path):
    """Validation 0 is the start's (epoch 0); with patience 3 a start nothing beats stops
    training after epoch 3 and is the model, bit for bit."""
    settings = train_settings(epochs=6, iterations_per_epoch=1, batch_size=1,
                              patch_size=(16, 16, 16), seed=1, validate_every=1, patience=3)
    torch.manual_seed(0)
    model = UNet3D(UNetConfig(out_channels=4, **TINY))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = Trainer(Fit(model, PlateauTask(subjects, scores), STRATEGIES["positive_control"],
                         subjects, subjects[:1]), settings, Records(tmp_path / "c", LOG)).fit()
    assert [row["epoch"] for row in result.history] == list(range(epochs_run + 1))
    assert result.best_epoch == best_epoch and result.epochs_run == epochs_run
    assert result.best_metrics["mean_dice"] == max(scores[:epochs_run + 1])
    assert all(torch.equal(start[k], v) for k, v in result.best_state.items()) == \
        (best_epoch == 0)


@pytest.mark.parametrize("framework, strategy", [
    *(("nnunetv2", s) for s in ("scratch", "ft_all", "ft_decoder", "ft_last_three", "lp_ft",
                                "negative_control")),
    # MONAI's freezing per network is test_monai_bundles'; here the stage's two paths
    ("monai", "scratch"), ("monai", "ft_last_three")])
def test_every_strategy_fine_tunes_another_frameworks_source(framework, strategy,
                                                              cache_folders, tmp_path):
    """An nnU-Net folder and a MONAI bundle (channels in another order) as the source: each
    arm trains that framework's network, saves it with its architecture, records the source
    in its card, and what it freezes is the source's, bit for bit."""
    from test_monai_bundles import write_bundle
    from test_nnunet import write_nnunet_folder

    from lesion_transfer.model.foreign import adapt_input_channels
    from lesion_transfer.model.sources import describe_foreign_source, load_foreign_network

    source = (write_nnunet_folder(tmp_path) if framework == "nnunetv2"
              else write_bundle(tmp_path, "BasicUNet"))[0]
    patch = (16, 16, 16) if framework == "nnunetv2" else (32, 32, 32)  # 2 or 4 poolings
    setup = TrainingSetup("train.finetune", train_settings(
        epochs=2, iterations_per_epoch=1, batch_size=1, patch_size=patch), TINY,
        LossWeights(None, None, 50.0), "target", {})
    outputs = TrainingOutputs(*(tmp_path / strategy / n for n in ("model", "card", "history")),
                              checkpoints=tmp_path / "ck")
    finetune_stage(strategy, setup, TrainingData(cache_folders, cache_folders[:1], source),
                   outputs, LOG)
    model, saved = load_model(outputs.model)
    assert saved["architecture"]["framework"] == framework and model.config.num_classes == 4
    card = json.loads(outputs.card.read_text())
    assert card["architecture"] == saved["architecture"]
    described = describe_foreign_source(source)
    original = load_foreign_network(described)
    adapt_input_channels(original, described.channels, ("t1", "t1ce", "t2", "flair"), source)
    if strategy == "scratch":
        assert "source" not in card["config"]
        encoder = [n for n in original.state_dict() if original.part_of(n) == "encoder"]
        assert not torch.equal(model.state_dict()[encoder[0]], original.state_dict()[encoder[0]])
        return
    recorded = card["config"]["source"]
    assert recorded["framework"] == framework and recorded["licence"]
    assert all(len(digest) == 64 for digest in recorded["sha256"].values())
    assert recorded["channels"]["t1"] is not None
    frozen = set(("encoder", "decoder", "head")) - set(STRATEGIES[strategy].trainable_at(1, 2))
    if strategy == "lp_ft":
        frozen = set()  # the second half trains everything
    for name, value in model.state_dict().items():
        if model.part_of(name) in frozen:
            assert torch.equal(value, original.state_dict()[name]), f"frozen {name} changed"


def test_loss_falls_when_overfitting_two_phantoms(subjects, tmp_path):
    torch.manual_seed(3)
    model = UNet3D(UNetConfig(out_channels=4, width=8, depth=3, norm="instance"))
    trainer = trainer_for(model, "scratch", subjects, tmp_path, epochs=6,
                          iterations_per_epoch=8, patch_size=(24, 24, 24), learning_rate=0.01,
                          foreground_fraction=0.8)
    history = trainer.fit().history
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]


def test_a_killed_job_resumes_after_its_last_epoch(cache_folders, tmp_path):
    """SIGKILL during training; the rerun starts at the next epoch and ends at the same one."""
    script = f"""
import logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
from lesion_transfer.train.stages import (LossWeights, TrainingData, TrainingOutputs,
                                          TrainingSetup, pretrain_source_stage)
from lesion_transfer.train.trainer import TrainSettings
settings = TrainSettings.from_config({schema_training_block(epochs=40, iterations_per_epoch=2,
                                      batch_size=1, patch_size=[16, 16, 16])!r}, 0, "cpu", "auto")
outputs = TrainingOutputs(*(r"{tmp_path}" + "/" + n
                            for n in ("model", "card", "history", "checkpoints")))
folders = [r"{cache_folders[0]}", r"{cache_folders[1]}"]
setup = TrainingSetup("train.pretrain", settings, {TINY}, LossWeights(10.0, None, 50.0), "s", {{}})
pretrain_source_stage(setup, TrainingData(folders, folders[:1]), outputs, logging.getLogger())
"""
    checkpoint = tmp_path / "checkpoints" / "last.pt"
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    epoch = 0
    while time.time() < deadline and process.poll() is None:
        if checkpoint.exists():
            epoch = torch.load(checkpoint, weights_only=True)["epoch"]
            if epoch >= 2:
                process.send_signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    killed_at = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 2 <= killed_at < 40
    assert not (tmp_path / "model").exists()
    rerun = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True)
    assert f"starting at epoch {killed_at + 1}" in rerun.stdout
    assert f"epoch {killed_at}/40" not in rerun.stdout  # nothing done twice
    history = (tmp_path / "history").read_text().splitlines()[1:]
    assert [int(line.split("\t")[0]) for line in history] == list(range(1, 41))
    assert (tmp_path / "model").exists()
    assert not checkpoint.exists()  # the final model is written: the checkpoint has served


def test_a_mismatched_source_model_is_refused():
    card = {"channels": ["t1", "t1ce", "t2", "flair"], "preprocessing": SETTINGS,
            "preprocessing_hash": preprocessing_hash(SETTINGS)}
    meta = {"channels": ["t1", "t1ce", "t2", "flair"], "preprocessing": SETTINGS}
    check_compatible(card, "card.json", meta, "cache/B1")  # the same: accepted
    with pytest.raises(IncompatibleModelError, match=r"channels .* differ"):
        check_compatible(card, "card.json", {**meta, "channels": ["t1", "t2", "flair", "t1ce"]},
                         "cache/B1")
    other = {**meta, "preprocessing": {**SETTINGS, "spacing_mm": 1.0}}
    with pytest.raises(IncompatibleModelError) as caught:
        check_compatible(card, "card.json", other, "cache/B1")
    assert "spacing_mm: source 4.0, target 1.0" in str(caught.value)
    assert "card.json" in str(caught.value) and "cache/B1" in str(caught.value)


def test_roc_and_pr_auc_against_hand_computed_values():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.4])
    truth = np.array([1, 0, 1, 1, 0, 0], bool)
    # positive-negative pairs ranked correctly: (0.9: 3) + (0.7: 2) + (0.6: 2) = 7 of 9
    assert metrics.roc_auc(scores, truth) == pytest.approx(7 / 9)
    # precision at each positive: 1/1, 2/3, 3/4; average precision = (1 + 2/3 + 3/4) / 3
    assert metrics.pr_auc(scores, truth) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert metrics.roc_auc([0.5, 0.5], [1, 0]) == 0.5


def test_the_source_validation_dice_takes_the_highest_of_the_best_thresholds():
    """Hand-computed: any threshold in (0.1, 0.5] finds both lesion voxels and nothing else
    (Dice 1); the grid's highest such threshold is 0.5."""
    best, threshold = metrics.best_threshold_dice([0.1, 0.5, 0.9, 0.05], [0, 1, 1, 0])
    assert best == 1.0 and threshold == pytest.approx(0.5)
    # at 0.05 and 0.1 all three are predicted: 2 * 2 / (3 + 2)
    best, threshold = metrics.best_threshold_dice([0.1, 0.5, 0.9], [1, 0, 1])
    assert best == pytest.approx(0.8) and threshold == pytest.approx(0.1)


def test_region_dice_of_a_hand_built_case():
    truth = np.zeros((4, 4, 4), np.uint8)
    truth[0, :2, :2] = 4  # 4 voxels ET
    truth[1, :2, :2] = 1  # 4 voxels core
    truth[2, :2, :2] = 2  # 4 voxels edema
    prediction = truth.copy()
    prediction[2, :2, :2] = 0  # edema missed
    dice = region_dice(prediction, truth)
    assert dice == {"WT": pytest.approx(2 * 8 / 20), "TC": 1.0, "ET": 1.0}



def test_the_target_validates_at_the_operating_point_evaluation_would_choose(subjects):
    """A pointwise model that over-segments as weighted cross-entropy does: on background its
    edema logit beats the background's, so its argmax calls the whole volume tumour, while its
    probabilities separate every region exactly (hand-computed: WT 0.66 on background, 0.96
    on tumour; TC 0.09 on edema, 0.87 or more on the core). Validation scores the thresholded
    maps evaluation would build, so every region scores 1, not the argmax's Dice."""
    model = torch.nn.Conv3d(4, 4, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
        for channel in range(4):  # input: one channel per class, as one-hot
            model.weight[channel, channel] = 3.0
        model.weight[:, 0, 0, 0, 0] = torch.tensor([1.0, 0.0, 1.2, 0.0])
    truths = [np.asarray(s.label) for s in subjects]
    one_hot = [SimpleNamespace(label=t, image=np.stack([(t == v) for v in (0, 1, 2, 4)])
                               .astype(np.float32)) for t in truths]
    scores = tumour_task(subjects).validate(model, one_hot, None, "cpu", None)
    assert scores == {"dice_WT": 1.0, "dice_TC": 1.0, "dice_ET": 1.0, "mean_dice": 1.0}
    argmax_wt = dice(np.ones_like(truths[0], bool), truths[0] > 0)  # what argmax would score
    assert argmax_wt < 0.5

def test_sliding_window_equals_whole_volume_for_a_pointwise_model():
    torch.manual_seed(0)
    model = torch.nn.Conv3d(4, 3, 1)
    image = np.random.default_rng(0).random((4, 20, 18, 12)).astype(np.float32)
    whole = predict_volume(model, image, None)
    windows = predict_volume(model, image, (8, 8, 8), overlap=0.5)
    torch.testing.assert_close(windows, whole, atol=1e-5, rtol=1e-5)


def test_windows_batched_together_give_the_same_logits_as_one_at_a_time(subjects):
    torch.manual_seed(0)
    model = UNet3D(UNetConfig(out_channels=4, **TINY))
    image = subjects[0].image
    one = predict_volume(model, image, (16, 16, 16), windows_per_batch=1)
    batched = predict_volume(model, image, (16, 16, 16), windows_per_batch=5)
    torch.testing.assert_close(batched, one, atol=1e-5, rtol=1e-4)


def test_validation_every_k_epochs_selects_among_validated_epochs(subjects, tmp_path):
    from lesion_transfer.train.stages import write_history

    model = UNet3D(UNetConfig(out_channels=4, **TINY))
    result = trainer_for(model, "scratch", subjects, tmp_path, epochs=5,
                         validate_every=2).fit()
    validated = [row["epoch"] for row in result.history if "mean_dice" in row]
    assert validated == [2, 4, 5]  # every second epoch, and the last
    assert result.best_epoch in validated
    write_history(result.history, tmp_path / "history.tsv")
    lines = (tmp_path / "history.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["epoch", "loss", "dice_WT"] and len(lines) == 6


def test_a_checkpoint_from_other_starting_weights_or_data_is_not_resumed(cache_folders, tmp_path,
                                                                          caplog):
    """A source model or a cache that changed since the checkpoint: start afresh, say why."""
    import shutil

    def tumour_model(seed):
        torch.manual_seed(seed)
        return UNet3D(UNetConfig(out_channels=4, **TINY))

    folders = [shutil.copytree(f, tmp_path / "cache" / f.name) for f in cache_folders]
    subjects = [load_cached(f) for f in folders]
    trainer_for(tumour_model(0), "scratch", subjects, tmp_path, epochs=2).fit()
    caplog.set_level(logging.INFO, logger="test")
    same = trainer_for(tumour_model(0), "scratch", subjects, tmp_path, epochs=2)
    assert same._resume()["epoch"] == 2  # the same start: resumed
    other_weights = trainer_for(tumour_model(1), "scratch", subjects, tmp_path, epochs=2)
    assert other_weights._resume()["epoch"] == 0
    # cache_tensors writes the subject again (the preprocessing changed)
    image = np.array(subjects[0].image, dtype=np.float32)
    image[0, 5, 5, 5] += 0.25
    time.sleep(0.01)  # a later write
    write_cache(folders[0], list(image), np.array(subjects[0].label), subjects[0].meta)
    changed = [load_cached(folders[0]), subjects[1]]
    other_data = trainer_for(tumour_model(0), "scratch", changed, tmp_path, epochs=2)
    assert other_data._resume()["epoch"] == 0
    assert caplog.text.count("belongs to other settings, starting weights or data: starting "
                             "afresh") == 2


class PlateauTask(TumourTask):
    """Validation scores scripted per call: where the best epoch is, and when training must
    stop, are known in advance."""

    def __init__(self, subjects, scores):
        super().__init__(subjects, None, 50.0, "weighted_ce")
        self.scores = list(scores)

    def validate(self, *args):
        return {"mean_dice": self.scores.pop(0)}


def test_training_stops_after_patience_epochs_without_a_better_validation(subjects, tmp_path):
    """Best at epoch 2, patience 3: validations at 1..5 find nothing better, so training stops
    after epoch 5 of a maximum of 20, keeps epoch 2's weights, and a rerun trains no further."""
    settings = train_settings(epochs=20, iterations_per_epoch=1, batch_size=1,
                              patch_size=(16, 16, 16), seed=1, validate_every=1, patience=3)
    scores = [0.1, 0.5, 0.4, 0.45, 0.3] + [0.9] * 15

    def trainer():
        torch.manual_seed(0)  # the same starting weights: the checkpoint belongs to the rerun
        model = UNet3D(UNetConfig(out_channels=4, **TINY))
        return Trainer(Fit(model, PlateauTask(subjects, scores), STRATEGIES["scratch"],
                           subjects, subjects[:1]), settings,
                       Records(tmp_path / "checkpoints", LOG))

    first = trainer()
    result = first.fit()
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4, 5]
    assert result.best_epoch == 2 and result.epochs_run == 5
    best = {k: v.clone() for k, v in result.best_state.items()}
    rerun = trainer()
    again = rerun.fit()  # resumes from the checkpoint of a stopped run, trains no epoch
    assert rerun.task.scores == scores  # not one validation ran again
    assert again.epochs_run == 5 and len(again.history) == 5 and again.best_epoch == 2
    for key, value in again.best_state.items():
        assert torch.equal(value, best[key]), key


def test_training_and_validation_run_in_bf16_mixed_precision_on_the_cpu(subjects, tmp_path):
    settings = train_settings(precision="bf16", epochs=2, iterations_per_epoch=2, batch_size=1,
                              patch_size=(16, 16, 16), seed=1, validate_every=1)
    model = UNet3D(UNetConfig(out_channels=4, **TINY))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(Fit(model, tumour_task(subjects), STRATEGIES["scratch"], subjects,
                          subjects[:1]), settings, Records(tmp_path / "c", LOG))
    assert trainer.precision == "bf16"
    result = trainer.fit()
    assert all(np.isfinite(row["loss"]) for row in result.history)
    assert all(value.dtype == torch.float32 for value in result.best_state.values())  # master
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fp32_on_the_cpu_trains_channels_last_to_the_same_gradients_and_saves_the_default(
        subjects, tmp_path, monkeypatch):
    """The layout is speed only (devices.training_memory_format): the same weights and batch
    give the same loss and gradients in either, up to float summation order, and what a fit
    returns (the weights saved, the model inference runs next) is in torch's default layout
    whatever it trained in."""
    import lesion_transfer.train.trainer as trainer_module

    settings = train_settings(precision="fp32", epochs=2, iterations_per_epoch=2, batch_size=2,
                              patch_size=(16, 16, 16), seed=1, validate_every=1, patience=None)
    gradients = {}
    for layout in (torch.channels_last_3d, torch.contiguous_format):
        monkeypatch.setattr(trainer_module, "training_memory_format",
                            lambda *_, chosen=layout: chosen)
        torch.manual_seed(0)
        model = UNet3D(UNetConfig(out_channels=4, **TINY))
        trainer = Trainer(Fit(model, tumour_task(subjects), STRATEGIES["scratch"], subjects,
                              subjects[:1]), settings, Records(tmp_path / str(layout), LOG))
        first_conv = model.encoder.levels[0][0].weight
        assert first_conv.is_contiguous(memory_format=layout)
        images, classes = trainer.batches[0]
        optimizer = trainer.make_optimizer(STRATEGIES["scratch"].trainable_at(0, 2))
        trainer.train_step(optimizer, images, classes)  # steps: the gradients stay behind
        gradients[layout] = {n: p.grad.clone() for n, p in model.named_parameters()}
        result = trainer.fit()
        assert first_conv.is_contiguous() and all(v.is_contiguous()
                                                  for v in result.best_state.values())
    cl, default = gradients[torch.channels_last_3d], gradients[torch.contiguous_format]
    for name, gradient in default.items():
        assert gradient.abs().max() > 0, name
        torch.testing.assert_close(cl[name], gradient, rtol=1e-4,
                                   atol=1e-5 * float(gradient.abs().max()), msg=name)


def test_without_patience_every_epoch_trains(subjects, tmp_path):
    settings = train_settings(epochs=4, iterations_per_epoch=1, batch_size=1,
                              patch_size=(16, 16, 16), seed=1, validate_every=1, patience=None)
    model = UNet3D(UNetConfig(out_channels=4, **TINY))
    result = Trainer(Fit(model, PlateauTask(subjects, [0.9, 0.1, 0.1, 0.1]),
                         STRATEGIES["scratch"], subjects, subjects[:1]), settings,
                     Records(tmp_path / "c", LOG)).fit()
    assert result.epochs_run == 4 and result.best_epoch == 1


def test_the_negative_control_keeps_each_tensors_values_but_not_their_arrangement():
    from lesion_transfer.train.stages import scramble_weights

    trained = source_model()
    scrambled = scramble_weights(source_model(), torch.Generator().manual_seed(5))
    again = scramble_weights(source_model(), torch.Generator().manual_seed(5))
    moved = 0
    for (name, before), after, repeat in zip(trained.named_parameters(), scrambled.parameters(),
                                             again.parameters(), strict=True):
        # the same values (so the same mean, spread and norm), in another order
        assert torch.equal(before.flatten().sort().values, after.flatten().sort().values), name
        assert torch.equal(after, repeat), name  # seeded
        moved += int(not torch.equal(before, after))
    convolutions = [p for p in trained.parameters() if p.dim() == 5]
    assert moved >= len(convolutions)  # every convolution (and the norms' vectors) moved
    volume = torch.rand(1, 4, 16, 16, 16)
    with torch.no_grad():  # what the source computed is gone
        assert not torch.allclose(trained.eval()(volume), scrambled.eval()(volume), atol=1e-3)


def test_a_phased_strategy_is_not_stopped_before_its_last_phase_has_had_its_patience(
        subjects, tmp_path):
    """lp_ft trains the head for the first half (5 of 10 epochs), then everything: a plateau
    in the first phase does not stop it, and the last phase gets the full patience (2)."""
    settings = train_settings(epochs=10, iterations_per_epoch=1, batch_size=1,
                              patch_size=(16, 16, 16), seed=1, validate_every=1, patience=2)
    model = source_model()
    model.replace_head(4)
    result = Trainer(Fit(model, PlateauTask(subjects, [0.5] + [0.1] * 9), STRATEGIES["lp_ft"],
                         subjects, subjects[:1]), settings, Records(tmp_path / "c", LOG)).fit()
    assert result.best_epoch == 1 and result.epochs_run == 7  # phase 2 starts after epoch 5


def only(transform):
    """One spatial transform at probability 1, nothing else."""
    off = {f"{name}_prob": 0.0 for name in ("rotation", "scale", "elastic", "mirror", "gamma",
                                            "brightness", "noise")}
    return augmentation({**schema_training_block()["augmentation"], **off,
                         f"{transform}_prob": 1.0})


def tumour_patch():
    """A 2 mm glioma phantom cut to 64^3 around its tumour, the first channel replaced by the
    tumour mask (so that the image itself says where the label must be)."""
    settings = phantom_settings(kind="glioma", subjects=1, seed=4, spacing_mm=2.0)
    phantom = synthesize_glioma_subject(settings, "B1", 0, "HGG")
    centre = np.argwhere(phantom.label > 0).mean(axis=0).astype(int)
    window = tuple(slice(max(c - 32, 0), max(c - 32, 0) + 64) for c in centre)
    label = phantom.label[window].copy()
    image = np.stack([phantom.images[m][window] for m in ("t1", "t1ce", "t2", "flair")])
    image = (image / image.max()).astype(np.float32)
    image[0] = label > 0
    label[:3] = UNKNOWN_LABEL  # an unknown slab keeps its value too
    return image, label


@pytest.mark.parametrize("transform", ["rotation", "scale", "elastic", "mirror"])
def test_spatial_augmentation_moves_the_label_with_its_image(transform):
    """After each spatial transform the image's tumour channel still outlines the augmented
    label, closer than a label one voxel off would (Dice 0.84-0.88 on this phantom)."""
    image, label = tumour_patch()
    tumour = (label > 0) & (label != UNKNOWN_LABEL)
    for axis in range(3):
        assert dice(image[0] > 0.5, np.roll(tumour, 1, axis=axis)) < 0.9  # what misalignment gives
    transforms = only(transform)
    for seed in range(3):
        augmented, moved = augment(transforms, image, label, seed=seed)
        assert augmented.shape == image.shape and moved.shape == label.shape
        assert set(np.unique(moved)) <= set(np.unique(label))  # values kept (nearest)
        moved_tumour = (moved > 0) & (moved != UNKNOWN_LABEL)
        assert dice(augmented[0] > 0.5, moved_tumour) > 0.93, seed
        assert not np.array_equal(moved_tumour, tumour), seed  # it did move


def test_the_brain_of_a_zscored_cache_holds_voxels_below_the_mean_in_every_channel():
    from lesion_transfer.train.data import brain_of

    image = np.zeros((2, 3, 1, 1), np.float16)
    image[:, 0] = [[[-0.7]], [[-1.2]]]  # darker than the brain's mean in both channels
    image[:, 1] = [[[0.0]], [[0.4]]]
    assert brain_of(image).ravel().tolist() == [True, True, False]


def test_intensity_augmentation_leaves_the_label_alone():
    channels, label = phantom_cache("B1", 0, "HGG")
    image = np.stack(channels).astype(np.float32)
    settings = {**schema_training_block()["augmentation"], "rotation_prob": 0.0,
                "scale_prob": 0.0, "mirror_prob": 0.0, "gamma_prob": 1.0,
                "brightness_prob": 1.0, "noise_prob": 1.0}
    augmented, same = augment(augmentation(settings), image, label, seed=2)
    np.testing.assert_array_equal(same, label)
    assert not np.allclose(augmented, image)


def test_a_batch_is_the_same_from_any_worker_and_after_a_resume(subjects):
    block = schema_training_block()
    sampler = PatchSampler(subjects, (16, 16, 16), 0.5, TumourTask.labels,
                           augmentation(block["augmentation"]), block["foreground_sampling"])
    dataset = TrainingBatches(sampler, 2, seed=7)
    in_process = list(batches(dataset, range(3, 7), workers=0))
    in_workers = list(batches(dataset, range(3, 7), workers=2))
    for (image_a, target_a), (image_b, target_b) in zip(in_process, in_workers, strict=True):
        assert torch.equal(image_a, image_b) and torch.equal(target_a, target_b)
    assert torch.equal(dataset[5][0], in_process[2][0])  # a resumed epoch draws the same
    assert not torch.equal(in_process[0][0], in_process[1][0])


def test_soft_dice_of_hand_built_cases():
    from lesion_transfer.train.tasks import soft_dice_loss

    target = torch.zeros(1, 2, 2, 2, 1)
    target[0, 0, 0] = 1  # channel 0: 2 of 4 voxels; channel 1: none
    known = torch.ones(1, 2, 2, 1, dtype=torch.bool)
    # a perfect prediction: Dice 1 in channel 0, and (0 + eps) / (0 + eps) = 1 in channel 1
    assert soft_dice_loss(target.clone(), target, known).item() == pytest.approx(-1.0)
    # probability 0.5 on the right voxels of channel 0, none anywhere in channel 1:
    # 2 * (2 x 0.5) / (2 x 0.5 + 2) = 2/3 and 1, a mean of 5/6
    half = target * 0.5
    assert soft_dice_loss(half, target, known).item() == pytest.approx(-5 / 6, abs=1e-5)
    half[0, 0, 1] = 0.9  # probability where the label is unknown does not count
    known[0, 1] = False
    assert soft_dice_loss(half, target, known).item() == pytest.approx(-5 / 6, abs=1e-5)
    # probability where channel 1 has no voxel: Dice eps / (2 + eps), about 0
    wrong = target.clone()
    wrong[0, 1, 0] = 1
    assert soft_dice_loss(wrong, target, known).item() == pytest.approx(-0.5, abs=1e-5)


@pytest.mark.parametrize("loss", ["weighted_ce", "dice_ce"])
def test_each_loss_is_lower_for_the_true_labels_and_ignores_unknown_voxels(loss, subjects):
    task = TumourTask(subjects, None, 50.0, loss)
    classes = torch.randint(0, 4, (2, 6, 6, 6))
    right = torch.nn.functional.one_hot(classes, 4).movedim(-1, 1).float() * 8
    wrong = right.roll(1, dims=1)
    assert task.loss(right, classes) < task.loss(wrong, classes)
    ignored = classes.clone()
    ignored[:, :3] = -1
    halved = right.clone()
    halved[:, :, :3] = wrong[:, :, :3]  # wrong only where the label is unknown
    assert task.loss(halved, ignored).item() == pytest.approx(task.loss(right, ignored).item())


def test_dice_ce_is_unweighted_cross_entropy_plus_the_foreground_soft_dice(subjects):
    from lesion_transfer.train.tasks import soft_dice_loss

    task = TumourTask(subjects, None, 50.0, "dice_ce")
    logits, classes = torch.randn(2, 4, 5, 5, 5), torch.randint(0, 4, (2, 5, 5, 5))
    one_hot = torch.nn.functional.one_hot(classes, 4).movedim(-1, 1).float()
    expected = torch.nn.functional.cross_entropy(logits, classes) + soft_dice_loss(
        logits.softmax(1)[:, 1:], one_hot[:, 1:], torch.ones_like(classes, dtype=torch.bool))
    assert task.loss(logits, classes).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="loss: expected one of weighted_ce, dice_ce"):
        TumourTask(subjects, None, 50.0, "dice")


def test_the_poly_schedule_decays_to_zero_and_is_set_every_epoch(subjects, tmp_path):
    torch.manual_seed(0)
    trainer = trainer_for(UNet3D(UNetConfig(out_channels=4, **TINY)), "scratch", subjects,
                          tmp_path, epochs=4, lr_schedule="poly", learning_rate=0.01)
    assert [trainer.learning_rate(e) for e in range(4)] == pytest.approx(
        [0.01 * (1 - e / 4) ** 0.9 for e in range(4)])
    seen = []
    step = trainer.train_step
    trainer.train_step = lambda optimizer, *batch: (
        seen.append(optimizer.param_groups[0]["lr"]), step(optimizer, *batch))[1]
    trainer.fit()
    assert seen == pytest.approx([0.01, 0.01 * 0.75 ** 0.9, 0.01 * 0.5 ** 0.9, 0.01 * 0.25 ** 0.9])
    constant = trainer_for(UNet3D(UNetConfig(out_channels=4, **TINY)), "scratch", subjects,
                           tmp_path / "c", epochs=4, learning_rate=0.01)
    assert [constant.learning_rate(e) for e in range(4)] == [0.01] * 4


def test_with_keep_last_how_often_it_validates_does_not_change_the_weights(subjects,
                                                                         tmp_path):
    """Validation changes nothing training uses (weights, batch-norm statistics; the batches
    draw from seeds of their own) and keep: last does not choose by it, so a model validated
    every epoch or only at the end is the same model: validations there only draw the history
    (the control source's, train.control_pretrain). Batch norm: its running statistics are
    what a validation in training mode would move."""
    kept = []
    for every in (1, 4):
        torch.manual_seed(0)
        model = UNet3D(UNetConfig(out_channels=4, **{**TINY, "norm": "batch"}))
        trainer = trainer_for(model, "scratch", subjects,
                              tmp_path / str(every), epochs=4, iterations_per_epoch=2,
                              keep="last", validate_every=every, patience=None)
        result = trainer.fit()
        assert sum("mean_dice" in row for row in result.history) == 4 // every
        kept.append(result.best_state)
    for name, value in kept[0].items():
        assert torch.equal(value, kept[1][name]), name


def test_keep_last_averages_the_weights_of_the_last_epochs(subjects, tmp_path):
    """weight_average_epochs 3 of 5: the model is the mean of the weights after epochs 3, 4
    and 5, and the card's metrics are that model's validation."""
    torch.manual_seed(0)
    model = UNet3D(UNetConfig(out_channels=4, **TINY))
    trainer = trainer_for(model, "scratch", subjects, tmp_path, epochs=5, keep="last",
                          weight_average_epochs=3, validate_every=100)
    after_each_epoch = []
    add = trainer._add_to_average
    trainer._add_to_average = lambda state, epoch: (
        after_each_epoch.append({k: v.clone() for k, v in model.state_dict().items()}),
        add(state, epoch))
    result = trainer.fit()
    assert result.best_epoch == 5 and len(after_each_epoch) == 5
    for name, value in result.best_state.items():
        expected = sum(w[name] for w in after_each_epoch[2:]) / 3
        assert torch.allclose(value, expected.to(value.dtype), atol=1e-6), name
    # the epochs moved the weights, so the mean is not the last epoch's weights
    assert any(not torch.equal(value, after_each_epoch[-1][name])
               for name, value in result.best_state.items())
    assert result.best_metrics == pytest.approx(trainer.validate())


def test_keep_last_without_averaging_keeps_the_last_epochs_weights(subjects, tmp_path):
    torch.manual_seed(0)
    model = UNet3D(UNetConfig(out_channels=4, **TINY))
    trainer = trainer_for(model, "scratch", subjects, tmp_path, epochs=3, keep="last",
                          validate_every=1)
    result = trainer.fit()
    assert result.best_epoch == 3
    for name, value in model.state_dict().items():
        assert torch.equal(result.best_state[name], value), name
    assert result.best_metrics["mean_dice"] == result.history[-1]["mean_dice"]


@pytest.mark.parametrize("sampling, expected", [
    ("each_class", {1: 1 / 3, 2: 1 / 3, 4: 1 / 3}),  # nnU-Net v2: classes alike
    ("any_voxel", {1: 10 / 1010, 2: 900 / 1010, 4: 100 / 1010}),  # in proportion to volume
])
def test_foreground_centres_come_per_class_or_per_voxel(sampling, expected):
    """A known label: 10 voxels of 1, 900 of 2, 100 of 4; every patch a foreground one.
    The class at each patch's centre is counted over 6000 draws."""
    from types import SimpleNamespace

    label = np.zeros((20, 20, 20), np.uint8)
    label.reshape(-1)[:10] = 1
    label.reshape(-1)[1000:1900] = 2
    label.reshape(-1)[4000:4100] = 4
    subject = SimpleNamespace(label=label, image=np.zeros((4, 20, 20, 20), np.float32))
    sampler = PatchSampler([subject], (1, 1, 1), 1.0, TumourTask.labels, None, sampling)
    rng = np.random.default_rng(0)
    centres = [label[tuple(sampler._foreground_centre(0, rng))] for _ in range(6000)]
    for value, share in expected.items():
        assert np.mean(np.equal(centres, value)) == pytest.approx(share, abs=0.02), value
    with pytest.raises(ValueError, match="foreground_sampling: expected one of each_class"):
        PatchSampler([subject], (1, 1, 1), 1.0, TumourTask.labels, None, "balanced")


def test_a_job_resumed_inside_the_averaged_epochs_keeps_the_same_average(subjects, tmp_path):
    """Killed after epoch 4 of 5 (3 averaged): the rerun resumes with the sum of epochs 3 and
    4 from the checkpoint and ends with the weights of a run that was never stopped."""
    def trainer(folder):
        torch.manual_seed(0)
        return trainer_for(UNet3D(UNetConfig(out_channels=4, **TINY)), "scratch", subjects,
                           folder, epochs=5, keep="last", weight_average_epochs=3,
                           validate_every=100)

    whole = trainer(tmp_path / "whole").fit()
    killed = trainer(tmp_path / "killed")
    save = killed._save_checkpoint

    def save_then_die(state, optimizer):
        save(state, optimizer)
        if state["epoch"] == 4:
            raise KeyboardInterrupt

    killed._save_checkpoint = save_then_die
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    resumed = trainer(tmp_path / "killed").fit()
    assert resumed.epochs_run == 5 and len(resumed.history) == 5
    for name, value in whole.best_state.items():
        assert torch.allclose(resumed.best_state[name], value, atol=1e-6), name


def test_an_infinite_learning_rate_stops_training_at_the_first_nan_loss(subjects, tmp_path):
    """Adam at an infinite learning rate makes the weights infinite after step 1, so step 2's
    loss is NaN: training stops there, naming epoch and step, and writes no checkpoint."""
    torch.manual_seed(0)
    trainer = trainer_for(UNet3D(UNetConfig(out_channels=4, **TINY)), "scratch", subjects,
                          tmp_path, epochs=3, iterations_per_epoch=4, learning_rate=math.inf)
    with pytest.raises(TrainingDiverged, match=r"epoch 1/3, step 2/4: expected a finite loss "
                                               r"and gradient, found the loss is nan"):
        trainer.fit()
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_a_nan_gradient_stops_training_before_the_weights_change(subjects, tmp_path):
    """A finite loss whose gradient is NaN (a hook spoils one tensor's): the step that would
    write NaN into the weights is not taken, so every weight is bit-identical."""
    torch.manual_seed(0)
    model = UNet3D(UNetConfig(out_channels=4, **TINY))
    trainer = trainer_for(model, "scratch", subjects, tmp_path, epochs=2, iterations_per_epoch=3)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    next(model.parameters()).register_hook(lambda gradient: gradient * math.nan)
    with pytest.raises(TrainingDiverged, match=r"epoch 1/2, step 1/3: .* the gradient's norm "
                                               r"is nan"):
        trainer.fit()
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_loader_workers_forced_on_train_the_same_weights_as_none(subjects, tmp_path,
                                                                 monkeypatch):
    """The GPU's loader path on the CPU: worker processes make the batches (as on CUDA), and
    the trained weights are bit-identical to batches made in the training process."""
    from lesion_transfer.train import trainer as trainer_module

    settings = train_settings(epochs=2, iterations_per_epoch=3, batch_size=1,
                              patch_size=(16, 16, 16), seed=3, validate_every=2)

    def trained(workers):
        monkeypatch.setenv(trainer_module.LOADER_WORKERS, str(workers))
        torch.manual_seed(0)
        model = UNet3D(UNetConfig(out_channels=4, **TINY))
        trainer = Trainer(Fit(model, tumour_task(subjects), STRATEGIES["scratch"], subjects,
                              subjects[:1]), settings, Records(tmp_path / f"w{workers}", LOG))
        assert trainer.workers == workers
        return trainer.fit().best_state

    in_process, in_workers = trained(0), trained(2)
    for key, value in in_process.items():
        assert torch.equal(value, in_workers[key]), key
    assert trainer_module.loader_workers(torch.device("cpu")) == 2  # the variable still set
    monkeypatch.delenv(trainer_module.LOADER_WORKERS)
    assert trainer_module.loader_workers(torch.device("cpu")) == 0
