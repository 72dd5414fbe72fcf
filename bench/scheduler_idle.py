"""Benchmark: what Snakemake's own process costs while jobs wait for a resource, as the GPU
rules wait for `gpu=1` on a workstation (and on a CPU-only machine, where they run one at a
time). A toy workflow of jobs that each hold gpu=1 and sleep: the CPU seconds of Snakemake
and its children (the ILP solver runs as a subprocess; `sleep` costs nothing), per setting.

While jobs wait, Snakemake re-plans every `max-jobs-per-timespan` timespan (1 s by default),
and every job that ends starts one more such chain of timed re-plans (rules/scheduler.smk
keeps one); its timers are waited for before the process exits, so a longer timespan costs
up to that many seconds at the end of every run (the wall column).

    python bench/scheduler_idle.py --out bench/results/scheduler_idle.md
"""

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCHEDULER_FIX = Path(__file__).resolve().parents[1] / "rules" / "scheduler.smk"

SNAKEFILE = """
{include}
rule all:
    input: expand("done/{{i}}.txt", i=range({jobs}))

rule make_input:  # a job's inputs, as a fine-tuning job reads its subjects' caches
    output: temp("inputs/{{i}}/{{k}}.txt")
    shell: "touch {{output}}"

rule wait_for_the_gpu:
    input: expand("inputs/{{{{i}}}}/{{k}}.txt", k=range({inputs}))
    output: "done/{{i}}.txt"
    resources: gpu=1
    shell: "sleep {seconds}; touch {{output}}"
"""

SETTINGS = {
    "Snakemake's defaults (ILP scheduler, max-jobs-per-timespan 100/1s)": [],
    "scheduler greedy, 100/1s": ["--scheduler", "greedy"],
    "max-jobs-per-timespan 1000/5s (profiles/default)": ["--max-jobs-per-timespan", "1000/5s"],
    "max-jobs-per-timespan 1000/60s": ["--max-jobs-per-timespan", "1000/60s"],
    "1000/5s and rules/scheduler.smk (the workflow's settings)":
        ["--max-jobs-per-timespan", "1000/5s", "--fix"],
}


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(arguments, jobs, inputs, seconds):
    snakemake = Path(sys.executable).with_name("snakemake")
    with tempfile.TemporaryDirectory() as folder:  # no profiles/ here: Snakemake's defaults
        include = f'include: "{SCHEDULER_FIX}"' if "--fix" in arguments else ""
        arguments = [a for a in arguments if a != "--fix"]
        Path(folder, "Snakefile").write_text(SNAKEFILE.format(jobs=jobs, inputs=inputs,
                                                                  seconds=seconds,
                                                                  include=include))
        cpu, wall = children_cpu_seconds(), time.monotonic()
        subprocess.run([str(snakemake), "--cores", "2", "--resources", "gpu=1", "--quiet",
                        *arguments], cwd=folder, check=True, capture_output=True)
        return children_cpu_seconds() - cpu, time.monotonic() - wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--inputs", type=int, default=30, help="temporary inputs per job")
    parser.add_argument("--seconds", type=int, default=10, help="each job's sleep")
    parser.add_argument("--setting", action="append", choices=list(SETTINGS),
                        help="measure only these (repeatable); default: all")
    parser.add_argument("--out")
    args = parser.parse_args()
    lines = ["# Snakemake's own CPU while jobs wait for a resource", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores; "
             f"{time.strftime('%Y-%m-%d')}. Command: `python bench/scheduler_idle.py --jobs "
             f"{args.jobs} --inputs {args.inputs} --seconds {args.seconds}"
             f"{''.join(f' --setting {n!r}' for n in args.setting or [])}`: {args.jobs} jobs "
             f"that each read {args.inputs} temporary files, hold gpu=1 and sleep "
             f"{args.seconds} s, `--cores 2 --resources gpu=1`, so that "
             f"{args.jobs - 1} always wait.", "",
             "| setting | wall s | CPU s of Snakemake and its solver | share of one core |",
             "|---|---|---|---|"]
    for name in args.setting or SETTINGS:
        cpu, wall = measure(SETTINGS[name], args.jobs, args.inputs, args.seconds)
        row = f"| {name} | {wall:.1f} | {cpu:.1f} | {cpu / wall:.0%} |"
        print(row, flush=True)
        lines.append(row)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
