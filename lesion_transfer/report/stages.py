"""The report rules as functions of paths: aggregate every model's scores into tables and the
learning curve; draw the qualitative panels."""

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lesion_transfer.io.atomic import atomic_path, write_text, write_tsv
from lesion_transfer.io.cache import CachedSubject
from lesion_transfer.report import claims, figures, tables
from lesion_transfer.report.settings import ReportSettings

FLOATS = ".6g"  # the tables' floats: six significant digits


@dataclass(frozen=True)
class StudyScores:
    """What the tables are made of: every model's scores on the subjects' own grids (the
    headline), the same models' scores in template space, the target's subjects table
    (grades) and the source's validation scores."""

    native: list
    template: list
    subjects_table: Path
    source: Path


def aggregate_results_stage(settings: ReportSettings, inputs: StudyScores, outputs: dict,
                            log: logging.Logger) -> None:
    """outputs:
    summary, summary_template, overview, by_grade, comparisons, comparisons_markdown, claims,
    claims_report, claims_tests, calibration, source, learning_curve."""
    scores = tables.attach_grades(tables.read_scores(inputs.native), inputs.subjects_table)
    log.info("%d scores on native grids: %d subjects, strategies %s, sizes %s", len(scores),
             scores["subject"].nunique(), sorted(scores["strategy"].unique()),
             sorted(scores["size"].unique()))
    bootstrap = settings.bootstrap
    strategies = settings.strategies
    summary = tables.order_rows(tables.summarise(tables.with_et_present(scores), **bootstrap),
                                strategies)
    template = tables.read_scores(inputs.template)
    summary_template = tables.order_rows(
        tables.summarise(tables.with_et_present(template), **bootstrap), strategies)
    by_grade = tables.order_rows(
        tables.summarise(scores, by=["strategy", "size", "grade", "region"], **bootstrap),
        strategies)
    comparisons = tables.order_rows(
        tables.region_comparisons(scores, settings.baseline, settings), strategies)
    write_tsv(summary, outputs["summary"], float_format=FLOATS)
    write_tsv(summary_template, outputs["summary_template"], float_format=FLOATS)
    write_tsv(by_grade, outputs["by_grade"], float_format=FLOATS)
    write_tsv(comparisons, outputs["comparisons"], float_format=FLOATS)
    write_text(outputs["overview"],
               "Mean Dice [95 % interval, resampling training runs and subjects] on the test "
               "folds, each subject scored on "
               "its own grid against its original label (ET_present: only the subjects whose "
               "label has enhancing tumour)\n\n"
               + tables.markdown(tables.dice_overview(summary))
               + "\nThe same in template space (after the affine registration rescaled each "
               "brain; not comparable with other work)\n\n"
               + tables.markdown(tables.dice_overview(summary_template)))
    write_text(outputs["comparisons_markdown"], tables.markdown(comparisons)
               if len(comparisons) else f"No comparisons: the baseline "
               f"{settings.baseline!r} is not among the strategies.\n")
    with atomic_path(outputs["source"]) as tmp:
        shutil.copyfile(inputs.source, tmp)
    figures.learning_curve(summary, outputs["learning_curve"], strategies,
                           dpi=settings.dpi)
    judge_claims_into(scores, settings, outputs, log)
    for row in summary[summary["region"] == "WT"].itertuples():
        log.info("%s n=%d WT Dice %.3f", row.strategy, row.size, row.dice_mean)


def judge_claims_into(scores: pd.DataFrame, settings: ReportSettings, outputs: dict,
                      log: logging.Logger) -> None:
    """claims.md, the report's opening page (claims_report, reStructuredText), the
    comparisons behind them (claims_tests) and the calibration."""
    baseline = settings.baseline
    means = claims.subject_mean_dice(scores)
    family = claims.comparison_family(means, baseline, settings)
    calibration = claims.calibration_family(means, baseline, settings)
    judged, outcomes = claims.judge_claims(family, calibration, baseline)
    write_tsv(family, outputs["claims_tests"], float_format=FLOATS)
    write_tsv(calibration, outputs["calibration"], float_format=FLOATS)
    write_text(outputs["claims"], claims.claims_markdown(judged, outcomes, family, calibration,
                                                         settings, baseline))
    write_text(outputs["claims_report"], claims.claims_rst(
        judged, outcomes, settings, baseline, Path(outputs["learning_curve"]).read_bytes()))
    for key in ("positive", "negative", "calibration"):
        log.info("%s", outcomes[key]["text"])
    for row in judged.itertuples():
        log.info("claim: %s -> %s", row.claim, row.verdict)


def pick_subjects(test_subjects: Sequence[CachedSubject], count: int) -> list[CachedSubject]:
    """`count` subjects spread over the range of tumour sizes (smallest to largest)."""
    by_size = sorted(test_subjects, key=lambda s: int((np.asarray(s.label) > 0).sum()))
    if len(by_size) <= count:
        return by_size
    return [by_size[i] for i in np.linspace(0, len(by_size) - 1, count).round().astype(int)]


def plot_qualitative_stage(labels_by_strategy: dict, test_metas: list, output: Path,
                           settings: ReportSettings, log: logging.Logger) -> None:
    """labels_by_strategy: {strategy: its labels.npz}, in the order of the panels."""
    from lesion_transfer.evaluate.stages import load_subjects
    from lesion_transfer.evaluate.storage import load_labels

    predictions = {strategy: load_labels(p) for strategy, p in labels_by_strategy.items()}
    chosen = pick_subjects(load_subjects(test_metas), settings.qualitative_subjects)
    log.info("qualitative panels: %s under %s", [s.name for s in chosen], list(predictions))
    figures.qualitative_panels([(s.name, s.image, np.asarray(s.label)) for s in chosen],
                               predictions, output, dpi=settings.dpi)
