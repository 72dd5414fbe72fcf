"""What a new user types: the README's commands, run as written, and the pinned install."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_study, run_snakemake
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from readme_commands import every_snakemake_command, readme_command

CONSTRAINTS = REPO / "envs" / "constraints.txt"


def pins(lines):
    """{normalised name: version} of `name==version` lines."""
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            requirement = Requirement(line)
            found[canonicalize_name(requirement.name)] = str(requirement.specifier)[2:]
    return found


def run_in_repository(command):
    """A README command as a user's shell runs it, from the repository root, with this
    environment's `snakemake` and `python` first on the PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_readme_set_up_installs_the_pinned_versions_and_differs_only_by_the_extra():
    install, run = readme_command("main").split(" && ")
    test_install, test_run = readme_command("test").split(" && ")
    assert "-c envs/constraints.txt" in install and "torch==" in install
    # the tests run every framework's sources, so they install every framework's extra
    assert test_install == install.replace("-e .", "-e '.[test,nnunet]'")
    assert run.startswith("snakemake ") and test_run == "python -m pytest"


def test_ci_runs_the_readme_test_command_in_a_fresh_virtual_environment():
    ci = (REPO / ".ci" / "run").read_text()
    assert "python3 -m venv" in ci and "mktemp -d" in ci
    assert "readme_commands.py test" in ci  # the command itself comes from the README


@pytest.mark.workflow
def test_the_readme_main_command_plans_the_study_from_the_repository_root():
    """Exactly as typed (no --snakefile, --profile or --directory), as a dry run: the
    workflow's default profile must be readable and the embedded default must build."""
    command = readme_command("main").split(" && ")[1]
    result = run_in_repository(f"{command} --dry-run")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Using workflow specific profile profiles/default" in output
    # three phantom cohorts: source, target and the positive control's
    assert re.search(r"^synthesize_cohort\s+3$", output, re.MULTILINE), output[-4000:]


@pytest.mark.workflow
def test_the_readme_slurm_command_plans_the_study():
    command = readme_command("slurm")
    assert "--profile profiles/slurm" in command
    result = run_in_repository(f"{command} --dry-run")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    # three phantom cohorts: source, target and the positive control's
    assert re.search(r"^synthesize_cohort\s+3$", output, re.MULTILINE), output[-4000:]


README_COMMANDS = every_snakemake_command()
REPORT_COMMANDS = [c for c in README_COMMANDS if "--report" in c.split()]


@pytest.mark.workflow
@pytest.mark.parametrize("command", [c for c in README_COMMANDS if c not in REPORT_COMMANDS])
def test_every_snakemake_command_in_the_readme_runs_as_written(command):
    """From the repository root, as a dry run where the command is not one already;
    configs/paper.yaml, whose data is not here, is refused naming the missing data's key."""
    words = command.split()
    dry = {"-n", "--dry-run", "--lint"} & set(words)
    result = run_in_repository(command if dry else f"{command} --dry-run")
    output = result.stdout + result.stderr
    if "configs/paper.yaml" in words:
        assert result.returncode == 1, output[-4000:]
        assert "refused: config key 'datasets.ms.location': expected the dataset's files at " \
               "/data/ms_cohort/manifest.csv, found nothing there" in result.stderr
        return
    assert result.returncode == 0, output[-4000:]
    assert "--lint" in words or "Building DAG of jobs" in output, output[-4000:]


@pytest.mark.workflow
@pytest.mark.parametrize("command", REPORT_COMMANDS)
def test_the_readme_report_command_writes_the_report_of_a_finished_study(command, ci_study,
                                                                          tmp_path):
    study = copy_study(ci_study, tmp_path / "study")
    (study / "results" / "report.html").unlink()
    run_snakemake(study, *command.split()[1:], configfile=REPO / "configs" / "ci.yaml")
    assert "learning_curve.png" in (study / "results" / "report.html").read_text()


@pytest.mark.workflow
def test_the_readme_first_line_alone_installs_what_the_report_needs(ci_study, tmp_path):
    """The README's first line, exactly: its install in a fresh virtual environment (no test
    extra), then its main command with that environment's Snakemake, on a copy of the
    finished tiny study: the run ends by writing results/report.html, which needs Snakemake's
    report dependencies (pygments) in what the line installed (issue 26)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", VIRTUAL_ENV=str(venv))
    install, main = readme_command("main").split(" && ")

    def shell(command, cwd):
        return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=1800)

    installed = shell(install, REPO)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-4000:]
    assert not (venv / "bin" / "pytest").exists()  # the test extra stays out

    study = copy_study(ci_study, tmp_path / "study")
    # a finished study with its tables to write again: a run with nothing to do writes no report
    for written in ("report.html", "tables/summary.tsv"):
        (study / "results" / written).unlink()
    ran = shell(f"{main} --directory {study} --configfile {REPO / 'configs' / 'ci.yaml'}", REPO)
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, output[-6000:]
    assert f"{venv}/bin" in shell("command -v snakemake", REPO).stdout
    report = (study / "results" / "report.html").read_text()
    assert "learning_curve.png" in report and "Kaur et al. 2019" in report


def test_the_readme_shows_the_commands_the_tests_above_run():
    assert readme_command("main").split(" && ")[1] in README_COMMANDS
    assert readme_command("slurm") in README_COMMANDS and REPORT_COMMANDS
    assert len(README_COMMANDS) >= 8, README_COMMANDS


def test_every_profile_is_a_file_snakemake_reads():
    for profile in ("default", "slurm", "cluster-generic"):
        folder = REPO / "profiles" / profile
        assert [p.name for p in folder.iterdir()] == ["config.yaml"], folder
        assert isinstance(yaml.safe_load((folder / "config.yaml").read_text()), dict)


def seeded_registration_rules():
    """Rules that pass the study's seed to ANTs: they must run on one thread (README,
    Preprocessing), or the registration refuses to start."""
    text = (REPO / "rules" / "preprocess.smk").read_text()
    rules = re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", text, re.MULTILINE | re.DOTALL)
    seeded = {name: body for name, body in rules if 'seed=config["seed"]' in body}
    assert all(re.search(r"^    threads: 1\b", body, re.MULTILINE) for body in seeded.values())
    return set(seeded)


def test_no_profile_gives_a_seeded_registration_more_threads():
    seeded = seeded_registration_rules()
    assert seeded == {"coregister_modalities", "register_to_template"}
    for profile in ("default", "slurm", "cluster-generic"):
        settings = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
        overridden = {rule for rule, threads in (settings.get("set-threads") or {}).items()
                      if threads != 1}
        assert not overridden & seeded, (profile, overridden & seeded)


def test_the_pins_cover_every_dependency_and_lie_in_the_declared_ranges():
    import tomllib

    pinned = pins(CONSTRAINTS.read_text().splitlines())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [
        line for extra in project["optional-dependencies"].values() for line in extra]
    for line in declared:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is a dependency but has no pin in {CONSTRAINTS}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), \
            f"{name}=={pinned[name]} is outside pyproject's {requirement.specifier}"


def test_the_conda_environments_pin_the_same_versions():
    pinned = pins(CONSTRAINTS.read_text().splitlines())
    for env in sorted((REPO / "envs").glob("*.yaml")):
        spec = yaml.safe_load(env.read_text())
        pip_lines = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        for name, version in pins(pip_lines).items():
            assert pinned.get(name) == version, \
                f"{env.name} pins {name}=={version}, {CONSTRAINTS.name} {pinned.get(name)}"


def test_this_environment_is_the_pinned_one():
    """The suite runs with what the README installs (a test run in another environment says
    which package differs)."""
    from importlib.metadata import version

    pinned = pins(CONSTRAINTS.read_text().splitlines())
    for name in ("snakemake", "snakemake-executor-plugin-slurm", "antspyx", "torch",
                 "numpy", "pandas", "nibabel", "simpleitk"):
        assert version(name).split("+")[0] == pinned[name], name


def test_every_refusal_the_readme_lists_has_its_test():
    readme = (REPO / "README.md").read_text()
    table = readme.split("## What it refuses", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(test_\w+?)(?:\.py)?`", table))
    assert len(named) >= 10
    tests = "".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))
    files = {p.stem for p in (REPO / "tests").glob("test_*.py")}
    missing = [n for n in named if n not in files and f"def {n}(" not in tests]
    assert not missing, missing
