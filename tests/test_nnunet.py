"""nnU-Net v2 trained-model folders as sources (issue 24): written here as nnU-Net v2 writes
them, with random weights, then read, built, split into parts and refused when malformed."""

import json

import numpy as np
import pytest
import torch
from conftest import RunsACommand
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet

from lesion_transfer.model.nnunet import (
    NnunetFolderError,
    load_nnunet_network,
    read_nnunet_folder,
)
from lesion_transfer.model.strategies import STRATEGIES, apply_strategy, set_train_mode
from lesion_transfer.model.tensor_files import UnsafeModelFile

CONV = "torch.nn.modules.conv.Conv3d"  # as nnU-Net's plans name layers
NORM = "torch.nn.modules.instancenorm.InstanceNorm3d"
NONLIN = "torch.nn.modules.activation.LeakyReLU"
COMMON = {"n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": CONV,
          "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
          "n_conv_per_stage_decoder": [2, 2], "conv_bias": True, "norm_op": NORM,
          "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
          "dropout_op_kwargs": None, "nonlin": NONLIN, "nonlin_kwargs": {"inplace": True}}
NETWORKS = {
    "PlainConvUNet": (PlainConvUNet, {**COMMON, "n_conv_per_stage": [2, 2, 2]}),
    "ResidualEncoderUNet": (ResidualEncoderUNet, {**COMMON, "n_blocks_per_stage": [1, 2, 2]}),
}
# a BraTS model as nnU-Net trains one: four channels, three overlapping regions
DATASET = {"channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"},
           "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3],
                      "enhancing tumor": [3]},
           "regions_class_order": [1, 2, 3], "numTraining": 484, "file_ending": ".nii.gz",
           "licence": "CC-BY-SA 4.0"}


def plans_for(kind, arch_kwargs, spacing=1.0):
    module = "dynamic_network_architectures.architectures.unet"
    return {"dataset_name": "Dataset137_BraTS2021", "plans_name": "nnUNetPlans",
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
            "configurations": {
                "3d_fullres": {
                    "data_identifier": "nnUNetPlans_3d_fullres", "batch_size": 2,
                    "patch_size": [128, 128, 128], "spacing": [spacing] * 3,
                    "normalization_schemes": ["ZScoreNormalization"] * 4,
                    "use_mask_for_norm": [True] * 4,
                    "architecture": {"network_class_name": f"{module}.{kind}",
                                     "arch_kwargs": arch_kwargs,
                                     "_kw_requires_import": ["conv_op", "norm_op", "dropout_op",
                                                             "nonlin"]}},
                "3d_lowres": {"inherits_from": "3d_fullres", "spacing": [2.0, 2.0, 2.0]}}}


def write_nnunet_folder(root, kind="PlainConvUNet", folds=(0,), dataset=DATASET, seed=0,
                        channels=4, spacing=1.0):
    """nnUNet_results/Dataset137_BraTS2021/nnUNetTrainer__nnUNetPlans__3d_fullres, with the
    checkpoint nnU-Net v2's save_checkpoint writes (its log holds numpy scalars)."""
    network_class, arch_kwargs = NETWORKS[kind]
    plans = plans_for(kind, arch_kwargs, spacing)
    folder = root / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    torch.manual_seed(seed)
    layers = {CONV: torch.nn.Conv3d, NORM: torch.nn.InstanceNorm3d, NONLIN: torch.nn.LeakyReLU}
    network = network_class(input_channels=channels, num_classes=3, deep_supervision=True,
                            **{k: layers.get(v, v) if isinstance(v, str) else v
                               for k, v in arch_kwargs.items()})
    network.apply(network.initialize)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.99, nesterov=True)
    for fold in folds:
        (folder / f"fold_{fold}").mkdir(parents=True)
        torch.save({
            "network_weights": network.state_dict(),
            "optimizer_state": optimizer.state_dict(),
            "grad_scaler_state": None,
            "logging": {"mean_fg_dice": [np.float64(0.71)], "ema_fg_dice": [np.float64(0.7)],
                        "train_losses": [np.float32(-0.6)], "val_losses": [np.float64(-0.5)],
                        "lrs": [0.01], "epoch_start_timestamps": [1.7e9],
                        "epoch_end_timestamps": [1.7e9 + 100]},
            "_best_ema": np.float64(0.7),
            "current_epoch": 1000,
            "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": fold,
                          "dataset_json": dataset, "device": torch.device("cpu")},
            "trainer_name": "nnUNetTrainer",
            "inference_allowed_mirroring_axes": (0, 1, 2),
        }, folder / f"fold_{fold}" / "checkpoint_final.pth")
    (folder / "plans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps(dataset))
    return folder, network


@pytest.mark.parametrize("kind", sorted(NETWORKS))
def test_a_folder_is_read_and_built_into_the_network_nnunet_trained(kind, tmp_path):
    folder, original = write_nnunet_folder(tmp_path, kind)
    model = read_nnunet_folder(folder)
    assert model.configuration == "3d_fullres" and model.checkpoint.parent.name == "fold_0"
    assert model.channels == ("T1", "T1ce", "T2", "FLAIR")
    assert model.architecture.num_classes == 3  # three regions, background implied
    assert model.spacing == (1.0, 1.0, 1.0) and model.patch_size == (128, 128, 128)
    assert model.normalization_schemes == ("ZScoreNormalization",) * 4
    assert model.licence == "CC-BY-SA 4.0"
    network = load_nnunet_network(model).eval()
    original.decoder.deep_supervision = False
    x = torch.randn(1, 4, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(network(x), original.eval()(x))


def test_a_configuration_inherits_what_it_does_not_change(tmp_path):
    folder, _ = write_nnunet_folder(tmp_path)
    plans = json.loads((folder / "plans.json").read_text())
    checkpoint = folder / "fold_0" / "checkpoint_final.pth"
    saved = torch.load(checkpoint, weights_only=False)
    saved["init_args"]["configuration"] = "3d_lowres"
    torch.save(saved, checkpoint)
    model = read_nnunet_folder(folder)
    assert model.configuration == "3d_lowres" and model.spacing == (2.0, 2.0, 2.0)
    assert model.patch_size == tuple(plans["configurations"]["3d_fullres"]["patch_size"])


@pytest.mark.parametrize("kind", sorted(NETWORKS))
def test_each_part_is_declared_once_and_the_head_is_the_last_three_layers(kind, tmp_path):
    network = load_nnunet_network(read_nnunet_folder(write_nnunet_folder(tmp_path, kind)[0]))
    parts = {}
    for name, _ in network.named_parameters():
        parts.setdefault(network.part_of(name), []).append(name)
    assert set(parts) == {"encoder", "decoder", "head"}
    assert all(n.startswith("network.encoder.") for n in parts["encoder"])
    # the head: the last decoder stage's two convolutions and every segmentation layer
    head_convs = {n.rsplit(".", 1)[0] for n in parts["head"] if ".stages." in n
                  and n.endswith("conv.weight")}
    assert len(head_convs) == 2, head_convs
    assert any(n.startswith("network.decoder.seg_layers.1.") for n in parts["head"])
    assert any(n.startswith("network.decoder.seg_layers.0.") for n in parts["head"])
    # the decoder's reference to the encoder is the encoder
    assert network.part_of("network.decoder.encoder.stages.0.0.convs.0.conv.weight") == \
        "encoder"


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_what_a_strategy_freezes_stays_bit_identical(strategy, tmp_path):
    network = load_nnunet_network(read_nnunet_folder(write_nnunet_folder(tmp_path)[0]))
    if not STRATEGIES[strategy].keep_head:
        network.replace_head(4)
    trainable = STRATEGIES[strategy].trainable_at(0, 10)
    before = {k: v.detach().clone() for k, v in network.state_dict().items()}
    optimizer = torch.optim.Adam(apply_strategy(network, trainable), lr=0.01)
    set_train_mode(network, trainable)
    network(torch.randn(2, 4, 16, 16, 16)).square().mean().backward()
    optimizer.step()
    for name, value in network.state_dict().items():
        frozen = network.part_of(name) not in trainable
        if frozen:
            assert torch.equal(value, before[name]), f"{strategy}: frozen {name} changed"
        elif name.endswith("conv.weight"):
            assert not torch.equal(value, before[name]), f"{strategy}: {name} did not train"


def test_a_new_head_keeps_every_other_weight(tmp_path):
    network = load_nnunet_network(read_nnunet_folder(write_nnunet_folder(tmp_path)[0]))
    before = {k: v.clone() for k, v in network.state_dict().items()}
    torch.manual_seed(1)
    network.replace_head(4)
    assert network.config.num_classes == 4
    assert network(torch.zeros(1, 4, 16, 16, 16)).shape == (1, 4, 16, 16, 16)
    after = network.state_dict()
    for name, value in before.items():
        if network.part_of(name) != "head":
            assert torch.equal(value, after[name]), name
        elif name.endswith("conv.weight") or ("seg_layers" in name and name.endswith("weight")):
            # new layers (a norm's weights start at 1 again, as they did: not compared)
            assert value.shape != after[name].shape or not torch.equal(value, after[name]), name


# --- refused, naming the file ---------------------------------------------------------------


def test_a_pickled_object_in_the_checkpoint_is_refused_before_it_runs(tmp_path):
    folder, _ = write_nnunet_folder(tmp_path)
    checkpoint = folder / "fold_0" / "checkpoint_final.pth"
    saved = torch.load(checkpoint, weights_only=False)
    saved["trainer"] = RunsACommand(tmp_path / "ran")
    torch.save(saved, checkpoint)
    with pytest.raises(UnsafeModelFile) as caught:
        read_nnunet_folder(folder)
    assert str(checkpoint) in str(caught.value)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("key, value, expected", [
    ("network_class_name", "os.system", "network_class_name: expected one of "),
    ("conv_op", "subprocess.Popen", "arch_kwargs.conv_op: expected one of torch.nn's layers"),
])
def test_a_class_plans_json_names_is_looked_up_never_imported(key, value, expected, tmp_path):
    folder, _ = write_nnunet_folder(tmp_path)
    plans = json.loads((folder / "plans.json").read_text())
    architecture = plans["configurations"]["3d_fullres"]["architecture"]
    if key == "network_class_name":
        architecture[key] = value
    else:
        architecture["arch_kwargs"][key] = value
    (folder / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(NnunetFolderError) as caught:
        read_nnunet_folder(folder)
    assert str(folder / "plans.json") in str(caught.value)
    assert expected in str(caught.value) and repr(value) in str(caught.value)


def test_weights_that_do_not_match_the_plans_are_refused_naming_the_tensor(tmp_path):
    two_channels = {**DATASET, "channel_names": {"0": "T1", "1": "FLAIR"}}
    folder, _ = write_nnunet_folder(tmp_path, dataset=two_channels)
    model = read_nnunet_folder(folder)
    with pytest.raises(NnunetFolderError) as caught:
        load_nnunet_network(model)
    message = str(caught.value)
    assert str(model.checkpoint) in message and "2 channels" in message
    assert "encoder.stages.0.0.convs.0.conv.weight is [4, 4, 3, 3, 3] in the weights, " \
           "[4, 2, 3, 3, 3] in plans.json's" in message


def test_a_folder_without_its_files_or_with_several_folds_is_refused(tmp_path):
    folder, _ = write_nnunet_folder(tmp_path, folds=(0, 1))
    with pytest.raises(NnunetFolderError, match=r"expected one fold_K folder, or the fold "
                                                r"named, found 2: 0, 1"):
        read_nnunet_folder(folder)
    assert read_nnunet_folder(folder, fold=1).checkpoint.parent.name == "fold_1"
    (folder / "dataset.json").unlink()
    with pytest.raises(NnunetFolderError) as caught:
        read_nnunet_folder(folder, fold=1)
    assert str(folder / "dataset.json") in str(caught.value)


def test_the_numpy_scalars_are_allowed_for_nnunet_checkpoints_only(tmp_path):
    """The project's own model files stay tensors and plain values: a numpy scalar in one is
    refused as before."""
    from lesion_transfer.model.tensor_files import read_tensor_file

    path = tmp_path / "model.pt"
    torch.save({"value": np.float64(1.0)}, path)
    with pytest.raises(UnsafeModelFile):
        read_tensor_file(path)


def test_a_fine_tuned_network_is_saved_and_rebuilt_from_its_recorded_architecture(tmp_path):
    """What the training rules write and evaluation reads: the architecture (framework,
    class, arguments) beside the weights, rebuilt by dynamic-network-architectures."""
    from lesion_transfer.model.files import load_model, save_model

    network = load_nnunet_network(read_nnunet_folder(write_nnunet_folder(tmp_path)[0]))
    network.replace_head(4)
    save_model(network, network.state_dict(), tmp_path / "model.pt", {"classes": [0, 1, 2, 4]})
    rebuilt, saved = load_model(tmp_path / "model.pt")
    assert saved["architecture"]["framework"] == "nnunetv2" and rebuilt.config == network.config
    x = torch.randn(1, 4, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), network.eval()(x))


def test_a_source_of_fewer_channels_keeps_their_weights_and_starts_the_others_at_zero(
        tmp_path):
    """LST-AI's kind of source (T1 and FLAIR) on the study's four channels: the network
    answers the four channels exactly as the source answered its two."""
    from lesion_transfer.model.foreign import IncompatibleSource, adapt_input_channels

    two = {**DATASET, "channel_names": {"0": "T1w", "1": "FLAIR"}}
    folder, original = write_nnunet_folder(tmp_path, dataset=two, channels=2)
    model = read_nnunet_folder(folder)
    network = load_nnunet_network(model)
    mapping = adapt_input_channels(network, model.channels, ("t1", "t1ce", "t2", "flair"),
                                   folder)
    assert mapping == {"t1": "T1w", "t1ce": None, "t2": None, "flair": "FLAIR"}
    assert network.config.input_channels == 4
    x = torch.randn(1, 4, 16, 16, 16)
    original.decoder.deep_supervision = False
    with torch.no_grad():
        assert torch.allclose(network.eval()(x), original.eval()(x[:, [0, 3]]), atol=1e-6)
    with pytest.raises(IncompatibleSource) as caught:
        adapt_input_channels(load_nnunet_network(model), ("T1w", "PD"),
                             ("t1", "t1ce", "t2", "flair"), folder)
    assert str(folder) in str(caught.value) and "found ['PD']" in str(caught.value)


def test_a_source_the_study_cannot_feed_is_refused_with_every_problem_listed(tmp_path):
    """Checked before any job: channels it cannot match, another grid, another intensity
    scale, a patch its network cannot take; a source that fits passes."""
    from lesion_transfer.model.foreign import IncompatibleSource
    from lesion_transfer.model.sources import TargetInput, check_foreign_source

    pd = {**DATASET, "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "PD"}}
    folder, _ = write_nnunet_folder(tmp_path, dataset=pd)
    target = TargetInput(("t1", "t1ce", "t2", "flair"), 3.0, (2, 16, 16))
    with pytest.raises(IncompatibleSource) as caught:
        check_foreign_source(folder, None, target)
    message = str(caught.value)
    assert "4 problem(s)" in message
    assert "found ['PD']" in message
    assert f"{folder / 'plans.json'} configuration 3d_fullres: spacing [1.0, 1.0, 1.0] mm, " \
           "the target's preprocess.spacing_mm 3.0" in message
    assert "intensities normalised by ZScoreNormalization, the target's caches are z-score " \
           "in the brain remapped to [0, 1]" in message
    assert "cannot take the training patch [2, 16, 16]" in message
    fits = write_nnunet_folder(tmp_path / "fits")[0]
    source = check_foreign_source(fits, None, TargetInput(("t1", "t1ce", "t2", "flair"), 1.0,
                                                          (16, 16, 16), "zscore"))
    assert source.framework == "nnunetv2" and source.fold == "0"


def test_the_report_describes_an_nnunet_source_with_each_files_hash(tmp_path):
    """What the report shows of another framework's source instead of scores."""
    import csv
    import hashlib

    from lesion_transfer.evaluate.stages import describe_source_stage

    folder, _ = write_nnunet_folder(tmp_path)
    describe_source_stage(folder, None, tmp_path / "source.tsv")
    with (tmp_path / "source.tsv").open() as handle:
        rows = {r["what"]: r["value"] for r in csv.DictReader(handle, dialect="excel-tab")}
    checkpoint = folder / "fold_0" / "checkpoint_final.pth"
    assert rows["framework"] == "nnunetv2" and rows["network"] == "PlainConvUNet"
    assert rows["fold"] == "0" and rows["licence"] == "CC-BY-SA 4.0"
    assert rows["channels"] == "T1, T1ce, T2, FLAIR"
    assert rows["sha256 fold_0/checkpoint_final.pth"] == hashlib.sha256(
        checkpoint.read_bytes()).hexdigest()
    assert {"sha256 plans.json", "sha256 dataset.json"} <= set(rows)
