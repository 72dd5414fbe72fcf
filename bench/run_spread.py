"""How much a fold model's score moves between training runs, per arm and size: the run-to-run
spread that the claims' intervals must carry (issue 23, item 5: measure it before and after
each lever that might lower it).

Reads a finished study's per-model scores (results/metrics/native/**.tsv) and prints, per arm
and training size: each run's mean Dice (over subjects and WT, TC, ET) by fold and repeat, the
pooled within-fold SD between repeats, and the same for each arm minus the baseline (the spread
a comparison's interval carries); then the claims' comparisons and the calibration, judged by
this checkout's procedure at the schema's report settings.

    python bench/run_spread.py --results results_spread [--baseline scratch] [--repeats 4]
                               [--sizes 6]

--repeats R judges the study as if it had trained R repeats: repeat r's models do not depend
on how many repeats a study trains (its seed is drawn from seed, fold and r), so a study of
fewer repeats is a finished one without its last repeats, and a change of `train.repeats` can
be checked on finished runs without training.

--sizes N ... judges only those training sizes, as a study whose `splits.sizes` were N ...
(the claims' family, and so Holm's and Bonferroni's share of alpha, shrinks with them).
"""

import argparse
import math
from pathlib import Path

import pandas as pd

from lesion_transfer.config import schema_defaults
from lesion_transfer.report import statistics, tables
from lesion_transfer.report.claims import (
    calibration_family,
    comparison_family,
    difference,
    subject_mean_dice,
)
from lesion_transfer.report.settings import ReportSettings

COLUMNS = ["family", "comparison", "arm", "reference", "size", "runs", "estimate", "ci_low",
           "ci_high", "p_better", "sd_runs", "mde", "repeats_needed", "verdict"]


def sd_between_repeats(values):
    """The SD of one run's mean between repeats of a fold, pooled over folds (the run part of
    statistics.Spread; NaN with one repeat)."""
    spread = statistics.spread_of(values)
    return math.sqrt(spread.run_variance) if spread.repeats > 1 else float("nan")


def spread_table(means, baseline):
    rows = []
    for (strategy, size), cell in means.groupby(["strategy", "size"], sort=True):
        values = cell.rename(columns={"dice": "value"})
        per_run = statistics.run_means(values)
        row = {"arm": strategy, "size": size, "runs": len(per_run), "mean": per_run.mean(),
               "sd_between_repeats": sd_between_repeats(values),
               "run_means": " ".join(f"{v:.3f}" for v in per_run)}
        if strategy != baseline and baseline in set(means[means["size"] == size]["strategy"]):
            row["sd_of_difference"] = sd_between_repeats(
                difference(means, strategy, baseline, size))
        rows.append(row)
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--baseline", default="scratch")
    parser.add_argument("--repeats", type=int, default=None,
                        help="keep repeats 0 to R - 1 only (default: all)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="keep these training sizes only (default: all)")
    args = parser.parse_args()
    results = Path(args.results)
    scores = tables.read_scores(sorted((results / "metrics" / "native").rglob("*.tsv")))
    if args.repeats is not None:
        scores = scores[scores["repeat"] < args.repeats]
    if args.sizes is not None:
        missing = sorted(set(args.sizes) - set(scores["size"]))
        if missing:
            parser.error(f"--sizes: no scores of size {missing} under {results}/metrics/native "
                         f"(found sizes {sorted(set(scores['size']))})")
        scores = scores[scores["size"].isin(args.sizes)]
    means = subject_mean_dice(scores)
    # the schema's report defaults, their one owner
    settings = ReportSettings.from_config(schema_defaults("report"), [])
    print(tables.markdown(spread_table(means, args.baseline)))
    print(tables.markdown(comparison_family(means, args.baseline, settings)[COLUMNS]))
    calibration = calibration_family(means, args.baseline, settings)
    if len(calibration):
        print(tables.markdown(calibration[COLUMNS]))


if __name__ == "__main__":
    main()
