"""The study's tables: scores per strategy x training size x region (mean, sd, median, a
bootstrap interval of the mean), the same by grade, and paired Wilcoxon signed-rank tests of
every strategy against the baseline, Holm-corrected over the whole family."""

import numpy as np
import pandas as pd
from scipy import stats

from lesion_transfer.labels import REGIONS

METRICS = ("dice", "hd95", "sensitivity", "specificity")
KEYS = ["strategy", "size", "region"]
# ET again over the subjects that have enhancing tumour only: over all subjects, a model that
# never finds ET still scores 1 on every subject without it
ET_PRESENT = "ET_present"
REGION_ORDER = [*REGIONS, ET_PRESENT]


def read_scores(paths):
    scores = pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True)
    scores["size"] = scores["size"].astype(int)
    return scores


def with_et_present(scores):
    """The scores plus rows of region ET_present: ET on subjects whose label has ET."""
    present = scores[(scores["region"] == "ET") & (scores["truth_voxels"] > 0)]
    return pd.concat([scores, present.assign(region=ET_PRESENT)], ignore_index=True)


def attach_grades(scores, subjects_table):
    subjects = pd.read_csv(subjects_table, sep="\t", dtype=str, keep_default_na=False)
    grades = subjects.set_index("subject")["group"].replace("", "unknown")
    return scores.assign(grade=scores["subject"].map(grades).fillna("unknown"))


def bootstrap_interval(values, samples, confidence, rng):
    """Percentile interval of the mean over `samples` resamples of the subjects."""
    values = np.asarray(values, float)
    if len(values) < 2:
        return float("nan"), float("nan")
    means = values[rng.integers(0, len(values), (samples, len(values)))].mean(axis=1)
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def summarise(scores, by=KEYS, metrics=METRICS, samples=2000, confidence=0.95, seed=0):
    """One row per group of `by`: n and, per metric, mean, sd, median, ci_low, ci_high."""
    rng = np.random.default_rng(seed)
    rows = []
    for key, group in scores.groupby(by, sort=True):
        row = dict(zip(by, key))
        row["n"] = len(group)
        for metric in metrics:
            values = group[metric].to_numpy(float)
            low, high = bootstrap_interval(values, samples, confidence, rng)
            row.update({f"{metric}_mean": values.mean(),
                        f"{metric}_sd": values.std(ddof=1) if len(values) > 1 else np.nan,
                        f"{metric}_median": np.median(values),
                        f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        rows.append(row)
    return order_rows(pd.DataFrame(rows))


def holm(p_values):
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


def paired_tests(scores, baseline="scratch", metric="dice"):
    """Every strategy against `baseline`, per training size and region, paired by subject."""
    rows = []
    for (size, region), group in scores.groupby(["size", "region"], sort=True):
        table = group.pivot_table(index="subject", columns="strategy", values=metric)
        if baseline not in table:
            continue
        for strategy in [s for s in table.columns if s != baseline]:
            pair = table[[strategy, baseline]].dropna()
            difference = (pair[strategy] - pair[baseline]).to_numpy()
            statistic, p = float("nan"), float("nan")
            if len(difference) and np.any(difference != 0):
                result = stats.wilcoxon(difference)
                statistic, p = float(result.statistic), float(result.pvalue)
            elif len(difference):
                p = 1.0  # identical scores: no evidence of any difference
            rows.append({"strategy": strategy, "baseline": baseline, "size": size,
                         "region": region, "n": len(difference),
                         "mean_difference": difference.mean() if len(difference) else np.nan,
                         "median_difference": (np.median(difference) if len(difference)
                                               else np.nan),
                         "wins": int((difference > 0).sum()), "losses": int((difference < 0).sum()),
                         "statistic": statistic, "p_value": p})
    tests = pd.DataFrame(rows)
    if len(tests):
        tests["p_holm"] = holm(tests["p_value"].to_numpy())
        tests["significant"] = tests["p_holm"] < 0.05
    return order_rows(tests)


def order_rows(table, strategies=None):
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


def markdown(table, columns=None, digits=3):
    """A GitHub Markdown table (no tabulate dependency)."""
    columns = columns or list(table.columns)

    def cell(value):
        if isinstance(value, (float, np.floating)):
            return "" if np.isnan(value) else f"{value:.{digits}g}" if abs(value) < 1e-3 \
                else f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in table[columns].itertuples(index=False)]
    return "\n".join(lines) + "\n"


def dice_overview(summary):
    """Mean Dice [95 % interval] with a column per region: the table a reader looks at first."""
    rows = []
    for (strategy, size), group in summary.groupby(["strategy", "size"], sort=False):
        row = {"strategy": strategy, "size": size}
        for _, r in group.iterrows():
            row[r["region"]] = (f"{r['dice_mean']:.3f} [{r['dice_ci_low']:.3f}, "
                                f"{r['dice_ci_high']:.3f}]")
        rows.append(row)
    return pd.DataFrame(rows)
