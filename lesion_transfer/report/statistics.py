"""The study's statistics, in one place: the training run as the unit of inference.

A training procedure's score moves with its seed: on the default study one fold model's mean
Dice moves by about 0.08 (SD) between seeds, far more than its test subjects' sampling moves it
(../shared/STATISTICS-FACTS.md). A test that takes subjects as its unit, with one run per arm,
does not see that spread and calls a difference about half the time when there is none. So:

- A comparison (arm A minus reference B, or any contrast of arms and sizes) is measured per
  training run: run = (fold, repeat); A and B of one run share its seed (initialisation of new
  layers, batch order, augmentation), so the run is a pair. Its value is the mean over the
  fold's test subjects of the per-subject difference.
- The estimate is the mean over runs; the test is a paired t over runs (Bouthillier et al.
  2021: runs, not subjects, carry a training procedure's variance); P(A > B) is the share of
  runs in which A did better.
- Claims are judged on intervals that hold jointly over the family of comparisons
  (`family_level`: Bonferroni, the first and strictest step of Holm's procedure, which gives
  no intervals of its own); Holm-adjusted p-values are shown beside them.
- The minimum detectable effect is the gain that such an interval would separate from 0 in 80 %
  of studies like this one, from this study's own spread: solved on the noncentral t, with
  the normal approximation (t[1 - a/2, df] + t[power, df]) * se where scipy cannot evaluate
  it (one or two degrees of freedom).
- A hierarchical bootstrap (runs, then subjects within each drawn run; Saravanan et al. 2020)
  gives descriptive intervals (the learning curve's bands, the summary tables), widened by
  sqrt(n / (n - 1)) because it under-covers with few runs.

Everything here is plain numpy/scipy on arrays: no file, no workflow path.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize, stats

POWER = 0.8
RUN_KEYS = ["fold", "repeat"]
# the most repeats `repeats_needed` will name: beyond it, the answer is "more than this"
MAX_REPEATS = 1000


def alpha_of(confidence: float) -> float:
    """The study's significance level: one minus the report's confidence."""
    return 1.0 - confidence


def family_level(alpha: float, comparisons: int) -> float:
    """The per-comparison level at which `comparisons` intervals hold jointly at `alpha`."""
    return alpha / max(comparisons, 1)


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm's step-down adjustment (monotone, capped at 1); NaN stays NaN."""
    p = np.asarray(p_values, float)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="mergesort")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(order) - rank) * p[index])
        adjusted[index] = min(running, 1.0)
    return adjusted


@dataclass(frozen=True)
class Spread:
    """The variance of a mean over paired runs, in two parts (a random-effects model of the
    runs' per-subject differences d[f, r, s] = mu + a[s] + b[f, r] + e[f, r, s]):

    - run to run: the variance of one run's mean about its fold's mean over repeats
      (b and e; pooled over folds, `run_df` degrees of freedom), divided by the runs;
    - subject sampling: the runs of one fold share its test subjects, so their subjects'
      own effects (a) do not average out over repeats; estimated from the spread over a
      fold's subjects of their mean over repeats, divided by the subjects.

    With one repeat, runs of different folds share no subject: the spread over runs holds
    both parts (a plain paired t over runs)."""

    folds: int
    repeats: int
    run_variance: float  # of one run's mean (b and e); NaN when it cannot be estimated
    run_df: float
    subject_term: float  # the subject-sampling variance of the grand mean
    subject_df: float

    def variance(self, repeats: int | None = None) -> float:
        """Of the grand mean, with `repeats` per fold (the study's own by default)."""
        repeats = repeats or self.repeats
        return self.run_variance / (self.folds * repeats) + self.subject_term

    def df(self, repeats: int | None = None) -> float:
        """Degrees of freedom: the smaller of the two parts' (Satterthwaite's mixture is
        anti-conservative at the family's small levels when the run part has 2 or 3 degrees
        of freedom: 2 to 4 times the nominal rate in simulation). For another number of
        repeats, those of the analysis such a study would run."""
        run_df = self.run_df
        if repeats and repeats != self.repeats:
            run_df = self.folds * (repeats - 1) if repeats > 1 else self.folds - 1
        if self.subject_term == 0:
            return run_df
        return min(run_df, self.subject_df)


def spread_of(values: pd.DataFrame) -> Spread:
    """The Spread of a comparison's values: a DataFrame with fold, repeat, subject and
    `value` (one row per subject and run; runs of a fold share their subjects)."""
    per_run = values.groupby(RUN_KEYS, sort=True)["value"].mean()
    folds = per_run.index.get_level_values("fold").nunique()
    repeats = per_run.groupby(level="fold").size()
    if repeats.max() < 2:
        runs = len(per_run)
        return Spread(folds, 1, float(per_run.var(ddof=1)) if runs > 1 else float("nan"),
                      runs - 1, 0.0, 1)
    centred = per_run - per_run.groupby(level="fold").transform("mean")
    run_df = int((repeats - 1).sum())
    run_variance = float((centred ** 2).sum() / run_df)
    per_subject = values.groupby(["fold", "subject"])["value"].mean()
    subject_term, subject_df = 0.0, 0
    for _, group in per_subject.groupby(level="fold"):
        if len(group) > 1:
            subject_term += float(group.var(ddof=1)) / len(group)
            subject_df += len(group) - 1
    subject_term /= folds ** 2
    return Spread(folds, int(round(repeats.mean())), run_variance, run_df, subject_term,
                  max(subject_df, 1))


def paired_t(estimate: float, spread: Spread) -> float:
    """Two-sided p of the paired t-test over runs (H0: the mean difference is 0). NaN when
    the spread cannot be estimated; with no spread, 1 for a zero mean and 0 otherwise."""
    variance = spread.variance()
    if not np.isfinite(variance) or spread.df() < 1:
        return float("nan")
    if variance == 0:
        return 1.0 if estimate == 0 else 0.0
    t = estimate / math.sqrt(variance)
    return float(2 * stats.t.sf(abs(t), spread.df()))


def t_interval(estimate: float, spread: Spread, level: float) -> tuple[float, float]:
    """The two-sided interval of the mean difference at significance `level`."""
    variance = spread.variance()
    if not np.isfinite(variance) or spread.df() < 1:
        return float("nan"), float("nan")
    half = stats.t.ppf(1 - level / 2, spread.df()) * math.sqrt(variance)
    return float(estimate - half), float(estimate + half)


def probability_better(run_values: ArrayLike) -> float:
    """P(A > B) over paired runs: the share of runs in which the difference is positive
    (ties count half)."""
    values = np.asarray(run_values, float)
    if not len(values):
        return float("nan")
    return float(((values > 0).sum() + 0.5 * (values == 0).sum()) / len(values))


def power_of(effect: float, standard_error: float, df: float, level: float) -> float:
    """The probability that a two-sided t interval at `level` excludes 0 when the true
    difference is `effect` (the noncentral t distribution)."""
    critical = stats.t.ppf(1 - level / 2, df)
    shift = effect / standard_error
    return float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))


def minimum_detectable_effect(spread: Spread, level: float, repeats: int | None = None,
                              power: float = POWER) -> float:
    """The smallest true difference that an interval at `level` separates from 0 with
    probability `power`, with `repeats` per fold (the study's own by default); infinite when
    the spread cannot be estimated."""
    variance = spread.variance(repeats)
    df = spread.df(repeats)
    if not np.isfinite(variance) or df < 1:
        return float("inf")
    if variance == 0:
        return 0.0
    standard_error = math.sqrt(variance)
    # the normal approximation with t quantiles; the noncentral t refines it where scipy
    # can evaluate it (not at the huge shifts that one or two degrees of freedom need)
    approximate = (stats.t.ppf(1 - level / 2, df) + stats.t.ppf(power, df)) * standard_error
    try:
        return float(optimize.brentq(lambda e: power_of(e, standard_error, df, level) - power,
                                     0.0, 2 * approximate))
    except ValueError:  # NaN from scipy's noncentral t, or no sign change
        return float(approximate)


def repeats_needed(spread: Spread, effect: float, level: float,
                   power: float = POWER) -> int | None:
    """Repeats per fold (each adding one run per fold) for `effect` to be detectable; None
    when the spread is unknown or when no number of repeats would do (the test subjects'
    own sampling sets a floor that repeats do not lower: more subjects would)."""
    def detectable(repeats: int) -> bool:
        return minimum_detectable_effect(spread, level, repeats, power) <= effect

    if not np.isfinite(spread.variance()) or not detectable(MAX_REPEATS):
        return None
    low, high = 0, MAX_REPEATS  # the MDE falls as repeats grow: the fewest that do
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if detectable(middle) else (middle, high)
    return high


def hierarchical_bootstrap(groups: Sequence[ArrayLike], samples: int, confidence: float,
                           rng: np.random.Generator) -> tuple[float, float]:
    """Percentile interval of the grand mean, resampling runs, then subjects within each
    drawn run. groups: one array of per-subject values per run. Widened about the estimate by
    sqrt(n / (n - 1)) for n runs (the plain bootstrap under-covers with few runs). NaN with
    fewer than two runs."""
    arrays = [a for a in (np.asarray(g, float) for g in groups) if len(a)]
    runs = len(arrays)
    if runs < 2:
        return float("nan"), float("nan")
    # a resampled mean per (sample, slot) for every run, so that a run drawn twice into one
    # sample gets two independent subject resamples
    resampled = np.stack([g[rng.integers(0, len(g), (samples, runs, len(g)))].mean(axis=2)
                          for g in arrays])  # (run, sample, slot)
    drawn = rng.integers(0, runs, (samples, runs))
    means = np.take_along_axis(resampled.transpose(1, 2, 0), drawn[..., None],
                               axis=2)[..., 0].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    estimate = np.mean([g.mean() for g in arrays])
    widen = math.sqrt(runs / (runs - 1))
    return (float(estimate - widen * (estimate - low)),
            float(estimate + widen * (high - estimate)))


def paired_difference(frame: pd.DataFrame, arm: str, reference: str,
                      column: str) -> pd.DataFrame:
    """Per subject and run, `arm` minus `reference` (runs in which both trained), as
    `compare` reads it. frame: one row per strategy, fold, repeat and subject."""
    table = frame.set_index(["strategy", *RUN_KEYS, "subject"])[column]
    difference = table.xs(arm, level="strategy") - table.xs(reference, level="strategy")
    return difference.dropna().rename("value").reset_index()


def run_means(values: pd.DataFrame) -> pd.Series:
    """Per run, the mean over its subjects. values: a DataFrame with fold, repeat, subject and
    `value` (one row per subject and run)."""
    return values.groupby(RUN_KEYS, sort=True)["value"].mean()


def compare(values: pd.DataFrame, level: float, smallest_effect: float,
            bootstrap: dict[str, Any]) -> dict[str, Any]:
    """One comparison over paired runs. values: per (fold, repeat, subject) the difference
    (column `value`); level: the per-comparison significance level of the family;
    bootstrap: {samples, confidence, seed}. Returns the numbers every verdict reads."""
    per_run = run_means(values).to_numpy()
    estimate = float(per_run.mean()) if len(per_run) else float("nan")
    spread = spread_of(values)
    low, high = t_interval(estimate, spread, level)
    groups = [g["value"].to_numpy() for _, g in values.groupby(RUN_KEYS, sort=True)]
    boot_low, boot_high = hierarchical_bootstrap(
        groups, bootstrap["samples"], bootstrap["confidence"],
        np.random.default_rng(bootstrap["seed"]))
    return {"runs": len(per_run), "subjects": int(values["subject"].nunique()),
            "estimate": estimate, "ci_low": low, "ci_high": high,
            "boot_low": boot_low, "boot_high": boot_high,
            "p_value": paired_t(estimate, spread), "p_better": probability_better(per_run),
            "sd_runs": math.sqrt(spread.run_variance) if np.isfinite(spread.run_variance)
            else float("nan"),
            "mde": minimum_detectable_effect(spread, level),
            "repeats_needed": repeats_needed(spread, smallest_effect, level)}


def verdict(ci_low: float, ci_high: float, smallest_effect: float) -> str:
    """'holds' when the interval lies above 0, 'does not hold' when it lies below the
    smallest gain worth calling one, 'inconclusive' otherwise (an unknown interval too)."""
    if np.isnan(ci_low) or np.isnan(ci_high):
        return "inconclusive"
    if ci_low > 0:
        return "holds"
    if ci_high < smallest_effect:
        return "does not hold"
    return "inconclusive"


def judge_family(value_sets: Sequence[pd.DataFrame], settings: Any) -> list[dict[str, Any]]:
    """Each of a family's comparisons (per-run values as `compare` reads them) judged at the
    level at which their intervals hold jointly at the report's confidence (Bonferroni;
    Holm's procedure gives no intervals), with Holm-adjusted p-values beside them.
    settings: a report.settings.ReportSettings (confidence, smallest_effect, the bootstrap's).
    Returns one dict per comparison, in order."""
    level = family_level(alpha_of(settings.confidence), len(value_sets))
    judged = [compare(values, level, settings.smallest_effect, settings.bootstrap)
              for values in value_sets]
    adjusted = holm([numbers["p_value"] for numbers in judged])
    for numbers, p_holm in zip(judged, adjusted):
        numbers["p_holm"] = float(p_holm)
        numbers["verdict"] = verdict(numbers["ci_low"], numbers["ci_high"],
                                     settings.smallest_effect)
    return judged
