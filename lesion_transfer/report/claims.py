"""The paper's claims judged on this study's scores, with the controls that say whether the
study could have seen a transfer effect at all, and a calibration that says whether its
procedure calls differences that are not there.

Every judgement starts from one number per test subject and training run: the subject's mean
Dice over WT, TC and ET on its own grid. A comparison (an arm minus a reference at one size, or
a difference of two such gains across sizes) is measured per training run (fold, repeat) and
judged on an interval over runs (lesion_transfer.report.statistics, which owns the procedure).
The claims' comparisons form one family whose intervals hold jointly at the report's
confidence; each control is a gate with a question of its own, so its comparisons form a
family of their own (one interval at that confidence where the study has one size): counting
the controls in the claims' family would widen every claim's interval for questions no claim
asks.

- holds: the interval of the gain lies above 0;
- does not hold: it lies below `smallest_effect`, the smallest gain worth calling one;
- inconclusive: otherwise; beside it, the minimum detectable effect and the repeats per fold
  this study would need to detect `smallest_effect`.

Controls: the positive control (every layer fine-tuned from a model pretrained on the target's
own task on other subjects, its head kept) must lie above the baseline at the smallest size,
or the study cannot see a transfer effect that exists ("does not hold" becomes
inconclusive); the negative control (the source with each weight tensor's entries permuted)
must not lie above it at any size, or a gain may be the weights' scale rather than what the
source knows ("holds" becomes inconclusive). Calibration: the baseline against itself
trained with other seeds (repeats 0 vs 1, 2 vs 3, ...) through the same procedure must not
count as a difference.
"""

import base64
import textwrap
from collections.abc import Iterable
from typing import Any

import pandas as pd

from lesion_transfer.report import statistics
from lesion_transfer.report.settings import ReportSettings
from lesion_transfer.report.tables import markdown

INSENSITIVE = "inconclusive: the positive control did not show a transfer effect, so the " \
              "study could not detect one that exists"
NO_POSITIVE_CONTROL = "inconclusive: no positive control ran, so a null result cannot be told " \
                      "from a study too small to see one"
UNSPECIFIC = "inconclusive: a source with nothing useful to give also beat the baseline"
MISCALIBRATED = "inconclusive: the baseline against itself with other seeds counted as a " \
                "difference, so the procedure calls differences that are not there"

CLAIMS = (
    ("ft_all_beats_baseline", "FT_All beats the baseline in (almost) every case"),
    ("gain_largest_at_fewest", "the gain of FT_All is largest with the fewest training cases"),
    ("gain_shrinks", "the gain of FT_All shrinks as training cases grow"),
    ("last_layers_not_enough", "tuning only the last layers (FT_LastThree) is not enough: it "
                               "stays below FT_All"),
)
RUN_SUBJECT = ["fold", "repeat", "subject"]
# the arms whose comparison with the baseline is a gate, each judged as a family of its own
CONTROLS = ("positive_control", "negative_control")
FAMILIES = ("claims", *CONTROLS)
# (family, comparison, arm, reference, size label, per-run values)
Spec = tuple[str, str, str, str, str, pd.DataFrame]
FAMILY_COLUMNS = ["family", "comparison", "arm", "reference", "size", "runs", "subjects",
                  "estimate", "ci_low", "ci_high", "p_value", "p_holm", "p_better", "sd_runs",
                  "mde", "repeats_needed", "boot_low", "boot_high", "verdict"]


def subject_mean_dice(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (strategy, size, fold, repeat, subject): the mean Dice over the regions."""
    return scores.groupby(["strategy", "size", *RUN_SUBJECT], as_index=False)["dice"].mean()


def _cell(means: pd.DataFrame, arm: str, size: int) -> pd.Series:
    rows = means[(means["strategy"] == arm) & (means["size"] == size)]
    return rows.set_index(RUN_SUBJECT)["dice"]


def _values(series: pd.Series) -> pd.DataFrame:
    """A Series indexed by (fold, repeat, subject) as the DataFrame statistics.compare reads."""
    return series.dropna().rename("value").reset_index()


def difference(means: pd.DataFrame, arm: str, reference: str, size: int) -> pd.DataFrame:
    """Per subject and run: arm minus reference at one size (runs in which both trained)."""
    return statistics.paired_difference(means[means["size"] == size], arm, reference, "dice")


def gain_difference(means: pd.DataFrame, arm: str, reference: str, smaller: int,
                    larger: int) -> pd.DataFrame:
    """Per subject and run: the gain (arm minus reference) at `smaller` minus that at
    `larger` training cases; a run's seed is shared by its sizes, so the pair is a run."""
    return _values((_cell(means, arm, smaller) - _cell(means, reference, smaller))
                   - (_cell(means, arm, larger) - _cell(means, reference, larger)))


def calibration_difference(means: pd.DataFrame, baseline: str, size: int) -> pd.DataFrame:
    """The baseline against itself with other seeds: per fold, repeat 2i minus repeat 2i + 1
    (pair i is the run; an odd last repeat is left out). Nothing differs but the seed, so
    no difference may count."""
    cell = _cell(means, baseline, size).reset_index()
    repeats = cell["repeat"].max() + 1
    cell = cell[cell["repeat"] < repeats - repeats % 2]
    even = cell[cell["repeat"] % 2 == 0].assign(repeat=lambda t: t["repeat"] // 2)
    odd = cell[cell["repeat"] % 2 == 1].assign(repeat=lambda t: t["repeat"] // 2)
    paired = even.merge(odd, on=RUN_SUBJECT, suffixes=("_a", "_b"))
    return paired.assign(value=paired["dice_a"] - paired["dice_b"])[[*RUN_SUBJECT, "value"]]


def _specs(means: pd.DataFrame, baseline: str) -> list[Spec]:
    """(family, comparison, arm, reference, size label, values) of every comparison the
    claims and the controls use."""
    arms = set(means["strategy"])
    sizes = sorted(means["size"].unique())
    specs = []
    pairs = [(arm, baseline) for arm in ("ft_all", *CONTROLS)]
    pairs += [("ft_all", "ft_last_three"), ("ft_all", "negative_control")]
    for arm, reference in pairs:
        if {arm, reference} <= arms:
            family = arm if reference == baseline and arm in CONTROLS else "claims"
            specs += [(family, "gain", arm, reference, str(size),
                       difference(means, arm, reference, size)) for size in sizes]
    if {"ft_all", baseline} <= arms:
        trend = {(sizes[0], larger) for larger in sizes[1:]}
        trend |= set(zip(sizes[1:], sizes[2:]))
        specs += [("claims", "gain difference", "ft_all", baseline, f"{smaller}-{larger}",
                   gain_difference(means, "ft_all", baseline, smaller, larger))
                  for smaller, larger in sorted(trend)]
    return specs


def _judge(specs: list[Spec], settings: ReportSettings) -> pd.DataFrame:
    """Each spec compared over runs, the intervals of one family holding jointly."""
    judged = statistics.judge_family([values for *_, values in specs], settings)
    rows = [{"family": family, "comparison": comparison, "arm": arm, "reference": reference,
             "size": size, **numbers}
            for (family, comparison, arm, reference, size, _), numbers in zip(specs, judged)]
    return pd.DataFrame(rows, columns=FAMILY_COLUMNS)


def comparison_family(means: pd.DataFrame, baseline: str, settings: ReportSettings) -> pd.DataFrame:
    """Every comparison the claims and controls use, one row each, its `family` naming the
    intervals it holds jointly with (FAMILIES). settings: a ReportSettings (confidence,
    smallest_effect, the bootstrap's)."""
    specs = _specs(means, baseline)
    judged = [_judge([spec for spec in specs if spec[0] == family], settings)
              for family in FAMILIES]
    judged = [table for table in judged if len(table)]
    return pd.concat(judged, ignore_index=True) if judged else \
        pd.DataFrame(columns=FAMILY_COLUMNS)


def calibration_family(means: pd.DataFrame, baseline: str,
                       settings: ReportSettings) -> pd.DataFrame:
    """The baseline against itself with other seeds at every size: empty with one repeat."""
    if baseline not in set(means["strategy"]) or means["repeat"].max() < 1:
        return pd.DataFrame(columns=FAMILY_COLUMNS)
    calibration = _judge([("calibration", "calibration", baseline, baseline, str(size),
                           calibration_difference(means, baseline, size))
                          for size in sorted(means["size"].unique())], settings)
    # nothing differs but the seed: the only question is whether a difference counted
    counted = (calibration["ci_low"] > 0) | (calibration["ci_high"] < 0)
    return calibration.assign(verdict=counted.map({True: "counts", False: "does not count"}))


def _cases(size: Any) -> str:
    return f"{size} case" if str(size) == "1" else f"{size} cases"


def _rows(family: pd.DataFrame, arm: str, reference: str, comparison: str = "gain") -> pd.DataFrame:
    rows = family[(family["arm"] == arm) & (family["reference"] == reference)
                  & (family["comparison"] == comparison)]
    return rows.sort_values("size", key=lambda s: s.map(lambda v: int(v.split("-")[0])))


def _interval(row: Any) -> str:
    return f"{row.estimate:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"


def _repeats(row: Any) -> str:
    """The repeats per fold that the smallest effect needs, or why no number of them says."""
    if row.repeats_needed is not None and not pd.isna(row.repeats_needed):
        return f"{int(row.repeats_needed)} repeats"
    if pd.isna(row.mde):
        return "repeats unknown (no spread between runs to measure)"
    # statistics.repeats_needed: repeats shrink the runs' part of the MDE, not the subjects'
    return "no number of repeats reaches the smallest effect: its test subjects' sampling " \
           "sets the floor (more test subjects would lower it)"


def _describe(rows: pd.DataFrame) -> str:
    """Per row: the estimate, its interval, the minimum detectable effect, the repeats that
    the smallest effect would need, and P(A > B) over runs."""
    return "; ".join(f"{_cases(r.size)}: {_interval(r)}, MDE {r.mde:.3f}, {_repeats(r)}, "
                     f"P(better) {r.p_better:.2f} over {r.runs} runs"
                     for r in rows.itertuples())


def control_outcomes(family: pd.DataFrame, calibration: pd.DataFrame,
                     baseline: str) -> dict[str, dict[str, Any]]:
    """{positive, negative, calibration: {"ran", "behaved", "text"}}."""
    outcomes = {}
    positive = _rows(family, "positive_control", baseline)
    if len(positive):
        first = positive.iloc[0]
        behaved = bool(first["ci_low"] > 0)
        outcomes["positive"] = {"ran": True, "behaved": behaved, "text": (
            f"positive control minus {baseline} at {_describe(positive.iloc[:1])}: "
            + ("above the baseline, as it must be: the study can see a transfer effect"
               if behaved else "NOT above the baseline: the study is not sensitive enough "
                               "to see a transfer effect"))}
    else:
        outcomes["positive"] = _not_run("positive", behaved=False)
    negative = _rows(family, "negative_control", baseline)
    if len(negative):
        behaved = not (negative["ci_low"] > 0).any()
        outcomes["negative"] = {"ran": True, "behaved": behaved, "text": (
            f"negative control minus {baseline}: {_describe(negative)}: "
            + ("never above the baseline, as it must not be" if behaved else
               "above the baseline: gains may come from pretraining as such"))}
    else:
        outcomes["negative"] = _not_run("negative", behaved=True)
    if len(calibration):
        counted = calibration[calibration["verdict"] == "counts"]
        outcomes["calibration"] = {"ran": True, "behaved": not len(counted), "text": (
            f"calibration, {baseline} minus {baseline} with other seeds: "
            f"{_describe(calibration)}: "
            + ("no difference counted, as none may" if not len(counted) else
               "COUNTED as a difference: the procedure is not calibrated here"))}
    else:
        outcomes["calibration"] = {"ran": False, "behaved": True, "text": (
            f"calibration ({baseline} against itself with other seeds): not run; it needs "
            "`train.repeats` of 2 or more")}
    return outcomes


def _not_run(control: str, behaved: bool) -> dict[str, Any]:
    """A control the study did not run: the positive one cannot vouch for sensitivity, the
    negative one does not count against a gain."""
    return {"ran": False, "behaved": behaved,
            "text": f"{control} control: not run (no `{control}_control` arm)"}


def _qualified(verdict: str, outcomes: dict[str, dict[str, Any]],
               credited_to_source: bool = True) -> str:
    """A negative verdict needs a sensitive study; a positive one a specific, calibrated
    study."""
    if verdict == "holds" and not outcomes["calibration"]["behaved"]:
        return MISCALIBRATED
    if not credited_to_source:
        return verdict
    if verdict == "does not hold" and not outcomes["positive"]["behaved"]:
        return INSENSITIVE if outcomes["positive"]["ran"] else NO_POSITIVE_CONTROL
    if verdict == "holds" and not outcomes["negative"]["behaved"]:
        return UNSPECIFIC
    return verdict


def combined(rows: pd.DataFrame) -> str:
    """A claim over several comparisons: holds when every one holds, does not hold when any
    does not, inconclusive otherwise."""
    verdicts = set(rows["verdict"])
    if verdicts == {"holds"}:
        return "holds"
    if "does not hold" in verdicts:
        return "does not hold"
    return "inconclusive"


def judge_claims(family: pd.DataFrame, calibration: pd.DataFrame,
                 baseline: str) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """One row per claim: verdict, the rule that decided it, and the numbers."""
    outcomes = control_outcomes(family, calibration, baseline)
    judged = []

    def add(key: str, rows: pd.DataFrame, rule: str, needs: str,
            credited_to_source: bool = True) -> None:
        if not len(rows):
            verdict, evidence = f"not tested: needs {needs}", ""
        else:
            verdict = _qualified(combined(rows), outcomes, credited_to_source)
            evidence = _describe(rows)
        judged.append({"claim": dict(CLAIMS)[key], "verdict": verdict, "rule": rule,
                       "evidence": evidence})

    gains = _rows(family, "ft_all", baseline)
    add("ft_all_beats_baseline", gains, f"ft_all minus {baseline} above 0 at every size",
        f"the arms ft_all and {baseline}")
    trend = _rows(family, "ft_all", baseline, "gain difference")
    smallest = trend[trend["size"].str.startswith(f"{gains['size'].iloc[0]}-")] \
        if len(gains) else trend
    add("gain_largest_at_fewest", smallest, "the gain at the smallest size minus the gain "
        "at each larger size above 0", "two or more training sizes")
    consecutive = trend[[_consecutive(s, gains["size"]) for s in trend["size"]]]
    add("gain_shrinks", consecutive, "the gain at each size minus the gain at the next "
        "larger size above 0", "two or more training sizes")
    # that FT_LastThree trails FT_All compares two starts from the same source: neither
    # control qualifies it
    add("last_layers_not_enough", _rows(family, "ft_all", "ft_last_three"),
        "ft_all minus ft_last_three above 0 at every size", "the arms ft_last_three and ft_all",
        credited_to_source=False)
    return pd.DataFrame(judged), outcomes


def _consecutive(label: str, sizes: Iterable[Any]) -> bool:
    smaller, larger = (int(v) for v in label.split("-"))
    ordered = sorted(int(s) for s in sizes)
    return smaller in ordered and ordered.index(smaller) + 1 < len(ordered) and \
        ordered[ordered.index(smaller) + 1] == larger


def _how_judged(family: pd.DataFrame, settings: ReportSettings, baseline: str) -> str:
    runs = int(family["runs"].max()) if len(family) else 0
    claims = int((family["family"] == "claims").sum())
    controls = ", ".join(f"{int((family['family'] == control).sum())} {control.replace('_', ' ')}"
                         for control in CONTROLS)
    return (f"Per test subject and training run (fold, repeat), mean Dice over WT, TC and ET "
            f"on its own grid. Each comparison is measured per run ({runs} paired runs: arms "
            f"of one run share its seed) and judged on a t interval over runs that includes "
            f"the runs' shared test subjects. The claims' {claims} intervals hold jointly at "
            f"{settings.confidence:.0%} (Bonferroni), and so do each control's "
            f"({controls}): a control is a gate with a question of its own, not one of the "
            f"claims. A claim holds when its interval lies "
            f"above 0, does not hold when it lies below the smallest gain worth calling one "
            f"({settings.smallest_effect} Dice, `report.smallest_effect`), and is "
            f"inconclusive otherwise. MDE: the gain this study detects with 80 % power; "
            f"repeats: per fold, to detect the smallest gain. Baseline: `{baseline}`.")


def claims_markdown(claims: pd.DataFrame, outcomes: dict[str, dict[str, Any]], family: pd.DataFrame,
                    calibration: pd.DataFrame, settings: ReportSettings, baseline: str) -> str:
    """results/tables/claims.md: the controls and the calibration first (they qualify every
    verdict), then each claim with its verdict and numbers, then the comparisons."""
    lines = [
        "# The claims of Kaur et al. 2019, judged on this study", "",
        _how_judged(family, settings, baseline), "",
        "## Controls and calibration", "",
        *[f"- {outcomes[key]['text']}" for key in ("positive", "negative", "calibration")], "",
        "## Claims", "",
        markdown(claims, ["claim", "verdict", "evidence"]),
        "## Comparisons (estimate and interval in mean Dice; P(better): share of runs)", "",
        markdown(family) if len(family) else "No comparisons: the arms they need did not run.\n",
    ]
    if len(calibration):
        lines += ["## Calibration", "", markdown(calibration)]
    return "\n".join(lines)


def claims_rst(claims: pd.DataFrame, outcomes: dict[str, dict[str, Any]], settings: ReportSettings,
               baseline: str, learning_curve_png: bytes | None = None) -> str:
    """The same verdicts as reStructuredText: the opening page of the HTML report, with the
    learning curve embedded (the report is one file a reader may move)."""
    def cell(text: Any) -> str:
        return str(text).replace("|", "/")

    lines = ["The claims of Kaur et al. 2019, judged on this study", "=" * 52, "",
             "Controls and calibration:", ""]
    lines += [f"- {cell(outcomes[c]['text'])}" for c in ("positive", "negative", "calibration")]
    lines += ["", ".. list-table:: Claims",
              "   :header-rows: 1", "", "   * - claim", "     - verdict", "     - evidence"]
    for row in claims.itertuples():
        lines += [f"   * - {cell(row.claim)}", f"     - {cell(row.verdict)}",
                  f"     - {cell(row.evidence) or '-'}"]
    lines += ["", f"Training runs as the unit; intervals over runs that hold jointly within the "
              f"claims' family and within each control's at "
              f"{settings.confidence:.0%}; smallest gain worth calling one: "
              f"{settings.smallest_effect} Dice; baseline {baseline} "
              f"(results/tables/claims.md).", ""]
    if learning_curve_png:
        # docutils refuses lines over 10,000 characters; it removes the whitespace inside an
        # image URI, so the data URI goes over many short lines
        encoded = textwrap.wrap("data:image/png;base64," + base64.b64encode(
            learning_curve_png).decode(), 76)
        lines += ["Learning curve (mean Dice on the subjects' own grids against training cases):",
                  "", f".. image:: {encoded[0]}", *[f"   {part}" for part in encoded[1:]],
                  "   :alt: learning curve", ""]
    return "\n".join(lines)
