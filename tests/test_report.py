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
