"""Model cards: what a model expects (channels, classes, preprocessing) and how it did."""

import json
from pathlib import Path

from lesion_transfer.io.atomic import write_text
from lesion_transfer.provenance import preprocessing_hash, shared_settings


class IncompatibleModelError(ValueError):
    pass


def make_card(model, task, cache_meta, metrics, epoch, config, dataset):
    settings = cache_meta["preprocessing"]
    return {
        "dataset": dataset,
        "channels": list(cache_meta["channels"]),
        "classes": list(task.labels),
        "unet": model.config.to_dict(),
        "preprocessing": shared_settings(settings),
        "preprocessing_hash": preprocessing_hash(settings),
        "best_epoch": epoch,
        "metrics": metrics,
        "config": config,
    }


def write_card(card, path):
    write_text(path, json.dumps(card, indent=1, sort_keys=True, default=str))


def read_card(path):
    return json.loads(Path(path).read_text())


def check_compatible(card, card_path, cache_meta, cache_folder):
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
