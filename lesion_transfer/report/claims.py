"""The paper's claims judged on this study's scores, with the controls that say whether the
study could have seen a transfer effect at all.

Every judgement uses one number per test subject: its mean Dice over WT, TC and ET on its own
grid. Each comparison is a paired Wilcoxon signed-rank test over the test subjects (every
labelled subject is in exactly one test fold); the Holm correction runs over the whole family
of comparisons below. A difference "counts" when its Holm-adjusted p is below ALPHA.

Controls: the positive control (ft_all from a model pretrained on the target's own task on
other subjects) must beat the baseline at the smallest training size, or the study is not
sensitive enough to detect a transfer effect that exists; the negative control (ft_all from
the source model with each weight tensor's entries permuted) must not beat it at any size, or
gains may come from the pretrained weights' scale rather than from what the source knows.
"""

import base64
import textwrap

import numpy as np
import pandas as pd
from scipy import stats

from lesion_transfer.report.tables import holm, markdown

ALPHA = 0.05
INSENSITIVE = "inconclusive: the study could not detect a transfer effect that exists"
NO_POSITIVE_CONTROL = "inconclusive: no positive control ran, so a null result cannot be told " \
                      "from a study too small to see one"
UNSPECIFIC = "inconclusive: a source with nothing useful to give also beat the baseline"

CLAIMS = (
    ("ft_all_beats_baseline", "FT_All beats the baseline in (almost) every case"),
    ("gain_largest_at_fewest", "the gain of FT_All is largest with the fewest training cases"),
    ("gain_shrinks", "the gain of FT_All shrinks as training cases grow"),
    ("last_layers_not_enough", "tuning only the last layers (FT_LastThree) is not enough: it "
                               "stays below FT_All"),
)


def subject_mean_dice(scores):
    """One row per (strategy, size, subject): the mean Dice over the regions scored."""
    return (scores.groupby(["strategy", "size", "subject"], as_index=False)["dice"].mean())


def compare(means, arm, reference, size):
    """Paired comparison of two arms at one training size (arm minus reference)."""
    table = means[means["size"] == size].pivot_table(index="subject", columns="strategy",
                                                     values="dice")
    pair = table[[arm, reference]].dropna()
    difference = (pair[arm] - pair[reference]).to_numpy()
    p = 1.0
    if np.any(difference != 0):
        p = float(stats.wilcoxon(difference).pvalue)
    return {"arm": arm, "reference": reference, "size": int(size), "n": len(difference),
            "arm_mean": float(pair[arm].mean()), "reference_mean": float(pair[reference].mean()),
            "mean_difference": float(difference.mean()) if len(difference) else np.nan,
            "wins": int((difference > 0).sum()), "losses": int((difference < 0).sum()),
            "p_value": p}


def comparison_family(means, baseline):
    """Every comparison the claims and controls use, Holm-corrected together."""
    arms = set(means["strategy"])
    pairs = [(arm, baseline) for arm in ("ft_all", "positive_control", "negative_control")
             if arm in arms]
    if {"ft_last_three", "ft_all"} <= arms:
        pairs.append(("ft_last_three", "ft_all"))
    if baseline not in arms:
        pairs = [p for p in pairs if p[1] != baseline]
    rows = [compare(means, arm, reference, size) for arm, reference in pairs
            for size in sorted(means["size"].unique())]
    family = pd.DataFrame(rows, columns=["arm", "reference", "size", "n", "arm_mean",
                                         "reference_mean", "mean_difference", "wins", "losses",
                                         "p_value"])
    if len(family):
        family["p_holm"] = holm(family["p_value"].to_numpy())
        family["counts"] = family["p_holm"] < ALPHA
    return family


def _cases(size):
    return f"{size} case" if int(size) == 1 else f"{size} cases"


def _rows(family, arm, reference):
    return family[(family["arm"] == arm) & (family["reference"] == reference)].sort_values("size")


def significant_gain(rows):
    return rows[(rows["mean_difference"] > 0) & rows["counts"]]


def significant_loss(rows):
    return rows[(rows["mean_difference"] < 0) & rows["counts"]]


def control_outcomes(family, baseline):
    """{control: {"ran", "behaved", "text"}} for the positive and the negative control."""
    outcomes = {}
    positive = _rows(family, "positive_control", baseline)
    if len(positive):
        first = positive.iloc[0]
        behaved = bool(first["mean_difference"] > 0 and first["counts"])
        outcomes["positive"] = {"ran": True, "behaved": behaved, "text": (
            f"positive control vs {baseline} at {_cases(first['size'])}: mean Dice "
            f"{first['arm_mean']:.3f} vs {first['reference_mean']:.3f} "
            f"(difference {first['mean_difference']:+.3f}, {first['wins']} wins / "
            f"{first['losses']} losses of {first['n']}, Holm p = {first['p_holm']:.3g}): "
            + ("beats the baseline, as it must" if behaved else
               "does NOT beat the baseline: the study is not sensitive enough"))}
    else:
        outcomes["positive"] = _not_run("positive", behaved=False)
    negative = _rows(family, "negative_control", baseline)
    if len(negative):
        gains = significant_gain(negative)
        behaved = not len(gains)
        listed = ", ".join(f"{_cases(r.size)} {r.mean_difference:+.3f} (Holm p {r.p_holm:.3g})"
                           for r in negative.itertuples())
        outcomes["negative"] = {"ran": True, "behaved": behaved, "text": (
            f"negative control vs {baseline}: {listed}: "
            + ("never beats the baseline, as it must not" if behaved else
               "beats the baseline: gains may come from pretraining as such"))}
    else:
        outcomes["negative"] = _not_run("negative", behaved=True)
    return outcomes


def _not_run(control, behaved):
    """A control the study did not run: the positive one cannot vouch for sensitivity, the
    negative one does not count against a gain."""
    return {"ran": False, "behaved": behaved,
            "text": f"{control} control: not run (no `{control}_control` arm)"}


def _qualified(verdict, outcomes):
    """A negative verdict needs a sensitive study; a positive one a specific study."""
    if verdict == "does not hold" and not outcomes["positive"]["behaved"]:
        return INSENSITIVE if outcomes["positive"]["ran"] else NO_POSITIVE_CONTROL
    if verdict == "holds" and not outcomes["negative"]["behaved"]:
        return UNSPECIFIC
    return verdict


def _describe(rows):
    return "; ".join(f"{_cases(r.size)}: {r.arm_mean:.3f} vs {r.reference_mean:.3f} "
                     f"({r.mean_difference:+.3f}, p_holm {r.p_holm:.3g})"
                     for r in rows.itertuples())


def judge_claims(family, baseline):
    """One row per claim: verdict, the rule that decided it, and the numbers."""
    outcomes = control_outcomes(family, baseline)
    gains = _rows(family, "ft_all", baseline)
    judged = []

    def add(key, verdict, rule, rows):
        judged.append({"claim": dict(CLAIMS)[key], "verdict": _qualified(verdict, outcomes),
                       "rule": rule, "evidence": _describe(rows) if len(rows) else ""})

    if not len(gains):
        for key, _ in CLAIMS[:3]:
            add(key, "not tested", f"needs the arms ft_all and {baseline}", gains)
    else:
        differences = gains["mean_difference"].to_numpy()
        if (differences > 0).all() and len(significant_gain(gains)) and \
                not len(significant_loss(gains)):
            verdict = "holds"
        elif len(significant_loss(gains)) or (differences <= 0).sum() > len(differences) / 2:
            verdict = "does not hold"
        else:
            verdict = "inconclusive: a gain at some sizes, none that counts"
        add("ft_all_beats_baseline", verdict, "ft_all above the baseline at every size and "
            "significantly at one or more; does not hold if significantly below anywhere or "
            "not above at most sizes", gains)

        first = gains.iloc[0]
        if len(gains) < 2:
            verdict = "not tested (one training size)"
        elif differences.argmax() == 0 and first["mean_difference"] > 0 and first["counts"]:
            verdict = "holds"
        elif differences.argmax() != 0:
            verdict = "does not hold"
        else:
            verdict = "inconclusive: largest at the fewest cases, but not a gain that counts"
        add("gain_largest_at_fewest", verdict, "the largest ft_all - baseline difference is "
            "at the smallest size and counts there", gains)

        if len(gains) < 2:
            verdict = "not tested (one training size)"
        elif np.all(np.diff(differences) <= 0) and first["mean_difference"] > 0 and \
                first["counts"]:
            verdict = "holds"
        elif differences[-1] >= differences[0]:
            verdict = "does not hold"
        else:
            verdict = "inconclusive: smaller at the largest size, but not shrinking throughout " \
                      "or without a gain that counts"
        add("gain_shrinks", verdict, "ft_all - baseline difference does not grow from one "
            "size to the next, and counts at the smallest", gains)

    last = _rows(family, "ft_last_three", "ft_all")
    if not len(last):
        add("last_layers_not_enough", "not tested", "needs the arms ft_last_three and ft_all",
            last)
    else:
        differences = last["mean_difference"].to_numpy()
        if (differences < 0).all() and len(significant_loss(last)):
            verdict = "holds"
        elif (differences >= 0).all() or len(significant_gain(last)):
            verdict = "does not hold"
        else:
            verdict = "inconclusive: below ft_all at some sizes, no difference that counts"
        # that FT_LastThree trails FT_All is a detected difference, not a null result
        judged.append({"claim": dict(CLAIMS)["last_layers_not_enough"], "verdict": verdict,
                       "rule": "ft_last_three below ft_all at every size and significantly at "
                               "one or more", "evidence": _describe(last)})
    return pd.DataFrame(judged), outcomes


def claims_markdown(claims, outcomes, family, baseline):
    """results/tables/claims.md: the controls first (they qualify every verdict), then each
    claim with its verdict and numbers, then the tests behind them."""
    lines = [
        "# The claims of Kaur et al. 2019, judged on this study",
        "",
        f"Per test subject, mean Dice over WT, TC and ET on its own grid; paired Wilcoxon "
        f"signed-rank tests against `{baseline}` (and FT_LastThree against FT_All), "
        f"Holm-corrected over all {len(family)} comparisons; a difference counts at Holm "
        f"p < {ALPHA}.",
        "",
        "## Controls",
        "",
        f"- {outcomes['positive']['text']}",
        f"- {outcomes['negative']['text']}",
        "",
        "## Claims",
        "",
        markdown(claims, ["claim", "verdict", "evidence"]),
        "## Tests",
        "",
        markdown(family) if len(family) else "No comparisons: the arms they need did not run.\n",
    ]
    return "\n".join(lines)


def claims_rst(claims, outcomes, baseline, learning_curve_png=None):
    """The same verdicts as reStructuredText: the opening page of the HTML report, with the
    learning curve embedded (the report is one file a reader may move)."""
    def cell(text):
        return str(text).replace("|", "/")

    lines = ["The claims of Kaur et al. 2019, judged on this study", "=" * 52, "",
             "Controls:", ""]
    lines += [f"- {cell(outcomes[c]['text'])}" for c in ("positive", "negative")]
    lines += ["", ".. list-table:: Claims",
              "   :header-rows: 1", "", "   * - claim", "     - verdict", "     - evidence"]
    for row in claims.itertuples():
        lines += [f"   * - {cell(row.claim)}", f"     - {cell(row.verdict)}",
                  f"     - {cell(row.evidence) or '-'}"]
    lines += ["", f"Per test subject, mean Dice over WT, TC, ET on its own grid; paired Wilcoxon "
              f"tests against {baseline}, Holm-corrected (results/tables/claims.md).", ""]
    if learning_curve_png:
        # docutils refuses lines over 10,000 characters; it removes the whitespace inside an
        # image URI, so the data URI goes over many short lines
        encoded = textwrap.wrap("data:image/png;base64," + base64.b64encode(
            learning_curve_png).decode(), 76)
        lines += ["Learning curve (mean Dice on the subjects' own grids against training cases):",
                  "", f".. image:: {encoded[0]}", *[f"   {part}" for part in encoded[1:]],
                  "   :alt: learning curve", ""]
    return "\n".join(lines)
