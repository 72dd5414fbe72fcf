"""The report's tables and the claims against known truth: comparisons over runs, intervals,
verdicts under every combination of controls; the qualitative panels' choice of subjects."""

import numpy as np
import pandas as pd
import pytest
from conftest import report_settings

from lesion_transfer.report import tables
from lesion_transfer.report.stages import pick_subjects

# the schema's report settings (95 %, smallest effect 0.05, seed 0), a cheaper bootstrap
SETTINGS = report_settings(bootstrap_samples=200)


def scores_table(differences, baseline=0.5, folds=2, repeats=2):
    """ft_all and scratch on the same subjects: each fold's subjects in every repeat, with
    ft_all ahead by `differences` (one per subject of a fold)."""
    rows = []
    for fold in range(folds):
        for repeat in range(repeats):
            for i, difference in enumerate(differences):
                for strategy, value in (("scratch", baseline), ("ft_all", baseline + difference)):
                    rows.append({"strategy": strategy, "size": 20, "fold": fold,
                                 "repeat": repeat, "subject": f"f{fold}s{i}", "region": "WT",
                                 "dice": value, "hd95": 1.0, "sensitivity": 1.0,
                                 "specificity": 1.0})
    return pd.DataFrame(rows)


def test_region_comparisons_take_the_run_as_the_unit():
    table = tables.region_comparisons(scores_table([0.01, 0.02, 0.03, 0.04, 0.05, 0.06]),
                                      "scratch", SETTINGS)
    row = table.iloc[0]
    assert (row["strategy"], row["runs"], row["subjects"]) == ("ft_all", 4, 12)
    assert row["estimate"] == pytest.approx(0.035)
    # every run alike, so no spread between runs; only the subjects' own sampling is left
    assert row["sd_runs"] == pytest.approx(0.0)
    assert row["verdict"] == "holds" and row["p_better"] == 1.0


def test_summary_interval_brackets_the_mean_and_orders_regions():
    scores = scores_table(np.linspace(-0.2, 0.3, 12))
    scores = pd.concat([scores, scores.assign(region="ET"), scores.assign(region="TC")])
    summary = tables.summarise(scores, samples=500, confidence=0.95, seed=3)
    assert list(summary["region"][:3]) == ["WT", "TC", "ET"]
    for row in summary.itertuples():
        assert row.dice_ci_low <= row.dice_mean <= row.dice_ci_high
        assert row.n == 12 * 2 * 2  # subjects of a fold x folds x repeats
    markdown = tables.markdown(tables.dice_overview(summary))
    assert markdown.splitlines()[0] == "| strategy | size | WT | TC | ET |"


def test_qualitative_subjects_span_the_range_of_tumour_sizes():
    from types import SimpleNamespace

    subjects = [SimpleNamespace(name=f"s{i}", label=np.ones(i + 1)) for i in range(7)]
    chosen = [s.name for s in pick_subjects(subjects, 3)]
    assert chosen == ["s0", "s3", "s6"]
    assert len(pick_subjects(subjects[:2], 3)) == 2


# --- the claims and the controls --------------------------------------------------------------



def study(gains, sizes=(4, 8, 16), folds=2, repeats=4, subjects=6, run_sd=0.01, seed=0):
    """Scores of a study whose arms differ from scratch by known amounts per size (`gains`:
    {arm: [difference at each size]}); every arm of every run (fold, repeat) gets seeded
    noise of SD `run_sd`, each subject a small fixed offset."""
    rng = np.random.default_rng(seed)
    rows = []
    arms = {"scratch": [0.0] * len(sizes), **gains}
    for s, size in enumerate(sizes):
        for fold in range(folds):
            for repeat in range(repeats):
                for arm, gain in arms.items():
                    run = rng.normal(0, run_sd)
                    for i in range(subjects):
                        for region in ("WT", "TC", "ET"):
                            rows.append({"strategy": arm, "size": size, "fold": fold,
                                         "repeat": repeat, "subject": f"f{fold}s{i}",
                                         "region": region,
                                         "dice": 0.5 + 0.01 * i + gain[s] + run})
    return pd.DataFrame(rows)


def judged(gains, **kwargs):
    from lesion_transfer.report import claims

    means = claims.subject_mean_dice(study(gains, **kwargs))
    family = claims.comparison_family(means, "scratch", SETTINGS)
    calibration = claims.calibration_family(means, "scratch", SETTINGS)
    verdicts, outcomes = claims.judge_claims(family, calibration, "scratch")
    return dict(zip(verdicts["claim"], verdicts["verdict"])), outcomes, family


def verdict_of(verdicts, key):
    from lesion_transfer.report.claims import CLAIMS

    return verdicts[dict(CLAIMS)[key]]


PAPER = {"ft_all": [0.2, 0.1, 0.0], "ft_last_three": [0.0, -0.1, -0.2],
         "positive_control": [0.3, 0.2, 0.1], "negative_control": [0.0, 0.0, 0.0]}


def test_the_papers_finding_is_judged_to_hold_with_both_controls_behaving():
    verdicts, outcomes, family = judged({**PAPER, "ft_all": [0.3, 0.2, 0.1]})
    assert outcomes["positive"]["behaved"] and outcomes["negative"]["behaved"]
    assert outcomes["calibration"]["ran"] and outcomes["calibration"]["behaved"]
    assert set(verdicts.values()) == {"holds"}, verdicts
    # 5 comparisons at 3 sizes, and the gain at 4 minus the gain at 8 and at 16, and at 8
    # minus at 16
    assert len(family) == 5 * 3 + 3
    gains = family[(family["arm"] == "ft_all") & (family["reference"] == "scratch")
                   & (family["comparison"] == "gain")]
    assert gains["estimate"].to_numpy() == pytest.approx([0.3, 0.2, 0.1], abs=0.02)
    assert (gains["runs"] == 8).all() and (gains["p_better"] == 1).all()


def test_the_claims_share_one_family_and_each_control_has_its_own():
    from lesion_transfer.report import claims, statistics

    means = claims.subject_mean_dice(study({**PAPER, "ft_all": [0.3, 0.2, 0.1]}, sizes=(4,),
                                           run_sd=0.05))
    family = claims.comparison_family(means, "scratch", SETTINGS)
    members = family.groupby("family")["arm"].agg(list).to_dict()
    # at one size: FT_All against scratch, FT_LastThree and the negative control; each
    # control against scratch alone
    assert members == {"claims": ["ft_all"] * 3, "positive_control": ["positive_control"],
                       "negative_control": ["negative_control"]}
    alone = statistics.judge_family([claims.difference(means, "positive_control", "scratch", 4)],
                                    SETTINGS)[0]
    positive = family[family["family"] == "positive_control"].iloc[0]
    assert (positive["ci_low"], positive["mde"]) == pytest.approx((alone["ci_low"], alone["mde"]))
    # the same comparison judged among three is wider: the claims' family pays for its size
    among_three = statistics.judge_family(
        [claims.difference(means, arm, "scratch", 4)
         for arm in ("positive_control", "ft_all", "negative_control")], SETTINGS)[0]
    assert among_three["mde"] > alone["mde"] * 1.1


def test_a_gain_the_test_subjects_keep_out_of_reach_says_so_rather_than_ask_for_repeats():
    from lesion_transfer.report import claims

    # every run alike (no spread between runs), the subjects' differences far apart: the MDE
    # is the subjects' sampling alone, above 0.05 however many repeats there are
    differences = [-0.4, -0.2, 0.0, 0.2, 0.4, 0.6]
    means = claims.subject_mean_dice(
        scores_table(differences).replace({"strategy": {"ft_all": "positive_control"}}))
    family = claims.comparison_family(means, "scratch", SETTINGS)
    positive = family[family["family"] == "positive_control"].iloc[0]
    assert positive["repeats_needed"] is None or np.isnan(positive["repeats_needed"])
    assert positive["mde"] > SETTINGS.smallest_effect
    text = claims.control_outcomes(family, pd.DataFrame(), "scratch")["positive"]["text"]
    assert "no number of repeats reaches the smallest effect" in text


def test_no_difference_that_the_study_could_see_does_not_hold():
    verdicts, outcomes, _ = judged(PAPER)
    # ft_all's gain at 16 cases is 0, measured tightly: below the smallest effect
    assert verdict_of(verdicts, "ft_all_beats_baseline") == "does not hold"


def test_run_to_run_spread_makes_the_same_gains_inconclusive():
    verdicts, outcomes, family = judged({**PAPER, "ft_all": [0.3, 0.2, 0.1]}, run_sd=0.3,
                                        repeats=2)
    assert verdict_of(verdicts, "ft_all_beats_baseline").startswith("inconclusive")
    gains = family[(family["arm"] == "ft_all") & (family["comparison"] == "gain")]
    assert (gains["mde"] > 0.3).all() and (gains["repeats_needed"].fillna(np.inf) > 2).all()


def test_no_gain_with_a_failed_positive_control_is_inconclusive_never_does_not_hold():
    verdicts, outcomes, _ = judged({
        "ft_all": [-0.1, -0.1, -0.1], "positive_control": [0.0, 0.0, 0.0],
        "negative_control": [0.0, 0.0, 0.0]})
    assert not outcomes["positive"]["behaved"]
    assert "NOT above" in outcomes["positive"]["text"]
    from lesion_transfer.report.claims import INSENSITIVE

    assert verdict_of(verdicts, "ft_all_beats_baseline") == INSENSITIVE


def test_a_loss_with_a_working_positive_control_does_not_hold():
    verdicts, _, _ = judged({"ft_all": [-0.1, -0.1, -0.1],
                             "positive_control": [0.3, 0.2, 0.1]})
    assert verdict_of(verdicts, "ft_all_beats_baseline") == "does not hold"
    assert verdict_of(verdicts, "gain_largest_at_fewest") != "holds"


def test_a_gain_that_a_useless_source_also_shows_is_not_credited():
    from lesion_transfer.report.claims import UNSPECIFIC

    verdicts, outcomes, _ = judged({"ft_all": [0.2, 0.1, 0.1],
                                    "positive_control": [0.3, 0.2, 0.1],
                                    "negative_control": [0.2, 0.1, 0.1]})
    assert not outcomes["negative"]["behaved"]
    assert verdict_of(verdicts, "ft_all_beats_baseline") == UNSPECIFIC


def test_a_gain_that_grows_with_cases_is_judged_against_the_paper():
    verdicts, _, _ = judged({"ft_all": [0.1, 0.2, 0.3], "positive_control": [0.3, 0.2, 0.1]})
    assert verdict_of(verdicts, "ft_all_beats_baseline") == "holds"
    assert verdict_of(verdicts, "gain_largest_at_fewest") == "does not hold"
    assert verdict_of(verdicts, "gain_shrinks") == "does not hold"


def test_the_calibration_pairs_repeats_of_the_baseline_and_counts_a_seed_effect():
    from lesion_transfer.report import claims

    scores = study({"ft_all": [0.1, 0.1, 0.1]}, repeats=4)
    # a baseline whose odd repeats score 0.2 higher: a "seed effect" the calibration must see
    odd = (scores["strategy"] == "scratch") & (scores["repeat"] % 2 == 1)
    scores.loc[odd, "dice"] += 0.2
    means = claims.subject_mean_dice(scores)
    pairs = claims.calibration_difference(means, "scratch", 4)
    assert sorted(pairs["repeat"].unique()) == [0, 1] and len(pairs) == 2 * 2 * 6
    assert pairs["value"].mean() == pytest.approx(-0.2, abs=0.02)
    calibration = claims.calibration_family(means, "scratch", SETTINGS)
    family = claims.comparison_family(means, "scratch", SETTINGS)
    verdicts, outcomes = claims.judge_claims(family, calibration, "scratch")
    assert not outcomes["calibration"]["behaved"]
    assert "COUNTED" in outcomes["calibration"]["text"]
    assert (claims.calibration_family(means[means["repeat"] == 0], "scratch", SETTINGS)
            .empty)


def test_claims_pages_name_every_claim_the_controls_and_the_calibration():
    from lesion_transfer.report import claims

    means = claims.subject_mean_dice(study({"ft_all": [0.2, 0.1, 0.05],
                                            "positive_control": [0.3, 0.2, 0.1]}))
    family = claims.comparison_family(means, "scratch", SETTINGS)
    calibration = claims.calibration_family(means, "scratch", SETTINGS)
    table, outcomes = claims.judge_claims(family, calibration, "scratch")
    page = claims.claims_markdown(table, outcomes, family, calibration, SETTINGS, "scratch")
    assert all(text in page for _, text in claims.CLAIMS[:3])
    assert "positive control minus scratch at 4 cases" in page
    assert "negative control: not run" in page and "calibration, scratch minus scratch" in page
    assert "MDE" in page and "repeats" in page
    rst = claims.claims_rst(table, outcomes, SETTINGS, "scratch", b"\x89PNG fake")
    assert ".. list-table:: Claims" in rst and "data:image/png;base64," in rst
