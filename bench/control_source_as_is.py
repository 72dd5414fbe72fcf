"""What the positive control's source scores on the target's test folds as it is (its own
head, not fine-tuned), next to the arms of a finished study: whether a weak positive control
lacks a good source, or loses it in fine-tuning (bench/results/default_run.md, 2026-12-01).

Per fold: the source predicts the fold's test and local-validation subjects, its operating
point is chosen on the local validation subjects (as every arm's is), and the test subjects
are scored in template space; each arm's template-space scores of the same fold are read from
the study (mean over repeats).

    python bench/control_source_as_is.py --results results [--arms scratch positive_control]
"""

import argparse
import json
import logging
import tempfile
from pathlib import Path

import pandas as pd

from lesion_transfer.evaluate.stages import (
    predict_probabilities,
    score_in_template_space,
    write_operating_point,
)

REGIONS = ["WT", "TC", "ET"]


def fold_scores(results, target, fold, split, work):
    """The control source's test-subject scores of one fold (template space), as a table."""
    def meta(subject):
        return results / "cache" / target / subject / "meta.json"

    model = results / "models" / "controls" / "positive" / "model.pt"
    test = [meta(s) for s in split["test"]]
    validation = [meta(s) for s in split["local_validation"]]
    log = logging.getLogger("control_source_as_is")
    probabilities = predict_probabilities(model, model.parent / "model_card.json",
                                          test + validation, "cpu", "auto", log)
    write_operating_point(probabilities, validation, work / f"point{fold}.json", log)
    score_in_template_space(probabilities, work / f"point{fold}.json", test,
                            {"scores": work / f"scores{fold}.tsv",
                             "labels": work / f"labels{fold}.npz"},
                            {"strategy": "control source as is", "size": 0, "fold": fold,
                             "repeat": 0}, log)
    return pd.read_csv(work / f"scores{fold}.tsv", sep="\t")


def arm_mean(results, arm, fold):
    """An arm's mean Dice over WT, TC, ET and the fold's test subjects, averaged over its runs
    (every size it was trained at), in template space."""
    paths = sorted((results / "metrics" / "template" / arm).glob(f"n*/fold{fold}*.tsv"))
    scores = pd.concat(pd.read_csv(p, sep="\t") for p in paths)
    return scores[scores["region"].isin(REGIONS)]["dice"].mean(), len(paths)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--target", default="brats_phantom")
    parser.add_argument("--arms", nargs="+", default=["scratch", "positive_control", "ft_all"])
    args = parser.parse_args()
    splits = json.loads((args.results / "splits" / f"{args.target}.json").read_text())
    print("| fold | control source as is | " + " | ".join(args.arms) + " |")
    print("|---|---|" + "---|" * len(args.arms))
    with tempfile.TemporaryDirectory() as work:
        for fold, split in enumerate(splits["folds"]):
            scores = fold_scores(args.results, args.target, fold, split, Path(work))
            own = scores[scores["region"].isin(REGIONS)]["dice"].mean()
            arms = [arm_mean(args.results, arm, fold) for arm in args.arms]
            print(f"| {fold} | {own:.3f} | " + " | ".join(f"{mean:.3f} ({runs} runs)"
                                                     for mean, runs in arms) + " |")


if __name__ == "__main__":
    main()
