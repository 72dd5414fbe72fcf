"""A network another framework built (nnU-Net's, MONAI's), as the trainer and the strategies
see every network: parts by parameter name, a head that can be replaced, a description that
rebuilds it.

Each framework's module gives an architecture: a frozen dataclass with `build(device)` (the
network, built by that framework's own package), `part(name, network)` ("encoder",
"decoder" or "head" of a parameter or layer name, declared once per architecture),
`with_classes(n)`, `to_dict()` (what model files, checkpoints and model cards record, with
its `framework`) and `from_dict` (model.files rebuilds a saved network by it).
"""

from torch import nn

from lesion_transfer.io.broken import BrokenFileError


class ForeignNetwork(nn.Module):
    def __init__(self, architecture):
        super().__init__()
        self.config = architecture
        self.network = architecture.build()

    def forward(self, x):
        return self.network(x)

    def part_of(self, name):
        return self.config.part(name.removeprefix("network."), self.network)

    def replace_head(self, num_classes):
        """New head layers for `num_classes`, initialised as the framework initialises a
        network; every other weight kept."""
        kept = {k: v for k, v in self.network.state_dict().items() if self.part_of(k) != "head"}
        device = next(self.parameters()).device
        self.config = self.config.with_classes(num_classes)
        self.network = self.config.build().to(device)
        missing, unexpected = self.network.load_state_dict(kept, strict=False)
        assert not unexpected and all(self.part_of(k) == "head" for k in missing), \
            (missing, unexpected)
        return self


def check_shapes(architecture, weights, path, described_by):
    """Refuse weights that are not the tensors the architecture describes, naming the first
    that differs in the network's own order (the input side first), before any memory is
    spent on the network (torch's meta device)."""
    expected = {k: tuple(v.shape) for k, v in architecture.build("meta").state_dict().items()}
    held = {k: tuple(v.shape) for k, v in weights.items()}
    if held == expected:
        return
    key = [k for k in expected if held.get(k) != expected[k]] or \
        sorted(set(held) - set(expected))
    in_file = list(held.get(key[0], ())) or "missing"
    described = list(expected.get(key[0], ())) or "absent"
    raise BrokenFileError(path, f"expected the tensors {described_by} describes, found others: "
                                f"{key[0]} is {in_file} in the weights, {described} in "
                                f"{described_by}")
