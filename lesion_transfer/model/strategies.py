"""Transfer strategies: which parts of the UNet start from which pretrained model and which
train. The controls are arms of the same registry: fine-tuned like ft_all, from a source model
that must help (positive) or has nothing to give (negative: the study's source model with the
entries of each weight tensor permuted, so that it keeps every layer's weight statistics and
none of its features).

Adding a strategy is one entry in STRATEGIES (and its name in the config's list).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the workflow imports this module when it is parsed: no torch then
    from torch import nn

    from lesion_transfer.model.network import TransferNetwork


@dataclass(frozen=True)
class Strategy:
    description: str
    from_source: bool  # start from the source model's weights (head replaced unless keep_head)
    trainable: tuple[str, ...]  # parts that train: of "encoder", "decoder", "head"
    # lp_ft: train only `trainable` for the first fraction of epochs, then `then_trainable`
    then_trainable: tuple[str, ...] = ()
    switch_fraction: float = 0.0
    # which pretrained model it starts from: the study's source, or a control source
    source: str = "source"
    # the negative control: permute the entries of each pretrained tensor before training
    scramble_source: bool = False
    # keep the source's own last three layers (its classes must be the target's): the whole
    # pretrained network is the start, validated before the first step so that fine-tuning
    # that only loses what it knew keeps the start (Trainer.fit)
    keep_head: bool = False

    def trainable_at(self, epoch: int, epochs: int) -> tuple[str, ...]:
        if self.then_trainable and epoch >= int(round(self.switch_fraction * epochs)):
            return self.then_trainable
        return self.trainable


ALL = ("encoder", "decoder", "head")
STRATEGIES = {
    "scratch": Strategy("the same UNet trained from random weights", False, ALL),
    "ft_last_three": Strategy("source weights; only the new last three layers train", True,
                              ("head",)),
    "ft_decoder": Strategy("source weights; encoder frozen", True, ("decoder", "head")),
    "ft_all": Strategy("source weights; everything trains", True, ALL),
    "lp_ft": Strategy("source weights; the new layers first, then everything (Kumar et al. "
                      "2022)", True, ("head",), then_trainable=ALL, switch_fraction=0.5),
    # The head is kept: with a new head, fine-tuning at the arms' learning rate erased a
    # source that scored 0.85 as it was (bench/results/default_run.md, 2026-12-01), and a
    # control that can lose its effect cannot show that the study would have seen one
    "positive_control": Strategy("every layer trains from a model pretrained on the target's "
                                 "own task, on subjects outside its folds, its last three "
                                 "layers kept: a transfer that must help", True, ALL,
                                 source="positive", keep_head=True),
    "negative_control": Strategy("ft_all from the source model with the entries of each "
                                 "weight tensor permuted: the weights' scale, none of their "
                                 "features", True, ALL, scramble_source=True),
}
# the control sources, each pretrained by rule pretrain_control
CONTROL_SOURCES = ("positive",)


def apply_strategy(model: TransferNetwork, trainable: Collection[str]) -> list[nn.Parameter]:
    """Freeze every parameter whose part is not in `trainable` (no gradient; set_train_mode
    puts its norms in eval mode). The architecture says which part a parameter belongs to
    (its part_of): parts are parameter names, not submodules, because a network may keep its
    head inside its decoder (nnU-Net's UNetDecoder holds both, and a reference to its
    encoder)."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(model.part_of(name) in trainable)
    return [p for p in model.parameters() if p.requires_grad]


def set_train_mode(model: TransferNetwork, trainable: Collection[str]) -> None:
    """model.train() for the parts that train; the layers of frozen parts stay in eval mode
    so that batch norm running statistics in them do not move either."""
    model.train()
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()) and \
                model.part_of(name) not in trainable:
            module.eval()
