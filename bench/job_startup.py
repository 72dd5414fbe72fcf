"""Benchmark: what a job pays before its work starts. Three numbers, each in fresh processes,
in CPU seconds (user + system of the child processes: unlike wall time, they do not grow when
other work shares the cores):

1. the import of each expensive library (median of --repeats processes);
2. per workflow script, the seconds and expensive libraries its own import lines cost (the
   library modules it imports at the top, not what its stage loads when it runs);
3. a trivial job: a Snakemake run of --jobs rules whose script only imports the workflow glue,
   against the same number of `shell: touch` rules, so the difference per job is the start-up
   of a `script:` job (a Python process, Snakemake's preamble, the package); under Snakemake's
   two schedulers, since its default (ilp) runs an external solver (CBC) to pick jobs.

    python bench/job_startup.py --out bench/results/job_startup.md
"""

import argparse
import ast
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from lesion_transfer.workflow import HEAVY_LIBRARIES  # noqa: E402 (after the path)


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def seconds_of(code, repeats):
    """Median CPU seconds of `python -c code` in a fresh process, and what it printed."""
    times, printed = [], ""
    for _ in range(repeats):
        start = children_cpu_seconds()
        printed = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                 text=True, cwd=REPO).stdout.strip()
        times.append(children_cpu_seconds() - start)
    return statistics.median(times), printed


def script_imports(path):
    """The import lines at the top level of a workflow script, as source."""
    tree = ast.parse(path.read_text())
    return [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import,
                                                                         ast.ImportFrom))]


def loaded_after(imports):
    lines = "\n".join(imports)
    return (f"{lines}\nimport sys\n"
            f"print(','.join(n for n in {HEAVY_LIBRARIES!r} if n in sys.modules))")


TRIVIAL_SNAKEFILE = """
rule with_script:
    output: "script/{i}.done"
    script: "trivial.py"
rule with_shell:
    output: "shell/{i}.done"
    shell: "touch {output}"
"""

TRIVIAL_SCRIPT = """
from pathlib import Path
from lesion_transfer.workflow import rule_log  # what every workflow script imports
Path(snakemake.output[0]).touch()  # noqa: F821
"""


def trivial_job_seconds(jobs, scheduler):
    """CPU seconds per job of `script:` and `shell:` rules (Snakemake's own share and that of
    its scheduler's solver included), run one at a time."""
    per_kind = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "Snakefile").write_text(TRIVIAL_SNAKEFILE)
        (folder / "trivial.py").write_text(TRIVIAL_SCRIPT)
        for kind in ("shell", "script"):
            start = children_cpu_seconds()
            subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--quiet",
                            "--scheduler", scheduler, "--directory", str(folder),
                            "--snakefile", str(folder / "Snakefile"),
                            *[f"{kind}/{i}.done" for i in range(jobs)]],
                           check=True, capture_output=True, cwd=REPO)
            per_kind[kind] = (children_cpu_seconds() - start) / jobs
    return per_kind


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    lines = [f"Machine: {platform.machine()}, {platform.python_version()}, "
             f"{os.cpu_count()} cores; "
             f"{time.strftime('%Y-%m-%d')}", "",
             "## Importing a library in a fresh process (median of "
             f"{args.repeats})", "", "| library | CPU s |", "|---|---|"]
    python_alone, _ = seconds_of("pass", args.repeats)
    lines.append(f"| (python alone) | {python_alone:.2f} |")
    for name in HEAVY_LIBRARIES:
        seconds, _ = seconds_of(f"import {name}", args.repeats)
        lines.append(f"| {name} | {seconds - python_alone:.2f} |")
    lines += ["", "## Each workflow script's import lines", "",
              "| script | CPU s | expensive libraries loaded |", "|---|---|---|"]
    for script in sorted((REPO / "workflow_scripts").glob("*.py")):
        seconds, loaded = seconds_of(loaded_after(script_imports(script)), args.repeats)
        lines.append(f"| {script.stem} | {seconds - python_alone:.2f} | {loaded or '-'} |")
    lines += ["", f"## A trivial job ({args.jobs} of each, `--cores 1`)", "",
              "| scheduler | `shell:` CPU s a job | `script:` CPU s a job | script - shell |",
              "|---|---|---|---|"]
    for scheduler in ("ilp", "greedy"):
        per_job = trivial_job_seconds(args.jobs, scheduler)
        lines.append(f"| {scheduler} | {per_job['shell']:.2f} | {per_job['script']:.2f} | "
                     f"{per_job['script'] - per_job['shell']:.2f} |")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
