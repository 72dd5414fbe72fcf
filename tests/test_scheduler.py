"""The workflow's fix for Snakemake's scheduler (rules/scheduler.smk), on a toy workflow run
by the real Snakemake: jobs that end while others wait for `gpu=1` must not each leave a chain
of timers behind them, and no timer may hold Snakemake's exit."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.workflow

SNAKEFILE = """
{include}
rule all:
    input: expand("gpu/{{k}}.txt", k=range(3))

rule quick:  # they end while the GPU jobs wait, as preprocessing jobs end before training
    output: "quick/{{i}}.txt"
    shell: "sleep 0.2; touch {{output}}"

rule wait_for_the_gpu:
    input: expand("quick/{{i}}.txt", i=range(30))
    output: "gpu/{{k}}.txt"
    resources: gpu=1
    shell: "sleep 3; touch {{output}}"
"""


def run_toy(folder, include):
    """(the most threads Snakemake's process had, seconds from its last job to its exit)"""
    folder.mkdir()
    (folder / "Snakefile").write_text(SNAKEFILE.format(include=include))
    snakemake = Path(sys.executable).with_name("snakemake")
    process = subprocess.Popen([str(snakemake), "--cores", "2", "--resources", "gpu=1",
                                "--quiet", "--max-jobs-per-timespan", "1000/20s"],
                               cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    most_threads = 0
    while process.poll() is None:
        try:  # Linux: one entry per thread of the process
            most_threads = max(most_threads, len(list(Path(f"/proc/{process.pid}/task").iterdir())))
        except FileNotFoundError:
            break
        time.sleep(0.1)
    ended = time.time()
    assert process.wait() == 0, process.stderr.read().decode()[-2000:]
    last_job = max(p.stat().st_mtime for p in (folder / "gpu").iterdir())
    return most_threads, ended - last_job


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts threads in /proc")
def test_one_scheduler_wake_is_pending_at_a_time_and_none_holds_the_exit(tmp_path):
    plain_threads, plain_exit = run_toy(tmp_path / "plain", "")
    fixed_threads, fixed_exit = run_toy(
        tmp_path / "fixed", f'include: "{REPO / "rules" / "scheduler.smk"}"')
    # Snakemake alone: a timer thread per job that ended while others waited
    assert plain_threads > fixed_threads + 20, (plain_threads, fixed_threads)
    # and it waits for the last of them (20 s) before it exits
    assert plain_exit > 15 > 5 > fixed_exit, (plain_exit, fixed_exit)


def dry_run_with(folder, prelude):
    """The toy workflow with the fix, dry-run by the real Snakemake in a process whose
    Snakemake `prelude` has changed first (as a later release might)."""
    folder.mkdir()
    (folder / "Snakefile").write_text(
        SNAKEFILE.format(include=f'include: "{REPO / "rules" / "scheduler.smk"}"'))
    code = f"{prelude}\nfrom snakemake.cli import main\nmain(['--cores', '1', '--dry-run'])"
    return subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                          text=True, timeout=300)


RENAMED = """
from snakemake.scheduling.job_scheduler import JobScheduler
JobScheduler._schedule_reevaluation = JobScheduler._schedule_reevalutation
del JobScheduler._schedule_reevalutation
"""


def test_a_release_without_the_replaced_method_is_refused_naming_the_version(tmp_path):
    import snakemake

    result = dry_run_with(tmp_path / "renamed", RENAMED)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"refused: Snakemake {snakemake.__version__}: rules/scheduler.smk replaces " \
           "JobScheduler._schedule_reevalutation(self, delay), found no such method" \
           in result.stderr
    assert "Traceback" not in result.stderr and "Building DAG" not in result.stdout


def test_a_release_whose_method_takes_other_parameters_is_refused(tmp_path):
    changed = """
from snakemake.scheduling.job_scheduler import JobScheduler
JobScheduler._schedule_reevalutation = lambda self, delay, reason: None
"""
    result = dry_run_with(tmp_path / "changed", changed)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "found (self, delay, reason)" in result.stderr


def test_an_untested_release_runs_without_the_fix_and_says_so(tmp_path):
    later = """
import snakemake
snakemake.__version__ = "9.99.0"
from snakemake.scheduling.job_scheduler import JobScheduler
original = JobScheduler._schedule_reevalutation
import atexit
atexit.register(lambda: print("replaced:", JobScheduler._schedule_reevalutation is not original))
"""
    result = dry_run_with(tmp_path / "later", later)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Snakemake 9.99.0: the workflow's scheduler fix (rules/scheduler.smk) is tested on " \
           "9.0.0 to 9.27.1 only, so it is not applied" in result.stderr
    assert "replaced: False" in result.stdout


def test_the_tested_release_gets_the_fix(tmp_path):
    tested = """
from snakemake.scheduling.job_scheduler import JobScheduler
original = JobScheduler._schedule_reevalutation
import atexit
atexit.register(lambda: print("replaced:", JobScheduler._schedule_reevalutation is not original))
"""
    result = dry_run_with(tmp_path / "tested", tested)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "replaced: True" in result.stdout and "not applied" not in result.stderr
