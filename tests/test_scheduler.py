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
