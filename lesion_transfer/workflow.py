"""Glue for the workflow scripts: logging into the rule's log file; a refusal shown as its
message alone, a broken input named with the rule that wrote it."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lesion_transfer.errors import Refusal
from lesion_transfer.io.broken import BrokenFileError

if TYPE_CHECKING:  # the scripts import this module first: the stages load torch
    from lesion_transfer.train.stages import TrainingData, TrainingOutputs, TrainingSetup


@contextlib.contextmanager
def rule_log(path: str | Path, name: str = "lesion_transfer") -> Iterator[logging.Logger]:
    """Log to the rule's log file (and stderr); an exception is logged before it propagates."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    handlers: list[logging.StreamHandler[Any]] = [logging.FileHandler(path, mode="w"),
                                                  logging.StreamHandler(sys.stderr)]
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    # Progress bars write to the same file object as the log records: two handles on one
    # file would overwrite each other's bytes.
    logger.progress_stream = handlers[0].stream  # type: ignore[attr-defined]
    try:
        yield logger
    except BrokenFileError as error:
        logger.error("refused: %s", BrokenFileError(
            error.path, f"{error.detail}. {how_to_rewrite(error.path)}"))
        raise SystemExit(1) from None
    except Refusal as error:
        # the message names the file or key, what was expected and what was found: a
        # traceback would bury it (a bug, below, keeps its traceback)
        logger.error("refused: %s", error)
        raise SystemExit(1) from None
    except Exception:
        logger.exception("failed")
        raise
    finally:
        logger.info("libraries loaded: %s", ", ".join(heavy_libraries_loaded()) or "none")
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()


# Each costs seconds to import in a fresh process (bench/results/job_startup.md): a job
# should load only those its stage needs.
HEAVY_LIBRARIES = ("torch", "monai", "ants", "deepbet", "SimpleITK", "matplotlib")


def heavy_libraries_loaded() -> list[str]:
    """The expensive libraries this process has imported so far, in HEAVY_LIBRARIES' order."""
    return [name for name in HEAVY_LIBRARIES if name in sys.modules]


def written_by(path: str | Path) -> str | None:
    """The rule that wrote `path` in this working directory, from Snakemake's record of
    every output (.snakemake/metadata/<base64 of the path>), or None."""
    candidates = {str(path)}
    try:
        candidates.add(str(Path(path).resolve().relative_to(Path.cwd().resolve())))
    except ValueError:
        pass
    for name in candidates:
        record = Path(".snakemake", "metadata",
                      base64.urlsafe_b64encode(name.encode()).decode())
        if record.is_file() and len(record.name) < 255:
            try:
                return json.loads(record.read_text()).get("rule")
            except (OSError, ValueError):
                return None
    return None


def how_to_rewrite(path: str | Path) -> str:
    rule = written_by(path)
    source = f"It was written by rule {rule}; write" if rule else "Write"
    return (f"{source} it again by adding `--force {path}` to your snakemake command (for the "
            f"default study: `snakemake --cores 1 --force {path}`), then run the command again "
            f"without it: what depends on the file follows")


def use_threads(threads: int) -> None:
    """Give ITK (ANTs), OpenMP and torch the rule's thread count, no more."""
    import os

    for variable in ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS"):
        os.environ[variable] = str(threads)
    torch = sys.modules.get("torch")  # set only if loaded: importing it costs seconds
    if torch is not None:
        torch.set_num_threads(threads)


# How far a job that is not a training job steps back: at 19 it runs on what training leaves.
BACKGROUND_NICENESS = 19


def yield_cpu_to_training() -> None:
    """Every job but the training and inference ones runs at the lowest CPU priority, so a
    training job beside it keeps its cores: its OpenMP threads spin while they wait (the
    Snakefile's openmp_wait_policy) and lose a whole time slice to every process the kernel
    puts in their place. Measured on 2 cores, an FT_All step beside three busy processes: 1.33 s
    at equal priority, 0.14 s with them at 19, 0.14 s alone (bench/results/default_run.md)."""
    import os

    os.nice(BACKGROUND_NICENESS - os.nice(0))


def training_setup(training: Mapping[str, Any], block: str, dataset: str, device: str,
                   run: tuple[int, int] | None = None) -> TrainingSetup:
    """A training job's TrainingSetup from its `training` params (training_params in
    rules/common.smk: the block, the UNet, precision, seed), on the job's device. block: the
    config block's name under train (named in messages); run: the (fold, repeat) of a
    fine-tuning job, whose seed it takes (train.trainer.run_seed) and its card records."""
    from lesion_transfer.train.stages import LossWeights, TrainingSetup
    from lesion_transfer.train.trainer import TrainSettings, run_seed

    seed = run_seed(training["seed"], *run) if run else training["seed"]
    values = training["settings"]
    recorded = {**training, "run": {"fold": run[0], "repeat": run[1], "seed": seed}} \
        if run else dict(training)
    return TrainingSetup(
        block=f"train.{block}",
        settings=TrainSettings.from_config(values, seed, device, training["precision"]),
        unet=training["unet"],
        weights=LossWeights(values.get("pos_weight"), values.get("class_weights"),
                            values["max_class_weight"]),
        dataset=dataset, recorded=recorded)


def training_data(inputs: Any, foreign_source: Mapping[str, Any] | None = None
                  ) -> TrainingData:
    """A training rule's cache folders (its `train` and `validation` inputs name each
    subject's meta.json) and, fine-tuning from a source, the source's files: a model file
    and its card (`source_model`, `source_card` inputs), or another framework's folder
    (`foreign_source`: its path and fold, from training_params), read by every arm that
    starts from no model file."""
    from lesion_transfer.train.stages import TrainingData

    source_model, source_card = inputs.get("source_model"), inputs.get("source_card")
    fold = None
    if source_model is None and foreign_source:
        source_model, fold = foreign_source["path"], foreign_source["fold"]
    return TrainingData(train=[Path(p).parent for p in inputs.train],
                        validation=[Path(p).parent for p in inputs.validation],
                        source_model=Path(source_model) if source_model else None,
                        source_card=Path(source_card) if source_card else None,
                        source_fold=fold)


def training_outputs(output: Any, params: Any, log: logging.Logger) -> TrainingOutputs:
    """A training rule's outputs, with the checkpoint and TensorBoard folders of its params
    and the progress bar on its log's stream."""
    from lesion_transfer.train.stages import TrainingOutputs

    return TrainingOutputs(model=Path(output.model), card=Path(output.card),
                           history=Path(output.history), checkpoints=Path(params.checkpoints),
                           tensorboard=Path(params.tensorboard),
                           progress=getattr(log, "progress_stream", None))


# A training run of a fine-tuning arm is (fold, repeat). Repeat 0's files keep the layout of a
# study with one run (fold0/), so that a finished study keeps its models; repeat r >= 1 adds a
# suffix (fold0_repeat1/). This is the one owner of that format.
REPEAT_SUFFIX = "_repeat"
REPEAT_SUFFIX_PATTERN = rf"({REPEAT_SUFFIX}[1-9][0-9]*)?"


def repeat_suffix(repeat: int) -> str:
    """The part of a run's folder name after `fold<k>`: empty for repeat 0."""
    return f"{REPEAT_SUFFIX}{repeat}" if repeat else ""


def repeat_of(suffix: str) -> int:
    """The repeat a suffix names (the inverse of repeat_suffix)."""
    return int(suffix.removeprefix(REPEAT_SUFFIX) or 0)
