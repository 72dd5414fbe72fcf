"""MONAI networks as sources (issue 24): bundles written here as MONAI's model zoo lays them
out, with random weights, then read, built, split into parts and refused when malformed."""

import json

import pytest
import torch
from conftest import RunsACommand

from lesion_transfer.model.monai_bundles import (
    MonaiBundleError,
    load_monai_network,
    read_monai_bundle,
)
from lesion_transfer.model.strategies import STRATEGIES, apply_strategy, set_train_mode
from lesion_transfer.model.tensor_files import UnsafeModelFile

# small versions of each network, arguments as a bundle's network_def writes them
NETWORKS = {
    "BasicUNet": {"spatial_dims": 3, "in_channels": 4, "out_channels": 3,
                  "features": [4, 4, 8, 8, 16, 4]},
    "SegResNet": {"blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1], "init_filters": 8,
                  "in_channels": 4, "out_channels": 3, "dropout_prob": 0.2},
    "UNet": {"spatial_dims": 3, "in_channels": 4, "out_channels": 3, "channels": [4, 8, 16],
             "strides": [2, 2], "num_res_units": 1, "norm": "batch"},
}


def write_bundle(root, network="SegResNet", arguments=None, weights=None, seed=0,
                 preprocessing=None):
    """brats_mri_segmentation's layout: configs/inference.json (expressions beside
    network_def, as bundles have them), configs/metadata.json, LICENSE, models/model.pt."""
    from monai.networks import nets

    arguments = NETWORKS[network] if arguments is None else arguments
    torch.manual_seed(seed)
    built = getattr(nets, network)(**arguments)
    folder = root / f"{network.lower()}_bundle"
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "configs" / "inference.json").write_text(json.dumps({
        "imports": ["$import glob"], "bundle_root": ".",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": {"_target_": network, **arguments},
        "network": "$@network_def.to(@device)",
        **({"preprocessing": preprocessing} if preprocessing is not None else {})}))
    (folder / "configs" / "metadata.json").write_text(json.dumps({
        "network_data_format": {"inputs": {"image": {
            "type": "image", "num_channels": 4, "spatial_shape": [96, 96, 96],
            "channel_def": {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}}},
            "outputs": {"pred": {"num_channels": 3}}}}))
    (folder / "LICENSE").write_text("\nApache License\nVersion 2.0, January 2004\n")
    torch.save(built.state_dict() if weights is None else weights, folder / "models" / "model.pt")
    return folder, built


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_a_bundle_is_read_and_built_into_its_network(network, tmp_path):
    folder, original = write_bundle(tmp_path, network)
    bundle = read_monai_bundle(folder)
    assert bundle.architecture.network == network and bundle.architecture.num_classes == 3
    assert bundle.channels == ("T1c", "T1", "T2", "FLAIR")
    assert bundle.licence == "Apache License"
    loaded = load_monai_network(bundle).eval()
    x = torch.randn(1, 4, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), original.eval()(x))


def test_a_checkpoint_that_holds_the_state_dict_under_model_is_read_too(tmp_path):
    folder, original = write_bundle(tmp_path, "BasicUNet")
    torch.save({"model": original.state_dict(), "epoch": 300}, folder / "models" / "model.pt")
    loaded = load_monai_network(read_monai_bundle(folder))
    assert all(torch.equal(v, loaded.network.state_dict()[k])
               for k, v in original.state_dict().items())


@pytest.mark.parametrize("network, head_layers", [
    ("BasicUNet", {"upcat_1.convs.conv_0", "upcat_1.convs.conv_1", "final_conv"}),
    ("SegResNet", {"up_layers.2.0.conv1", "up_layers.2.0.conv2", "conv_final.2"}),
    ("UNet", {"model.2.0", "model.2.1.conv.unit0"})])
def test_each_part_is_declared_once_and_the_head_gives_the_classes(network, head_layers,
                                                                   tmp_path):
    loaded = load_monai_network(read_monai_bundle(write_bundle(tmp_path, network)[0]))
    parts = {}
    for name, _ in loaded.named_parameters():
        parts.setdefault(loaded.part_of(name), []).append(name.removeprefix("network."))
    assert set(parts) == {"encoder", "decoder", "head"}
    convolutions = {n.rsplit(".", 2)[0] if ".conv.weight" in n else n.rsplit(".", 1)[0]
                    for n in parts["head"] if n.endswith("weight") and
                    loaded.network.get_parameter(n).dim() == 5}
    assert convolutions == head_layers
    # the classes come out of the head: its last layer has out_channels outputs
    last = [n for n, p in loaded.network.named_parameters() if p.dim() == 5][-1]
    assert loaded.part_of(last) == "head"


@pytest.mark.parametrize("network", sorted(NETWORKS))
@pytest.mark.parametrize("strategy", ["ft_last_three", "ft_decoder", "ft_all"])
def test_what_a_strategy_freezes_stays_bit_identical(network, strategy, tmp_path):
    loaded = load_monai_network(read_monai_bundle(write_bundle(tmp_path, network)[0]))
    loaded.replace_head(4)
    trainable = STRATEGIES[strategy].trainable_at(0, 10)
    before = {k: v.detach().clone() for k, v in loaded.state_dict().items()}
    optimizer = torch.optim.Adam(apply_strategy(loaded, trainable), lr=0.01)
    set_train_mode(loaded, trainable)
    loaded(torch.randn(2, 4, 32, 32, 32)).square().mean().backward()
    optimizer.step()
    moved = {k for k, v in loaded.state_dict().items() if not torch.equal(v, before[k])}
    for name in before:
        if loaded.part_of(name) not in trainable:
            assert name not in moved, f"{network} {strategy}: frozen {name} changed"
    assert {loaded.part_of(k) for k in moved} == set(trainable)


def test_a_new_head_keeps_every_other_weight(tmp_path):
    loaded = load_monai_network(read_monai_bundle(write_bundle(tmp_path, "SegResNet")[0]))
    before = {k: v.clone() for k, v in loaded.state_dict().items()}
    loaded.replace_head(4)
    assert loaded.config.num_classes == 4
    assert loaded(torch.zeros(1, 4, 32, 32, 32)).shape == (1, 4, 32, 32, 32)
    after = loaded.state_dict()
    for name, value in before.items():
        if loaded.part_of(name) != "head":
            assert torch.equal(value, after[name]), name


# --- refused, naming the file ---------------------------------------------------------------


@pytest.mark.parametrize("change, expected", [
    ({"_target_": "monai.networks.nets.ViT"}, "network_def._target_: expected one of"),
    ({"_target_": "os.system"}, "network_def._target_: expected one of"),
    ({"init_filters": "$__import__('os').system('true')"},
     "network_def.init_filters: expected a plain value"),
    ({"blocks_down": [1, "@depth", 2, 4]}, "network_def.blocks_down[1]: expected a plain value"),
    ({"spatial_dims": 2}, "network_def.spatial_dims: expected 3, found 2"),
])
def test_network_def_is_read_as_plain_values_only(change, expected, tmp_path):
    folder, _ = write_bundle(tmp_path)
    path = folder / "configs" / "inference.json"
    config = json.loads(path.read_text())
    config["network_def"].update(change)
    path.write_text(json.dumps(config))
    with pytest.raises(MonaiBundleError) as caught:
        read_monai_bundle(folder)
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_a_pickled_object_in_the_weights_is_refused_before_it_runs(tmp_path):
    folder, original = write_bundle(tmp_path, "BasicUNet")
    torch.save({"model": original.state_dict(), "trainer": RunsACommand(tmp_path / "ran")},
               folder / "models" / "model.pt")
    bundle = read_monai_bundle(folder)
    with pytest.raises(UnsafeModelFile) as caught:
        load_monai_network(bundle)
    assert str(folder / "models" / "model.pt") in str(caught.value)
    assert not (tmp_path / "ran").exists()


def test_weights_of_another_network_are_refused_naming_the_tensor(tmp_path):
    other = {**NETWORKS["SegResNet"], "in_channels": 2}
    folder, _ = write_bundle(tmp_path, "SegResNet", arguments=other)
    path = folder / "configs" / "inference.json"
    config = json.loads(path.read_text())
    config["network_def"]["in_channels"] = 4
    path.write_text(json.dumps(config))
    with pytest.raises(MonaiBundleError) as caught:
        load_monai_network(read_monai_bundle(folder))
    message = str(caught.value)
    assert str(folder / "models" / "model.pt") in message
    assert "convInit.conv.weight is [8, 2, 3, 3, 3] in the weights, [8, 4, 3, 3, 3] in " \
           "network_def's SegResNet" in message


def test_a_fine_tuned_network_is_saved_and_rebuilt_from_its_recorded_architecture(tmp_path):
    from lesion_transfer.model.files import load_model, save_model
    from lesion_transfer.model.tensor_files import BrokenModelFile

    network = load_monai_network(read_monai_bundle(write_bundle(tmp_path, "BasicUNet")[0]))
    network.replace_head(4)
    save_model(network, network.state_dict(), tmp_path / "model.pt", {"classes": [0, 1, 2, 4]})
    rebuilt, saved = load_model(tmp_path / "model.pt")
    assert saved["architecture"] == {"network": "BasicUNet", "framework": "monai",
                                     "arguments": {**NETWORKS["BasicUNet"], "out_channels": 4}}
    x = torch.randn(1, 4, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), network.eval()(x))
    # a framework lesion-transfer does not build from a file is refused, naming the file
    saved["architecture"]["framework"] = "keras"
    torch.save(saved, tmp_path / "other.pt")
    with pytest.raises(BrokenModelFile, match=r"other.pt: expected an architecture of one of "
                                              r"the frameworks nnunetv2, monai, found 'keras'"):
        load_model(tmp_path / "other.pt")


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_channels_are_matched_by_name_whatever_their_order(network, tmp_path):
    """A bundle whose channels come in another order (T1c, T1, T2, FLAIR), and one residual
    unit that takes the input twice (MONAI's UNet): every input weight follows its channel."""
    from lesion_transfer.model.foreign import adapt_input_channels, input_projections

    folder, original = write_bundle(tmp_path, network)
    bundle = read_monai_bundle(folder)
    loaded = load_monai_network(bundle)
    expected_inputs = {"UNet": 2, "BasicUNet": 1, "SegResNet": 1}[network]
    assert len(input_projections(bundle.architecture)) == expected_inputs
    mapping = adapt_input_channels(loaded, bundle.channels, ("t1", "t1ce", "t2", "flair"),
                                   folder)
    assert mapping == {"t1": "T1", "t1ce": "T1c", "t2": "T2", "flair": "FLAIR"}
    x = torch.randn(1, 4, 32, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(x), original.eval()(x[:, [1, 0, 2, 3]]),
                              atol=1e-5)


def test_a_patch_the_network_cannot_take_is_refused_before_any_job(tmp_path):
    """BasicUNet pools four times: a 16-voxel patch leaves one voxel, which its instance
    norm refuses; 32 fits. Shapes only (the meta device), no weights read."""
    from lesion_transfer.model.foreign import IncompatibleSource
    from lesion_transfer.model.sources import TargetInput, check_foreign_source

    folder, _ = write_bundle(tmp_path, "BasicUNet")
    channels = ("t1", "t1ce", "t2", "flair")
    with pytest.raises(IncompatibleSource, match=r"1 problem\(s\).*\n  - its network cannot "
                                                 r"take the training patch \[16, 16, 16\]"):
        check_foreign_source(folder, None, TargetInput(channels, 1.0, (16, 16, 16)))
    assert check_foreign_source(folder, None, TargetInput(channels, 1.0, (32, 32, 32)))


# brats_mri_segmentation's preprocessing (MONAI's model zoo), with a resampling added
LOAD = {"_target_": "LoadImaged", "keys": "image"}
ZSCORE = {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True,
          "channel_wise": True}


def resample(mm):
    return {"_target_": "Spacingd", "keys": "image", "pixdim": mm, "mode": "bilinear"}


@pytest.mark.parametrize("transforms, scale, expected", [
    ([LOAD, resample([1.0, 1.0, 1.0]), ZSCORE], "zscore", None),
    ([LOAD, resample([1.0, 1.0, 1.0]), ZSCORE], "unit",
     "intensities normalised by NormalizeIntensityd(nonzero=True, channel_wise=True), the "
     "target's caches are z-score in the brain remapped to [0, 1] (preprocess.intensity: unit)"),
    ([LOAD, resample(1.5), ZSCORE], "zscore",
     "spacing [1.5, 1.5, 1.5] mm, the target's preprocess.spacing_mm 1.0"),
    ([LOAD, {"_target_": "monai.transforms.ScaleIntensityd", "keys": "image", "minv": 0.0,
             "maxv": 1.0}], "unit",
     "intensities normalised by ScaleIntensityd(minv=0.0, maxv=1.0)"),
    ([LOAD], "unit", "intensities normalised by no intensity transform (raw intensities)"),
])
def test_what_a_bundles_preprocessing_does_is_checked_against_the_caches(transforms, scale,
                                                                         expected, tmp_path):
    """Read from the bundle's own `preprocessing` (as plain values): its resampling and its
    intensity transform; a bundle that states neither is taken as it is (test above)."""
    from lesion_transfer.model.foreign import IncompatibleSource
    from lesion_transfer.model.sources import TargetInput, check_foreign_source

    folder, _ = write_bundle(tmp_path, "BasicUNet",
                             preprocessing={"_target_": "Compose", "transforms": transforms})
    target = TargetInput(("t1", "t1ce", "t2", "flair"), 1.0, (32, 32, 32), scale)
    if expected is None:
        assert check_foreign_source(folder, None, target).framework == "monai"
        return
    with pytest.raises(IncompatibleSource) as caught:
        check_foreign_source(folder, None, target)
    message = str(caught.value)
    assert "1 problem(s)" in message and expected in message, message
    assert str(folder / "configs" / "inference.json") in message
