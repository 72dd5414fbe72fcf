"""The two training rules as functions of paths: pretrain on the source, fine-tune on the
target. Each writes the final model atomically, a model card and history.tsv."""

import hashlib
from dataclasses import dataclass

import torch

from lesion_transfer.io.atomic import write_tsv
from lesion_transfer.model import STRATEGIES, UNet3D, UNetConfig
from lesion_transfer.model.files import load_model, save_model
from lesion_transfer.model.strategies import ALL, Strategy
from lesion_transfer.train.cards import check_compatible, make_card, read_card, write_card
from lesion_transfer.train.data import load_cached
from lesion_transfer.train.tasks import LesionTask, TumourTask
from lesion_transfer.train.trainer import Trainer, TrainingDiverged

PRETRAIN = Strategy("pretraining on the source", False, ALL)
PRETRAIN_CONTROL = {
    "positive": Strategy("pretraining on the target's task, on the control dataset", False, ALL),
}


@dataclass
class TrainingJob:
    """One training rule's job: a model and its task, the subjects, the settings, where the
    outputs go (model, card, history, checkpoints, tensorboard) and where it logs."""

    model: UNet3D
    task: object
    strategy: Strategy
    train: list
    validation: list
    settings: object
    outputs: dict
    log: object
    progress_stream: object = None


def seeded(seed, *stream):
    """Seed torch for one model's initialisation: each job its own, reproducible stream."""
    torch.manual_seed(int.from_bytes(hashlib.sha256(repr((seed, *stream)).encode()).digest()[:4],
                                     "little"))


def scramble_weights(module, generator):
    """Permute the entries of every parameter tensor of `module` in place (seeded).

    Each tensor keeps its values, hence its mean, spread and norm, which set how a network
    trains (Raghu et al. 2019 find the scale of pretrained weights alone speeds convergence),
    while the arrangement that made them features is gone. Pretraining on shuffled labels,
    the usual negative control, still learns features of the images (Maennel et al. 2020);
    measured here, such a source beat scratch at 6 cases (bench/results/default_run.md).
    """
    with torch.no_grad():
        for parameter in module.parameters():
            flat = parameter.view(-1)
            flat.copy_(flat[torch.randperm(flat.numel(), generator=generator,
                                           device="cpu").to(flat.device)])
    return module


def write_history(history, path):
    # epochs without validation have no metrics: the columns are every epoch's keys
    columns = list(dict.fromkeys(key for row in history for key in row if key != "seconds"))
    write_tsv(history, path, [*columns, "seconds"])


def pretrain_source_stage(train_folders, validation_folders, unet, settings, pos_weight, outputs,
                          log, config_used, dataset, progress_stream=None):
    """outputs: model, card, history, checkpoints (folder), tensorboard (folder)."""
    train = [load_cached(f) for f in train_folders]
    validation = [load_cached(f) for f in validation_folders]
    task = LesionTask(train, pos_weight, settings.loss)
    log.info("pretraining on %d subjects, validating on %d; positive weight %.1f", len(train),
             len(validation), task.pos_weight)
    seeded(settings.seed, "source")
    model = UNet3D(UNetConfig(in_channels=len(train[0].meta["channels"]),
                              out_channels=task.out_channels, **unet))
    return train_and_save(TrainingJob(model, task, PRETRAIN, train, validation, settings,
                                      outputs, log, progress_stream),
                          {}, {**config_used, "pos_weight": task.pos_weight}, dataset)


def pretrain_control_stage(control, train_folders, validation_folders, unet, settings, weights,
                           outputs, log, config_used, dataset, progress_stream=None):
    """A control's source model: for the positive control, the target's task (four classes,
    weighted CE) on the control dataset. weights: {class_weights, max_class_weight} (the
    pretraining block's values). The negative control needs no pretraining of its own: it
    scrambles the study's source (scramble_weights)."""
    strategy = PRETRAIN_CONTROL[control]
    train = [load_cached(f) for f in train_folders]
    validation = [load_cached(f) for f in validation_folders]
    task = TumourTask(train, weights["class_weights"], weights["max_class_weight"],
                      settings.loss)
    log.info("%s control: %s; %d training subjects of %s, %d validating", control,
             strategy.description, len(train), dataset, len(validation))
    seeded(settings.seed, "control", control)
    model = UNet3D(UNetConfig(in_channels=len(train[0].meta["channels"]),
                              out_channels=task.out_channels, **unet))
    return train_and_save(TrainingJob(model, task, strategy, train, validation, settings,
                                      outputs, log, progress_stream),
                          {"control": control},
                          {**config_used, "class_weights": task.class_weights,
                           "control": control}, dataset)


def finetune_stage(strategy_name, source_model, source_card, train_folders, validation_folders,
                   unet, settings, class_weights, outputs, log, config_used, dataset,
                   progress_stream=None, *, max_class_weight):
    """Fine-tune (or, for `scratch`, train afresh) on one fold's training subset."""
    strategy = STRATEGIES[strategy_name]
    train = [load_cached(f) for f in train_folders]
    validation = [load_cached(f) for f in validation_folders]
    task = TumourTask(train, class_weights, max_class_weight, settings.loss)
    # one stream per training run, whatever the arm and size: new layers start alike in
    # every arm of a run, so that arms (and sizes) are paired within it
    seeded(settings.seed, "new layers")
    if strategy.from_source:
        card = read_card(source_card)
        for subject, folder in zip(train + validation, train_folders + validation_folders):
            check_compatible(card, source_card, subject.meta, folder)
        model, _ = load_model(source_model)
        if strategy.scramble_source:
            scramble_weights(model, torch.Generator().manual_seed(torch.initial_seed()))
            log.info("%s: the entries of each of the source's weight tensors permuted",
                     strategy_name)
        model.replace_head(task.out_channels)
        log.info("%s: starting from %s, head replaced for %d classes", strategy_name,
                 source_model, task.out_channels)
    else:
        model = UNet3D(UNetConfig(in_channels=len(train[0].meta["channels"]),
                                  out_channels=task.out_channels, **unet))
        log.info("%s: a fresh UNet", strategy_name)
    log.info("training on %d subjects, selecting on %d; class weights %s", len(train),
             len(validation), [round(w, 2) for w in task.class_weights])
    return train_and_save(TrainingJob(model, task, strategy, train, validation, settings,
                                      outputs, log, progress_stream),
                          {"strategy": strategy_name},
                          {**config_used, "class_weights": task.class_weights,
                           "strategy": strategy_name}, dataset)


def train_and_save(job, model_extra, card_config, dataset):
    """The tail every training rule shares: fit (resuming from a checkpoint), then the best
    epoch's weights, the model card and the history, each written atomically; then the
    checkpoint is removed."""
    trainer = Trainer(job.model, job.task, job.strategy, job.train, job.validation, job.settings,
                      job.outputs["checkpoints"], job.log, job.outputs.get("tensorboard"),
                      job.progress_stream)
    try:
        result = trainer.fit()
    except TrainingDiverged as error:
        block = "pretrain" if job.strategy in (PRETRAIN, *PRETRAIN_CONTROL.values()) else "finetune"
        raise TrainingDiverged(f"{error}: lower config key 'train.{block}.learning_rate' "
                               f"({job.settings.learning_rate})") from None
    save_model(job.model, result.best_state, job.outputs["model"],
               {"classes": list(job.task.labels), **model_extra})
    write_card(make_card(job.model, job.task, job.train[0].meta, result.best_metrics,
                         result.best_epoch, card_config, dataset, result.epochs_run,
                         {"device": str(trainer.device), "precision": trainer.precision,
                          "torch": torch.__version__}),
               job.outputs["card"])
    write_history(result.history, job.outputs["history"])
    # the checkpoint only serves a killed job; the final model holds what it would resume to
    trainer.checkpoint.unlink(missing_ok=True)
    return result
