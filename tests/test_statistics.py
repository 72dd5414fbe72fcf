"""The study's statistical procedure (lesion_transfer.report.statistics) against simulated
studies whose variance components and true effect are known, and against hand-computed cases.

The components are the repository's own measurements (../shared/STATISTICS-FACTS.md): the
run-to-run SD of a fold model's mean Dice about 0.08, so about 0.113 for a paired difference of
two independently seeded arms; a per-subject SD of a paired difference about 0.12, split here
into a stable per-subject effect (0.08) and subject-by-run noise (0.09)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lesion_transfer.report import statistics

RUN_SD, SUBJECT_SD, NOISE_SD, SUBJECTS = 0.113, 0.08, 0.09, 24


def simulated(effect, folds, repeats, rng, subjects=SUBJECTS):
    """Per-subject differences of one simulated study: d[f, r, s] = effect + a[s] + b[f, r]
    + e[f, r, s]; the runs of a fold share its subjects (a)."""
    a = rng.normal(0, SUBJECT_SD, (folds, 1, subjects))
    b = rng.normal(0, RUN_SD, (folds, repeats, 1))
    e = rng.normal(0, NOISE_SD, (folds, repeats, subjects))
    fold, repeat, subject = np.meshgrid(range(folds), range(repeats), range(subjects),
                                        indexing="ij")
    return pd.DataFrame({"fold": fold.ravel(), "repeat": repeat.ravel(),
                         "subject": (fold * 1000 + subject).ravel(),
                         "value": (effect + a + b + e).ravel()})


def true_spread(folds, repeats):
    """The Spread the procedure estimates, from the true components."""
    return statistics.Spread(folds, repeats, RUN_SD ** 2 + NOISE_SD ** 2 / SUBJECTS,
                             folds * (repeats - 1), SUBJECT_SD ** 2 / (folds * SUBJECTS),
                             folds * (SUBJECTS - 1))


def detects(values, level):
    estimate = statistics.run_means(values).mean()
    low, high = statistics.t_interval(estimate, statistics.spread_of(values), level)
    return low > 0 or high < 0


@pytest.mark.parametrize("folds,repeats", [(2, 4), (4, 3)])
def test_with_no_true_effect_a_difference_is_called_at_most_at_the_nominal_rate(folds, repeats):
    """The same simulated studies read the way the procedure replaced reads them (one run per
    arm and fold, a paired test over the pooled subjects) call a difference far more often:
    the simulation holds the run-to-run spread that makes the unit matter."""
    rng = np.random.default_rng(20261130)
    level, studies = 0.05, 1500
    called_over_runs, called_over_subjects = [], []
    for _ in range(studies):
        study = simulated(0.0, folds, repeats, rng)
        called_over_runs.append(detects(study, level))
        one_run = study[study["repeat"] == 0]["value"]
        called_over_subjects.append(stats.ttest_1samp(one_run, 0).pvalue < level)
    # nominal rate plus three standard errors of the simulation
    assert np.mean(called_over_runs) <= level + 3 * np.sqrt(level * (1 - level) / studies)
    assert np.mean(called_over_subjects) > 0.3


@pytest.mark.parametrize("folds,repeats", [(2, 4), (4, 3)])
def test_a_true_effect_at_the_minimum_detectable_effect_is_detected_in_about_80_percent(
        folds, repeats):
    rng = np.random.default_rng(11)
    level = 0.05 / 8  # a family of eight comparisons
    effect = statistics.minimum_detectable_effect(true_spread(folds, repeats), level)
    detected = np.mean([detects(simulated(effect, folds, repeats, rng), level)
                        for _ in range(1200)])
    assert 0.74 <= detected <= 0.86, (effect, detected)


def test_one_repeat_is_a_paired_t_over_the_runs():
    values = pd.DataFrame({"fold": [0, 0, 1, 1, 2, 2], "repeat": 0,
                           "subject": ["a", "b", "c", "d", "e", "f"],
                           "value": [0.1, 0.3, 0.0, 0.2, 0.3, 0.5]})
    run_means = [0.2, 0.1, 0.4]
    spread = statistics.spread_of(values)
    assert spread.subject_term == 0 and spread.df() == 2
    assert statistics.paired_t(np.mean(run_means), spread) == pytest.approx(
        stats.ttest_1samp(run_means, 0).pvalue)
    low, high = statistics.t_interval(np.mean(run_means), spread, 0.05)
    half = stats.t.ppf(0.975, 2) * np.std(run_means, ddof=1) / np.sqrt(3)
    assert (low, high) == pytest.approx((np.mean(run_means) - half, np.mean(run_means) + half))


def test_the_spread_of_repeated_runs_against_a_hand_computed_case():
    # fold 0: subjects a, b over repeats 0 and 1; fold 1: subjects c, d
    values = pd.DataFrame({"fold": [0, 0, 0, 0, 1, 1, 1, 1],
                           "repeat": [0, 0, 1, 1, 0, 0, 1, 1],
                           "subject": ["a", "b", "a", "b", "c", "d", "c", "d"],
                           "value": [0.1, 0.3, 0.3, 0.5, 0.0, 0.0, 0.2, 0.4]})
    spread = statistics.spread_of(values)
    # run means 0.2, 0.4 | 0.0, 0.3: about their fold means 0.3 and 0.15, squares
    # 0.01 + 0.01 + 0.0225 + 0.0225 over K (R - 1) = 2 degrees of freedom
    assert spread.run_variance == pytest.approx(0.065 / 2) and spread.run_df == 2
    # subjects' means over repeats: a 0.2, b 0.4 (variance 0.02); c 0.1, d 0.2 (0.005);
    # each over its 2 subjects, the sum over K^2 = 4
    assert spread.subject_term == pytest.approx((0.02 / 2 + 0.005 / 2) / 4)
    assert spread.variance() == pytest.approx(0.065 / 2 / 4 + 0.0125 / 4)


def test_the_minimum_detectable_effect_tends_to_the_textbook_value_with_many_runs():
    spread = statistics.Spread(10, 50, 0.01, 10 * 49, 0.0, 1)
    standard_error = np.sqrt(0.01 / 500)
    assert statistics.minimum_detectable_effect(spread, 0.05) == pytest.approx(
        (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * standard_error, rel=0.01)
    assert statistics.minimum_detectable_effect(statistics.Spread(2, 1, np.nan, 1, 0, 1),
                                                0.05) == np.inf


def test_the_repeats_needed_are_the_fewest_that_reach_the_effect():
    spread = true_spread(2, 3)
    needed = statistics.repeats_needed(spread, 0.1, 0.05)
    assert statistics.minimum_detectable_effect(spread, 0.05, needed) <= 0.1
    assert statistics.minimum_detectable_effect(spread, 0.05, needed - 1) > 0.1
    # the test subjects' own sampling is a floor that repeats cannot lower
    assert statistics.repeats_needed(spread, 0.001, 0.05) is None


def test_the_hierarchical_bootstrap_sees_the_spread_between_runs():
    """Two runs whose subjects agree within each run: resampling subjects alone would give
    an interval of width 0; resampling runs gives the spread between them."""
    rng = np.random.default_rng(0)
    low, high = statistics.hierarchical_bootstrap([np.full(10, 0.1), np.full(10, 0.3)], 2000,
                                                  0.95, rng)
    # the bootstrap's 0.1 .. 0.3, widened about the mean 0.2 by sqrt(2 / 1)
    assert low == pytest.approx(0.2 - 0.1 * np.sqrt(2)) and high == pytest.approx(
        0.2 + 0.1 * np.sqrt(2))
    assert np.isnan(statistics.hierarchical_bootstrap([np.ones(5)], 100, 0.95, rng)[0])


def test_holm_matches_a_hand_computed_example():
    adjusted = statistics.holm([0.01, 0.04, 0.03, np.nan, 0.2])
    # sorted 0.01, 0.03, 0.04, 0.2 with m = 4: 0.04, 0.09, 0.09 (monotone), 0.2
    assert np.allclose(adjusted[[0, 2, 1, 4]], [0.04, 0.09, 0.09, 0.2])
    assert np.isnan(adjusted[3])


def test_verdicts_read_the_interval_against_zero_and_the_smallest_effect():
    assert statistics.verdict(0.01, 0.2, 0.05) == "holds"
    assert statistics.verdict(-0.03, 0.04, 0.05) == "does not hold"
    assert statistics.verdict(-0.03, 0.06, 0.05) == "inconclusive"
    assert statistics.verdict(np.nan, np.nan, 0.05) == "inconclusive"
    assert statistics.probability_better([0.1, -0.1, 0.0, 0.2]) == pytest.approx(0.625)
