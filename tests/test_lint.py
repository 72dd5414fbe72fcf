"""The field's linters, clean: ruff (pyproject's config), snakefmt, snakemake --lint."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_snakemake

BIN = Path(sys.executable).parent
SNAKEMAKE_FILES = ["Snakefile", *sorted(str(p.relative_to(REPO))
                                        for p in (REPO / "rules").glob("*.smk"))]


def run_tool(*command):
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_has_nothing_to_say():
    result = run_tool(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_type_checker_has_nothing_to_say():
    """mypy on the library, annotated whole: a function without types is an error."""
    import tomllib

    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    assert settings["disallow_untyped_defs"] is True and settings["files"] == ["lesion_transfer"]
    assert "overrides" not in settings  # no module let off
    result = run_tool(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_snakemake_files_are_formatted_by_snakefmt():
    result = run_tool(str(BIN / "snakefmt"), "--check", *SNAKEMAKE_FILES)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


@pytest.mark.workflow
def test_snakemake_lint_has_nothing_to_say(tmp_path):
    shutil.copytree(REPO, tmp_path / "repo", ignore=shutil.ignore_patterns(
        "results*", ".snakemake", "logs", "benchmarks", ".git"))
    result = run_snakemake(tmp_path / "repo", "--lint", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Lints for" not in output


def rule_blocks():
    """{rule name: the text of its block} over rules/*.smk."""
    import re

    text = "".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    blocks = re.split(r"^\s*(?:rule|checkpoint) ", text, flags=re.MULTILINE)[1:]
    return {block.split(":")[0]: block for block in blocks}


def test_each_rule_reaches_its_code_in_one_hop():
    """A rule's script is workflow_scripts/<rule>.py and calls a library function named after
    the rule (`<rule>` or `<rule>_stage`)."""
    import re

    rules = rule_blocks()
    missing = []
    for rule in rules:
        script = REPO / "workflow_scripts" / f"{rule}.py"
        if rule == "all":
            continue
        if not script.exists():
            missing.append(f"{rule}: no {script.name}")
        elif not re.search(rf"\bimport (\([^)]*|.*)\b{rule}(_stage)?\b", script.read_text()):
            missing.append(f"{rule}: {script.name} calls no {rule} / {rule}_stage")
    assert not missing, missing


def test_no_stage_function_takes_more_than_five_parameters():
    """A rule's library function (what its script imports: `<rule>` or `<rule>_stage`) takes
    at most five parameters, its settings as one object, the paths by name."""
    import importlib
    import inspect
    import re

    crowded, found = [], set()
    for script in sorted((REPO / "workflow_scripts").glob("*.py")):
        rule = script.stem
        source = script.read_text()
        for module, names in re.findall(r"^from (lesion_transfer[\w.]*) import (\([^)]*\)|.*)$",
                                        source, re.MULTILINE):
            for name in re.findall(r"\w+", names):
                if name in (rule, f"{rule}_stage"):
                    function = getattr(importlib.import_module(module), name)
                    found.add(rule)
                    parameters = inspect.signature(function).parameters
                    if len(parameters) > 5:
                        crowded.append(f"{module}.{name}: {len(parameters)}")
    assert found == {p.stem for p in (REPO / "workflow_scripts").glob("*.py")}
    assert not crowded, crowded


def test_every_job_but_a_training_one_yields_the_cpu_to_training():
    """The rules that hold a GPU (training, inference) open their device; every other job
    steps back to the lowest CPU priority first (workflow.yield_cpu_to_training), so that a
    training job's spinning OpenMP threads keep their cores."""
    import re

    blocks = rule_blocks()

    def rules_asking(resource):
        return {name for name, block in blocks.items() if f"gpu={resource}" in block}

    gpu_rules = rules_asking("GPUS_PER_TRAINING_JOB")
    inference_rules = rules_asking("GPUS_PER_INFERENCE_JOB")
    assert {"pretrain_source", "finetune"} <= gpu_rules
    assert {"evaluate_model", "score_source"} <= inference_rules
    wrong = []
    for script in sorted((REPO / "workflow_scripts").glob("*.py")):
        source = script.read_text()
        opens_device = "job_device(" in source
        yields = re.search(r"^    yield_cpu_to_training\(\)$", source, re.MULTILINE)
        # inference asks for no GPU where the machine has none: it then runs beside training
        yields_without_gpu = re.search(r"^    if not snakemake\.resources\.gpu:.*\n"
                                       r"        yield_cpu_to_training\(\)$", source,
                                       re.MULTILINE)
        if script.stem in gpu_rules and (not opens_device or yields):
            wrong.append(f"{script.name}: a GPU rule's job that does not open its device")
        if script.stem in inference_rules and (not opens_device or not yields_without_gpu):
            wrong.append(f"{script.name}: inference that does not yield when it has no GPU")
        if script.stem not in gpu_rules | inference_rules and (opens_device or not yields):
            wrong.append(f"{script.name}: does not yield the CPU to training")
    assert not wrong, wrong


def test_the_pretrainings_take_a_training_slot_before_any_fine_tuning():
    """Snakemake starts the ready job of highest priority, then of largest inputs; a
    pretraining's inputs are small meta.json files, a fine-tuning's hold a model file, so
    without a priority the control source waited for every fine-tuning that did not need it,
    to run last with one core idle (bench/results/default_run.md, stop 46)."""
    import re

    blocks = rule_blocks()

    def priority(rule):
        found = re.search(r"^    priority: (\d+)$", blocks[rule], flags=re.MULTILINE)
        return int(found.group(1)) if found else 0

    assert priority("pretrain_source") > priority("finetune")
    assert priority("pretrain_control") > priority("finetune")
