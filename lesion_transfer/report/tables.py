"""The study's tables: scores per strategy x training size x region (mean, sd, median, a
hierarchical bootstrap interval of the mean over training runs and subjects), the same by
grade, and every strategy compared with the baseline per size and region over paired training
runs (the procedure: lesion_transfer.report.statistics)."""

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lesion_transfer.io.ingest import read_subjects_table
from lesion_transfer.labels import REGIONS
from lesion_transfer.report import statistics
from lesion_transfer.report.settings import ReportSettings

METRICS = ("dice", "hd95", "sensitivity", "specificity")
KEYS = ["strategy", "size", "region"]
# ET again over the subjects that have enhancing tumour only: over all subjects, a model that
# never finds ET still scores 1 on every subject without it
ET_PRESENT = "ET_present"
REGION_ORDER = [*REGIONS, ET_PRESENT]


def read_scores(paths: Iterable[str | Path]) -> pd.DataFrame:
    scores = pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True)
    if "repeat" not in scores:  # written before training runs were repeated: repeat 0
        scores["repeat"] = 0
    return scores.astype({"size": int, "fold": int, "repeat": int})


def with_et_present(scores: pd.DataFrame) -> pd.DataFrame:
    """The scores plus rows of region ET_present: ET on subjects whose label has ET."""
    present = scores[(scores["region"] == "ET") & (scores["truth_voxels"] > 0)]
    return pd.concat([scores, present.assign(region=ET_PRESENT)], ignore_index=True)


def attach_grades(scores: pd.DataFrame, subjects_table: str | Path) -> pd.DataFrame:
    grades = {row["subject"]: row["group"] or "unknown"
              for row in read_subjects_table(subjects_table)}
    return scores.assign(grade=scores["subject"].map(grades).fillna("unknown"))


def summarise(scores: pd.DataFrame, samples: int, confidence: float, seed: int,
              by: Sequence[str] = KEYS, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """One row per group of `by`: n and, per metric, mean, sd, median, ci_low, ci_high (the
    interval resamples training runs, then subjects within each: it includes the spread
    between runs)."""
    rng = np.random.default_rng(seed)
    rows = []
    for key, group in scores.groupby(by, sort=True):
        row: dict[str, Any] = dict(zip(by, key))
        row["n"] = len(group)
        runs = [run for _, run in group.groupby(statistics.RUN_KEYS, sort=True)]
        for metric in metrics:
            values = group[metric].to_numpy(float)
            low, high = statistics.hierarchical_bootstrap(
                [run[metric].to_numpy(float) for run in runs], samples, confidence, rng)
            row.update({f"{metric}_mean": values.mean(),
                        f"{metric}_sd": values.std(ddof=1) if len(values) > 1 else np.nan,
                        f"{metric}_median": np.median(values),
                        f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        rows.append(row)
    return order_rows(pd.DataFrame(rows))


def region_comparisons(scores: pd.DataFrame, baseline: str, settings: ReportSettings,
                       metric: str = "dice") -> pd.DataFrame:
    """Every strategy minus `baseline`, per training size and region, over paired training
    runs; the intervals hold jointly over the whole table. settings: a ReportSettings."""
    specs = []
    for (size, region), group in scores.groupby(["size", "region"], sort=True):
        if baseline not in set(group["strategy"]):
            continue
        for strategy in [s for s in dict.fromkeys(group["strategy"]) if s != baseline]:
            specs.append(({"strategy": strategy, "baseline": baseline, "size": size,
                           "region": region},
                          statistics.paired_difference(group, strategy, baseline, metric)))
    judged = statistics.judge_family([values for _, values in specs], settings)
    table = pd.DataFrame([{**keys, **numbers} for (keys, _), numbers in zip(specs, judged)])
    return order_rows(table)


def order_rows(table: pd.DataFrame, strategies: Sequence[str] | None = None) -> pd.DataFrame:
    """Regions as WT, TC, ET; strategies in the config's order; sizes ascending."""
    if not len(table):
        return table
    table = table.copy()
    sort = []
    if "strategy" in table:
        order = strategies or list(dict.fromkeys(table["strategy"]))
        table["_strategy"] = table["strategy"].map({s: i for i, s in enumerate(order)})
        sort.append("_strategy")
    if "size" in table:
        sort.append("size")
    if "grade" in table:
        sort.append("grade")
    if "region" in table:
        table["_region"] = table["region"].map({r: i for i, r in enumerate(REGION_ORDER)})
        sort.append("_region")
    table = table.sort_values(sort, kind="mergesort").drop(columns=["_strategy", "_region"],
                                                          errors="ignore")
    return table.reset_index(drop=True)


def markdown(table: pd.DataFrame, columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """A GitHub Markdown table (no tabulate dependency)."""
    columns = columns or list(table.columns)

    def cell(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            number = float(value)
            return "" if np.isnan(number) else f"{number:.{digits}g}" if abs(number) < 1e-3 \
                else f"{number:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in table[columns].itertuples(index=False)]
    return "\n".join(lines) + "\n"


def dice_overview(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean Dice [95 % interval] with a column per region: the table a reader looks at first."""
    rows = []
    for (strategy, size), group in summary.groupby(["strategy", "size"], sort=False):
        row = {"strategy": strategy, "size": size}
        for _, r in group.iterrows():
            row[r["region"]] = (f"{r['dice_mean']:.3f} [{r['dice_ci_low']:.3f}, "
                                f"{r['dice_ci_high']:.3f}]")
        rows.append(row)
    return pd.DataFrame(rows)
