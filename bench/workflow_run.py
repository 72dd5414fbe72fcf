"""Summarise a finished run from Snakemake's own records: per rule, the jobs, mean and total
seconds (results/benchmarks/<rule>/...tsv: wall, the `s` column, and CPU, `cpu_time`, which
other work sharing the cores hardly inflates), and the wall time from the run's log.

    snakemake --cores 2 --resources gpu=1            # the run to measure, from scratch
    python bench/workflow_run.py --log .snakemake/log/<that run>.snakemake.log \\
        --out bench/results/default_run.md
"""

import argparse
import csv
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path


def rule_seconds(benchmarks, column="s"):
    seconds = defaultdict(list)
    for path in Path(benchmarks).rglob("*.tsv"):
        rule = path.relative_to(benchmarks).parts[0]
        with path.open() as handle:
            rows = list(csv.DictReader(handle, dialect="excel-tab"))
        seconds[rule] += [float(row[column]) for row in rows]
    return seconds


def wall_minutes(log):
    stamps = re.findall(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$", Path(log).read_text(),
                        re.MULTILINE)
    times = [datetime.strptime(" ".join(s.split()), "%a %b %d %H:%M:%S %Y") for s in stamps]
    return (max(times) - min(times)).total_seconds() / 60.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", default="results/benchmarks")
    parser.add_argument("--log", required=True, help="the run's .snakemake/log/ file")
    parser.add_argument("--out")
    args = parser.parse_args()
    seconds = rule_seconds(args.benchmarks)
    cpu = rule_seconds(args.benchmarks, "cpu_time")
    lines = [f"Wall time: {wall_minutes(args.log):.1f} min (first to last job of "
             f"{Path(args.log).name})", "",
             "| rule | jobs | mean s | total s | mean CPU s | total CPU s |",
             "|---|---|---|---|---|---|"]
    for rule, values in sorted(seconds.items(), key=lambda item: -sum(item[1])):
        lines.append(f"| {rule} | {len(values)} | {sum(values) / len(values):.1f} | "
                     f"{sum(values):.0f} | {sum(cpu[rule]) / len(cpu[rule]):.1f} | "
                     f"{sum(cpu[rule]):.0f} |")
    lines.append(f"| all rules | {sum(map(len, seconds.values()))} | | "
                 f"{sum(map(sum, seconds.values())):.0f} | | "
                 f"{sum(map(sum, cpu.values())):.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
