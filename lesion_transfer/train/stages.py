"""The two training rules as functions of paths: pretrain on the source, fine-tune on the
target. Each writes the final model atomically, a model card and history.tsv."""

import csv
import hashlib

import torch

from lesion_transfer.io.atomic import atomic_path
from lesion_transfer.model import STRATEGIES, UNet3D, UNetConfig
from lesion_transfer.model.files import load_model, save_model
from lesion_transfer.model.strategies import ALL, Strategy
from lesion_transfer.train.cards import check_compatible, make_card, read_card, write_card
from lesion_transfer.train.data import load_cached
from lesion_transfer.train.tasks import LesionTask, TumourTask
from lesion_transfer.train.trainer import Trainer

PRETRAIN = Strategy("pretraining on the source", False, ALL)


def seeded(seed, *stream):
    """Seed torch for one model's initialisation: each job its own, reproducible stream."""
    torch.manual_seed(int.from_bytes(hashlib.sha256(repr((seed, *stream)).encode()).digest()[:4],
                                     "little"))


def write_history(history, path):
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        # epochs without validation have no metrics: the columns are every epoch's keys
        columns = list(dict.fromkeys(key for row in history for key in row if key != "seconds"))
        columns.append("seconds")
        writer = csv.DictWriter(handle, fieldnames=columns, dialect="excel-tab",
                                lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(history)


def pretrain_stage(train_folders, validation_folders, unet, settings, pos_weight, outputs, log,
                   config_used, dataset, progress_stream=None):
    """outputs: model, card, history, checkpoints (folder), tensorboard (folder)."""
    train = [load_cached(f) for f in train_folders]
    validation = [load_cached(f) for f in validation_folders]
    task = LesionTask(train, pos_weight)
    log.info("pretraining on %d subjects, validating on %d; positive weight %.1f", len(train),
             len(validation), task.pos_weight)
    seeded(settings.seed, "source")
    model = UNet3D(UNetConfig(in_channels=len(train[0].meta["channels"]),
                              out_channels=task.out_channels, **unet))
    trainer = Trainer(model, task, PRETRAIN, train, validation, settings, outputs["checkpoints"],
                      log, outputs.get("tensorboard"), progress_stream)
    result = trainer.fit()
    save_model(model, result.best_state, outputs["model"], {"classes": list(task.labels)})
    write_card(make_card(model, task, train[0].meta, result.best_metrics, result.best_epoch,
                         {**config_used, "pos_weight": task.pos_weight}, dataset), outputs["card"])
    write_history(result.history, outputs["history"])
    return result


def finetune_stage(strategy_name, source_model, source_card, train_folders, validation_folders,
                   unet, settings, class_weights, outputs, log, config_used, dataset,
                   progress_stream=None, max_class_weight=None):
    """Fine-tune (or, for `scratch`, train afresh) on one fold's training subset."""
    strategy = STRATEGIES[strategy_name]
    train = [load_cached(f) for f in train_folders]
    validation = [load_cached(f) for f in validation_folders]
    task = TumourTask(train, class_weights, max_class_weight)
    seeded(settings.seed, strategy_name, len(train_folders))
    if strategy.from_source:
        card = read_card(source_card)
        for subject, folder in zip(train + validation, train_folders + validation_folders):
            check_compatible(card, source_card, subject.meta, folder)
        model, _ = load_model(source_model)
        model.replace_head(task.out_channels)
        log.info("%s: source model %s, head replaced for %d classes", strategy_name,
                 source_model, task.out_channels)
    else:
        model = UNet3D(UNetConfig(in_channels=len(train[0].meta["channels"]),
                                  out_channels=task.out_channels, **unet))
        log.info("%s: a fresh UNet", strategy_name)
    log.info("training on %d subjects, selecting on %d; class weights %s", len(train),
             len(validation), [round(w, 2) for w in task.class_weights])
    trainer = Trainer(model, task, strategy, train, validation, settings, outputs["checkpoints"],
                      log, outputs.get("tensorboard"), progress_stream)
    result = trainer.fit()
    save_model(model, result.best_state, outputs["model"],
               {"classes": list(task.labels), "strategy": strategy_name})
    write_card(make_card(model, task, train[0].meta, result.best_metrics, result.best_epoch,
                         {**config_used, "class_weights": task.class_weights,
                          "strategy": strategy_name}, dataset), outputs["card"])
    write_history(result.history, outputs["history"])
    return result
