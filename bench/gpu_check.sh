#!/usr/bin/env bash
# The GPU check: run it whenever a CUDA machine is at hand, with nothing installed beforehand.
# In under 8 minutes on one GPU it
#   1. installs with the README's line into a fresh virtual environment;
#   2. runs the tiny study (configs/ci.yaml) end to end on CUDA (train.device: cuda, so bf16
#      autocast, loader workers and pinned batches: the paths no CPU run takes);
#   3. times the training step at the paper's patch size in bf16 against MONAI's UNet of the
#      same width, depth and input, in turns (bench/training.py --against-monai), and the
#      training loader's rate (bench/loader.py);
# and writes bench/results/gpu_check.md with the machine, the commit and the date.
#
#   bench/gpu_check.sh             # the check (needs `nvidia-smi` and a CUDA device)
#   bench/gpu_check.sh --dry-run   # prints each command, runs none (the tests run this)
#
# GPU_CHECK_WORK: where the environment and the study go (default: a new temporary folder).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY_RUN=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN=1; fi
WORK=${GPU_CHECK_WORK:-$(mktemp -d)}
OUT="$REPO/bench/results/gpu_check.md"

run() {  # a command as it will run: printed, then run unless this is a dry run
    echo "+ $*"
    if [[ $DRY_RUN == 0 ]]; then "$@"; fi
}

if [[ $DRY_RUN == 0 ]] && ! nvidia-smi > /dev/null 2>&1; then
    echo "bench/gpu_check.sh: no CUDA device (nvidia-smi failed); --dry-run shows the plan" >&2
    exit 1
fi

# 1. the README's install line, word for word (tests/readme_commands.py reads it)
INSTALL=$(python3 "$REPO/tests/readme_commands.py" main)
INSTALL=${INSTALL%% && *}
run python3 -m venv "$WORK/venv"
echo "+ (cd $REPO && $INSTALL)   # in $WORK/venv"
if [[ $DRY_RUN == 0 ]]; then
    (cd "$REPO" && PATH="$WORK/venv/bin:$PATH" VIRTUAL_ENV="$WORK/venv" bash -c "$INSTALL")
fi
PYTHON="$WORK/venv/bin/python"

# 2. the tiny study on CUDA, timed
mkdir -p "$WORK/study"
printf 'train:\n  device: cuda\n' > "$WORK/cuda.yaml"
STUDY_START=$(date +%s)
run "$PYTHON" -m snakemake --snakefile "$REPO/Snakefile" --directory "$WORK/study" \
    --cores "$(nproc)" --resources gpu=1 \
    --configfile "$REPO/configs/ci.yaml" "$WORK/cuda.yaml"
STUDY_SECONDS=$(( $(date +%s) - STUDY_START ))

# 3. the training step at the paper's patch size, against MONAI's UNet; the loader's rate
run "$PYTHON" "$REPO/bench/training.py" --device cuda --precision bf16 \
    --shape 128 128 128 --width 16 --depth 5 --batch 2 --against-monai \
    --out "$WORK/training.md"
run "$PYTHON" "$REPO/bench/loader.py" --device cuda --shape 240 192 192 \
    --patch 128 128 128 --width 16 --depth 5 --batch 2 --workers 0 2 4 \
    --out "$WORK/loader.md"
run "$PYTHON" "$REPO/bench/workflow_run.py" \
    --benchmarks "$WORK/study/results/benchmarks" \
    --log "$WORK/study/.snakemake/log/$(ls "$WORK/study/.snakemake/log" 2>/dev/null | tail -1)" \
    --out "$WORK/workflow.md"

if [[ $DRY_RUN == 1 ]]; then
    echo "+ (writes $OUT)"
    exit 0
fi
{
    echo "# The GPU check (bench/gpu_check.sh)"
    echo
    echo "$(date -u +%F), commit $(git -C "$REPO" rev-parse --short HEAD), $(nvidia-smi \
        --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1), $(nproc) CPU cores."
    echo
    echo "## The tiny study on CUDA: ${STUDY_SECONDS} s, exit 0"
    echo
    tail -n +2 "$WORK/workflow.md"
    echo
    tail -n +2 "$WORK/training.md"
    echo
    tail -n +2 "$WORK/loader.md"
} > "$OUT"
echo "wrote $OUT"
