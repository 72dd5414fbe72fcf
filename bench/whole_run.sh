#!/bin/bash
# Benchmark: the whole default study in one piece, as issue 23's Done-when measures it: a fresh
# clone of this repository, a fresh virtual environment, the README's install line and main
# command as written, under /usr/bin/time -v. Only `seed:` in config.yaml may differ from the
# commit (a confirmation seed); nothing else is touched.
#
#     bash bench/whole_run.sh FOLDER [SEED]
#
# FOLDER must not exist. Start it detached, alone on the machine, and read FOLDER.out (start,
# end, exit status), FOLDER.time (/usr/bin/time -v: wall, CPU, peak memory), FOLDER.log (the
# run's output); then `python bench/run_spread.py --results results` and
# results/tables/claims.md in FOLDER.
#
#     (setsid nohup bash bench/whole_run.sh /work/conf 20261207 > /dev/null 2>&1 < /dev/null &)
#
# Stopping one: Snakemake answers SIGINT and SIGTERM by waiting for its running jobs to end
# ("Will exit after finishing currently running jobs"), a fine-tuning's minutes; kill the jobs
# too, `pkill -f FOLDER/.snakemake/scripts/`. A run started again with the same line resumes
# every training from its last epoch checkpoint, but is no longer one piece.
set -euo pipefail

# All of it in one function, read whole before it runs: bash reads a script as it goes, so an
# edit to this file during a run (whole_run.sh stays in the checkout it was started from) would
# otherwise run the edited lines at the old offsets (stop 47: a syntax error after Snakemake).
main() {
    folder=${1:?usage: bash bench/whole_run.sh FOLDER [SEED]}
    seed=${2:-}
    repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
    [[ -e $folder ]] && { echo "whole_run: $folder exists; give a new folder" >&2; exit 2; }
    # The README's 2-hour figure is for a CPU with bf16 instructions (train.precision: auto trains
    # in bf16 there); elsewhere every training step is fp32 and the study takes twice as long or
    # more, so the time would not measure the design. lesion_transfer.devices decides (loaded as
    # a file: it needs only the standard library, and no environment exists yet).
    bf16=$(python3 -c 'import importlib.util as u, sys
spec = u.spec_from_file_location("devices", sys.argv[1]); devices = u.module_from_spec(spec)
spec.loader.exec_module(devices); print(int(devices.cpu_computes_bf16()))' "$repo/lesion_transfer/devices.py")
    if [[ $bf16 != 1 && ${WHOLE_RUN_ANY_CPU:-0} != 1 ]]; then
        echo "whole_run: this CPU has no bf16 instructions (no avx512_bf16 or amx_bf16 in" \
            "/proc/cpuinfo): training runs in fp32 here, about 2.2 times slower a step, and the" \
            "time would not measure the design. WHOLE_RUN_ANY_CPU=1 runs it anyway." >&2
        exit 2
    fi
    exec > "$folder.out" 2>&1
    git clone -q "$repo" "$folder"
    cd "$folder"
    if [[ -n $seed ]]; then
        grep -q '^seed: [0-9]*$' config.yaml || { echo "whole_run: no 'seed: N' line in config.yaml"; exit 2; }
        sed -i "s/^seed: [0-9]*$/seed: $seed/" config.yaml
    fi
    echo "commit $(git rev-parse HEAD); $(git diff --stat | tail -1)"
    grep '^seed:' config.yaml
    python3 -m venv .venv
    source .venv/bin/activate
    echo "start $(date -u '+%F %T')"
    # the README owns the line; tests/readme_commands.py reads it, as CI reads the test line
    line=$(python3 tests/readme_commands.py main)
    echo "line: $line"
    status=0
    /usr/bin/time -v -o "$folder.time" bash -c "$line" > "$folder.log" 2>&1 || status=$?
    echo "end $(date -u '+%F %T') rc=$status"
    # Snakemake's own log (the terminal's output lacks its job lines): its last count of steps
    log=$(ls -t .snakemake/log/*.snakemake.log | head -1)
    echo "jobs: $(grep 'steps (' "$log" | tail -1); disk: $(du -sh results | cut -f1)"
}

main "$@"
