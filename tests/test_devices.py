"""GPU claiming across processes: the real file locks, with ids standing in for GPUs."""

import subprocess
import sys
import time

from lesion_transfer.devices import claim_gpu

CLAIM = """
import sys, time
from lesion_transfer.devices import claim_gpu
with claim_gpu(["a", "b"], sys.argv[1], poll_seconds=0.05) as index:
    print(index, time.time(), flush=True)
    time.sleep(float(sys.argv[2]))
print("released", time.time(), flush=True)
"""


def start(lock_dir, hold):
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(lock_dir), str(hold)],
                            stdout=subprocess.PIPE, text=True)


def test_jobs_started_at_once_get_different_gpus_and_a_third_waits(tmp_path):
    first, second = start(tmp_path, 2.0), start(tmp_path, 2.0)
    time.sleep(0.5)
    third = start(tmp_path, 0.0)
    outputs = [p.communicate(timeout=30)[0].split() for p in (first, second, third)]
    assert sorted(int(out[0]) for out in outputs[:2]) == [0, 1]
    # the third got a GPU only after one of the first two let go of it
    released = min(float(out[3]) for out in outputs[:2])
    assert float(outputs[2][1]) >= released


def test_a_killed_job_frees_its_gpu(tmp_path):
    holder = start(tmp_path, 60.0)
    assert holder.stdout.readline().split()[0] == "0"
    holder.kill()
    holder.wait()
    with claim_gpu(["a", "b"], tmp_path, timeout_seconds=5) as index:
        assert index == 0


def test_each_job_logs_its_device_and_why(monkeypatch, caplog):
    """A scheduler that hands a job a GPU the CPU-only torch cannot see: the log says so."""
    import logging

    import pytest
    import torch

    from lesion_transfer.devices import job_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the job would get it")
    log = logging.getLogger("device-test")
    caplog.set_level(logging.INFO, logger="device-test")
    monkeypatch.delenv("LESION_TRANSFER_FAKE_GPUS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with job_device("auto", log) as device:
        assert device == "cpu"
    assert ("device cpu (train.device: auto, and torch sees no CUDA device; "
            "CUDA_VISIBLE_DEVICES=1)") in caplog.text
    with job_device("cpu", log) as device:
        assert device == "cpu"
    assert "device cpu (train.device: cpu; CUDA_VISIBLE_DEVICES=1)" in caplog.text


def test_bf16_on_the_cpu_computes_in_bf16_and_fp16_there_is_refused():
    """`precision: bf16` once meant fp32 on the CPU without a word; fp16 needs CUDA's scaler."""
    import pytest
    import torch

    from lesion_transfer.devices import autocast_context, resolve_precision

    cpu = torch.device("cpu")
    convolution = torch.nn.Conv3d(2, 2, 3)
    volume = torch.rand(1, 2, 6, 6, 6)
    with autocast_context(cpu, resolve_precision("bf16", cpu)):
        assert convolution(volume).dtype == torch.bfloat16
    with autocast_context(cpu, resolve_precision("fp32", cpu)):
        assert convolution(volume).dtype == torch.float32
    with pytest.raises(ValueError, match="fp16 needs a CUDA device, found cpu"):
        resolve_precision("fp16", cpu)


def test_auto_precision_is_bf16_on_a_cpu_with_bf16_instructions_and_fp32_elsewhere(monkeypatch):
    """bf16 emulated on a CPU without the instructions would be slower than fp32."""
    import torch

    from lesion_transfer import devices

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: False)
    assert devices.resolve_precision("auto", cpu) == "fp32"
    assert devices.resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: True)
    assert devices.resolve_precision("auto", cpu) == "bf16"
    assert devices.resolve_precision("fp32", cpu) == "fp32"



def test_a_job_that_yields_to_training_runs_at_the_lowest_priority():
    code = ("import os; from lesion_transfer.workflow import yield_cpu_to_training; "
            "yield_cpu_to_training(); yield_cpu_to_training(); print(os.nice(0))")
    niceness = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout
    assert int(niceness) == 19  # twice: still 19, never past it


# Runs a dry run of the workflow in this process and prints the OpenMP policy its jobs inherit.
DRY_RUN_POLICY = """
import atexit, os, sys
from snakemake.cli import main
atexit.register(lambda: print("policy:", os.environ.get("OMP_WAIT_POLICY")))
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


def test_training_jobs_spin_while_they_wait_only_when_snakemake_runs_one_at_a_time(tmp_path):
    """--resources gpu=1 lets one training job run at a time: its threads keep OpenMP's
    default wait. With no limit, two at a time or train.device: cpu (no GPU asked for, so no
    limit), they sleep (PASSIVE)."""
    import os

    from conftest import REPO

    def policy(*args, device="auto"):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        command = [sys.executable, "-c", DRY_RUN_POLICY, "--snakefile", str(REPO / "Snakefile"),
                   "--directory", str(tmp_path), "--configfile", str(REPO / "config.yaml"),
                   "--config", f"train={{'device': '{device}'}}", "-n", "--quiet",
                   "--cores", "8", *args]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.split("policy: ")[-1].strip()

    assert policy("--resources", "gpu=1") == "None"
    assert policy() == "PASSIVE"
    assert policy("--resources", "gpu=2") == "PASSIVE"
    assert policy("--resources", "gpu=1", device="cpu") == "PASSIVE"


def test_a_machine_hides_its_gpus_when_cuda_visible_devices_is_empty(monkeypatch):
    from lesion_transfer.devices import FAKE_GPUS, machine_may_show_gpus

    monkeypatch.delenv(FAKE_GPUS, raising=False)
    for hidden in ("", "-1", " "):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert not machine_may_show_gpus()
    monkeypatch.setenv(FAKE_GPUS, "2")  # the tests' pretend GPUs count, whatever CUDA says
    assert machine_may_show_gpus()


def test_inference_asks_for_the_gpus_of_training_unless_this_machine_runs_it_without_one(
        monkeypatch):
    from lesion_transfer.devices import FAKE_GPUS, inference_gpus

    monkeypatch.delenv(FAKE_GPUS, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # this machine shows no GPU
    assert inference_gpus(1, jobs_run_here=True) == 0
    assert inference_gpus(1, jobs_run_here=False) == 1  # a cluster node may have one
    assert inference_gpus(0, jobs_run_here=False) == 0  # train.device: cpu
    monkeypatch.setenv(FAKE_GPUS, "1")
    assert inference_gpus(1, jobs_run_here=True) == 1


def test_inference_asks_for_a_gpu_only_where_the_machine_has_one(tmp_path):
    """On a machine with no CUDA device, evaluation (and the source's scoring) asks for no
    GPU, so that `--resources gpu=1` does not hold it back until the training job ends: it
    runs beside it. Training asks for one either way (on a cluster, `auto` may find CUDA
    only on the node that runs it); where the machine has a GPU, inference asks for it too."""
    import os
    import re

    from conftest import REPO

    def gpus_asked(**env):
        command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                   "--directory", str(tmp_path), "--configfile", str(REPO / "config.yaml"),
                   "-n", "--cores", "8", "--resources", "gpu=1"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                env={**os.environ, **env})
        assert result.returncode == 0, result.stderr[-3000:]
        jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: .*\bgpu=(\d+)",
                          result.stdout, re.MULTILINE)
        asked = {}
        for rule, gpus in jobs:
            asked.setdefault(rule, set()).add(int(gpus))
        return asked

    no_gpu = gpus_asked(CUDA_VISIBLE_DEVICES="")
    assert no_gpu["finetune"] == no_gpu["pretrain_source"] == {1}
    assert no_gpu["evaluate_model"] == no_gpu["score_source"] == {0}
    one_gpu = gpus_asked(LESION_TRANSFER_FAKE_GPUS="1")
    assert one_gpu["finetune"] == one_gpu["evaluate_model"] == one_gpu["score_source"] == {1}
