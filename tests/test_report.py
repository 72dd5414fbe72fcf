"""The report's tables against hand-computed truth: Holm's correction, the exact signed-rank
test, bootstrap intervals; the qualitative panels' choice of subjects."""

import numpy as np
import pandas as pd
import pytest

from lesion_transfer.report import tables
from lesion_transfer.report.stages import pick_subjects


def test_holm_matches_a_hand_computed_example():
    adjusted = tables.holm([0.01, 0.04, 0.03, np.nan, 0.2])
    # sorted 0.01, 0.03, 0.04, 0.2 with m = 4: 0.04, 0.09, 0.09 (monotone), 0.2
    assert np.allclose(adjusted[[0, 2, 1, 4]], [0.04, 0.09, 0.09, 0.2])
    assert np.isnan(adjusted[3])


def scores_table(differences, baseline=0.5):
    rows = []
    for i, difference in enumerate(differences):
        for strategy, value in (("scratch", baseline), ("ft_all", baseline + difference)):
            rows.append({"strategy": strategy, "size": 20, "fold": 0, "subject": f"s{i}",
                         "region": "WT", "dice": value, "hd95": 1.0, "sensitivity": 1.0,
                         "specificity": 1.0})
    return pd.DataFrame(rows)


def test_paired_wilcoxon_against_the_exact_distribution():
    # six subjects, all better: the exact two-sided p of the signed-rank test is 2 / 2**6
    tests = tables.paired_tests(scores_table([0.01, 0.02, 0.03, 0.04, 0.05, 0.06]))
    row = tests.iloc[0]
    assert (row["strategy"], row["wins"], row["losses"], row["n"]) == ("ft_all", 6, 0, 6)
    assert row["p_value"] == pytest.approx(2 / 64)
    assert row["mean_difference"] == pytest.approx(0.035)
    identical = tables.paired_tests(scores_table([0.0] * 5))
    assert identical.iloc[0]["p_value"] == 1.0


def test_summary_interval_brackets_the_mean_and_orders_regions():
    scores = scores_table(np.linspace(-0.2, 0.3, 12))
    scores = pd.concat([scores, scores.assign(region="ET"), scores.assign(region="TC")])
    summary = tables.summarise(scores, samples=500, seed=3)
    assert list(summary["region"][:3]) == ["WT", "TC", "ET"]
    for row in summary.itertuples():
        assert row.dice_ci_low <= row.dice_mean <= row.dice_ci_high
        assert row.n == 12
    markdown = tables.markdown(tables.dice_overview(summary))
    assert markdown.splitlines()[0] == "| strategy | size | WT | TC | ET |"


def test_qualitative_subjects_span_the_range_of_tumour_sizes():
    from types import SimpleNamespace

    subjects = [SimpleNamespace(name=f"s{i}", label=np.ones(i + 1)) for i in range(7)]
    chosen = [s.name for s in pick_subjects(subjects, 3)]
    assert chosen == ["s0", "s3", "s6"]
    assert len(pick_subjects(subjects[:2], 3)) == 2


# --- the claims and the controls --------------------------------------------------------------

def study(gains, sizes=(4, 8, 16), subjects=12, baseline=0.5):
    """Scores of a study whose arms differ from scratch by known amounts per size (`gains`:
    {arm: [difference at each size]}, relative to scratch; a small per-subject spread keeps
    the differences distinct, and never changes their sign)."""
    rows = []
    for s, size in enumerate(sizes):
        for i in range(subjects):
            spread = 0.001 * (i + 1)
            arms = {"scratch": baseline, **{arm: baseline + gain[s] + np.sign(gain[s]) * spread
                                            for arm, gain in gains.items()}}
            for arm, value in arms.items():
                for region in ("WT", "TC", "ET"):
                    rows.append({"strategy": arm, "size": size, "subject": f"s{i}",
                                 "region": region, "dice": value})
    return pd.DataFrame(rows)


def judged(gains):
    from lesion_transfer.report import claims

    family = claims.comparison_family(claims.subject_mean_dice(study(gains)), "scratch")
    verdicts, outcomes = claims.judge_claims(family, "scratch")
    return dict(zip(verdicts["claim"], verdicts["verdict"])), outcomes, family


def verdict_of(verdicts, key):
    from lesion_transfer.report.claims import CLAIMS

    return verdicts[dict(CLAIMS)[key]]


def test_the_papers_finding_is_judged_to_hold_with_both_controls_behaving():
    verdicts, outcomes, family = judged({
        "ft_all": [0.2, 0.1, 0.05], "ft_last_three": [0.1, 0.0, -0.05],
        "positive_control": [0.3, 0.2, 0.1], "negative_control": [0.0, 0.0, 0.0]})
    assert outcomes["positive"]["behaved"] and outcomes["negative"]["behaved"]
    assert set(verdicts.values()) == {"holds"}, verdicts
    # 12 comparisons (3 arms against scratch, ft_last_three against ft_all; 3 sizes), 12
    # subjects all one way: exact p 2 / 2**12, times 12 at most under Holm
    assert len(family) == 12
    gains = family[(family["arm"] == "ft_all")].sort_values("size")
    # the gain plus the mean spread, 0.001 x (1 + ... + 12) / 12 = 0.0065
    assert gains["mean_difference"].tolist() == pytest.approx([0.2065, 0.1065, 0.0565])
    assert gains["p_value"].max() == pytest.approx(2 / 2 ** 12)


def test_no_gain_with_a_failed_positive_control_is_inconclusive_never_does_not_hold():
    verdicts, outcomes, _ = judged({
        "ft_all": [-0.1, -0.1, -0.1], "positive_control": [0.0, 0.0, 0.0],
        "negative_control": [0.0, 0.0, 0.0]})
    assert not outcomes["positive"]["behaved"]
    assert "NOT beat" in outcomes["positive"]["text"]
    from lesion_transfer.report.claims import INSENSITIVE

    assert verdict_of(verdicts, "ft_all_beats_baseline") == INSENSITIVE
    assert "does not hold" not in verdicts.values()


def test_a_loss_with_a_working_positive_control_does_not_hold():
    verdicts, _, _ = judged({"ft_all": [-0.1, -0.1, -0.1],
                             "positive_control": [0.3, 0.2, 0.1]})
    assert verdict_of(verdicts, "ft_all_beats_baseline") == "does not hold"
    assert verdict_of(verdicts, "gain_largest_at_fewest") != "holds"


def test_a_gain_that_a_useless_source_also_shows_is_not_credited():
    from lesion_transfer.report.claims import UNSPECIFIC

    verdicts, outcomes, _ = judged({"ft_all": [0.2, 0.1, 0.05],
                                    "positive_control": [0.3, 0.2, 0.1],
                                    "negative_control": [0.2, 0.1, 0.05]})
    assert not outcomes["negative"]["behaved"]
    assert verdict_of(verdicts, "ft_all_beats_baseline") == UNSPECIFIC


def test_a_gain_that_grows_with_cases_is_judged_against_the_paper():
    verdicts, _, _ = judged({"ft_all": [0.05, 0.1, 0.2], "positive_control": [0.3, 0.2, 0.1]})
    assert verdict_of(verdicts, "ft_all_beats_baseline") == "holds"
    assert verdict_of(verdicts, "gain_largest_at_fewest") == "does not hold"
    assert verdict_of(verdicts, "gain_shrinks") == "does not hold"


def test_claims_pages_name_every_claim_and_the_controls():
    from lesion_transfer.report import claims

    verdicts, outcomes, family = judged({"ft_all": [0.2, 0.1, 0.05],
                                         "positive_control": [0.3, 0.2, 0.1]})
    table, _ = claims.judge_claims(family, "scratch")
    page = claims.claims_markdown(table, outcomes, family, "scratch")
    assert all(text in page for _, text in claims.CLAIMS[:3])
    assert "positive control vs scratch at 4 cases" in page
    assert "negative control: not run" in page
    rst = claims.claims_rst(table, outcomes, "scratch", b"\x89PNG fake")
    assert ".. list-table:: Claims" in rst and "data:image/png;base64," in rst
