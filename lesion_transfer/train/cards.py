"""Model cards: what a model expects (channels, classes, preprocessing) and how it did."""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lesion_transfer.errors import Refusal
from lesion_transfer.io.atomic import write_text
from lesion_transfer.io.broken import BrokenFileError, reading
from lesion_transfer.provenance import preprocessing_hash, shared_settings

if TYPE_CHECKING:  # torch is a second's import that reading a card does not need
    from lesion_transfer.model.network import TransferNetwork


class IncompatibleModelError(Refusal):
    """A model whose channels, classes, UNet or preprocessing do not fit the study."""


Card = dict[str, Any]  # a model_card.json


def make_card(model: "TransferNetwork", task: Any, cache_meta: Mapping[str, Any],
              metrics: Mapping[str, float], epoch: int, config: Mapping[str, Any], dataset: str,
              epochs_run: int | None = None, trained_with: Mapping[str, str] | None = None
              ) -> Card:
    """`trained_with`: the device and precision the job resolved (`auto` depends on the
    machine) and the torch version."""
    settings = cache_meta["preprocessing"]
    return {
        "dataset": dataset,
        "channels": list(cache_meta["channels"]),
        "classes": list(task.labels),
        # this project's UNet, or another framework's network (its dict names the framework)
        "unet" if "framework" not in model.config.to_dict() else "architecture":
            model.config.to_dict(),
        "preprocessing": shared_settings(settings),
        "preprocessing_hash": preprocessing_hash(settings),
        "best_epoch": epoch,
        "epochs_run": epochs_run,
        "metrics": metrics,
        "config": config,
        "trained_with": trained_with,
    }


def write_card(card: Card, path: str | Path) -> None:
    write_text(path, json.dumps(card, indent=1, sort_keys=True, default=str))


def read_card(path: str | Path) -> Card:
    with reading(path, "a model card in JSON"):
        card = json.loads(Path(path).read_text())
    if not isinstance(card, dict):
        raise BrokenFileError(path, f"expected a model card (a JSON object), found a JSON "
                                    f"{type(card).__name__}")
    return card


def check_given_source_model(model_path: str | Path, unet: Mapping[str, Any],
                             target_preprocessing: Mapping[str, Any], channels: Sequence[str]
                             ) -> Path:
    """A source model named in the config (`train.source_model`), checked before any job:
    it exists, its card lies beside it, and it fits the target and the configured UNet."""
    model_path = Path(model_path)
    card_path = model_path.with_name("model_card.json")
    for path, what in ((model_path, "a model file"), (card_path, "its model card")):
        if not path.is_file():
            raise IncompatibleModelError(
                f"config key 'train.source_model' {str(model_path)!r}: expected {what} at "
                f"{path}, found {'a folder' if path.exists() else 'nothing'}")
    card = read_card(card_path)
    check_compatible(card, card_path, {"channels": list(channels),
                                       "preprocessing": target_preprocessing},
                     "the target's configured preprocessing")
    if card.get("unet", {}).get("width") != unet["width"] or \
            card.get("unet", {}).get("depth") != unet["depth"] or \
            card.get("unet", {}).get("norm") != unet["norm"]:
        raise IncompatibleModelError(
            f"config key 'train.unet' {dict(unet)} and source model {card_path} "
            f"({card.get('unet')}): expected the same width, depth and norm, so that scratch "
            f"trains the network the fine-tuned models start from")
    return card_path


def check_compatible(card: Card, card_path: str | Path, cache_meta: Mapping[str, Any],
                     cache_folder: str | Path) -> None:
    """Refuse a source model whose channels or preprocessing differ from the target cache's."""
    if list(card["channels"]) != list(cache_meta["channels"]):
        raise IncompatibleModelError(
            f"source model {card_path}: channels {card['channels']} differ from the target "
            f"cache's {cache_meta['channels']} ({cache_folder})")
    target = shared_settings(cache_meta["preprocessing"])
    if card["preprocessing_hash"] != preprocessing_hash(cache_meta["preprocessing"]):
        differing = {k: (card["preprocessing"].get(k), target.get(k)) for k in target
                     if card["preprocessing"].get(k) != target.get(k)}
        described = "; ".join(f"{k}: source {a!r}, target {b!r}" for k, (a, b) in differing.items())
        raise IncompatibleModelError(
            f"source model {card_path}: preprocessing hash {card['preprocessing_hash']} differs "
            f"from the target cache's {preprocessing_hash(cache_meta['preprocessing'])} "
            f"({cache_folder}): {described}")


def check_same_classes(card: Card, card_path: str | Path, labels: Sequence[int]) -> None:
    """A source whose head is kept (the positive control) must predict the target's classes,
    in the target's order."""
    if list(card.get("classes", [])) != list(labels):
        raise IncompatibleModelError(
            f"source model {card_path}: expected the target's classes {list(labels)} to keep "
            f"its last three layers, found {card.get('classes')}")
