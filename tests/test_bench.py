"""The benchmarks that run where no test can: the GPU check's plan, and its comparison with
MONAI's UNet measured for real on a tiny input on the CPU."""

import os
import re
import subprocess
import sys

import pytest
import yaml
from conftest import REPO
from readme_commands import readme_command

from lesion_transfer.config import load_schema


def test_the_gpu_check_plans_the_readme_install_the_tiny_study_on_cuda_and_the_benchmarks(
        tmp_path):
    result = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run"],
                            env={**os.environ, "GPU_CHECK_WORK": str(tmp_path)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    plan = result.stdout.splitlines()
    install = readme_command("main").split(" && ")[0]
    assert f"+ (cd {REPO} && {install})   # in {tmp_path}/venv" in plan
    study = next(line for line in plan if " -m snakemake " in line)
    assert study.startswith(f"+ {tmp_path}/venv/bin/python -m snakemake --snakefile {REPO}/")
    assert f"--configfile {REPO}/configs/ci.yaml {tmp_path}/cuda.yaml" in study
    assert "--resources gpu=1" in study
    # the override the study runs with is one the schema accepts, and it asks for CUDA
    override = yaml.safe_load((tmp_path / "cuda.yaml").read_text())
    assert override == {"train": {"device": "cuda"}}
    device = load_schema()["properties"]["train"]["properties"]["device"]
    assert re.fullmatch(device["pattern"], "cuda")
    # the paper's fine-tuning input (configs/paper.yaml) against MONAI's UNet, and the loader
    step = next(line for line in plan if "bench/training.py" in line)
    paper = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())["train"]
    assert f"--shape {' '.join(map(str, paper['finetune']['patch_size']))}" in step
    assert f"--width {paper['unet']['width']} --depth {paper['unet']['depth']}" in step
    assert "--precision bf16" in step and "--against-monai" in step
    assert any("bench/loader.py --device cuda" in line for line in plan)
    assert plan[-1] == f"+ (writes {REPO}/bench/results/gpu_check.md)"
    assert not (tmp_path / "venv").exists()  # a dry run runs nothing


def test_the_gpu_check_refuses_a_machine_without_cuda(tmp_path):
    env = {**os.environ, "GPU_CHECK_WORK": str(tmp_path), "PATH": "/usr/bin:/bin"}
    if subprocess.run(["bash", "-c", "command -v nvidia-smi"], env=env).returncode == 0:
        pytest.skip("this machine has nvidia-smi")
    result = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no CUDA device (nvidia-smi failed)" in result.stderr
    assert not any(tmp_path.iterdir())


def test_the_training_benchmark_times_monais_unet_in_turns_with_this_projects(tmp_path):
    out = tmp_path / "training.md"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "training.py"), "--device", "cpu",
         "--precision", "fp32", "--shape", "16", "16", "16", "--width", "4", "--depth", "3",
         "--steps", "1", "--warmup", "0", "--threads", "1", "--against-monai",
         "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| fine-tuning")]
    turns = [row for row in rows if "in turns" in row]
    assert len(turns) == 2 and "UNet3D" in turns[0] and "MONAI UNet" in turns[1]
    for row in turns:
        seconds, peak = (float(cell) for cell in row.strip("|").split("|")[1:3])
        assert seconds > 0 and peak > 0
