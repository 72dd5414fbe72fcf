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



def test_training_lays_out_channels_last_only_where_it_was_measured_faster():
    import torch

    from lesion_transfer.devices import training_memory_format

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert training_memory_format(cpu, "fp32") == torch.channels_last_3d
    assert training_memory_format(cpu, "bf16") == torch.contiguous_format
    assert training_memory_format(cuda, "bf16") == torch.contiguous_format
    assert training_memory_format(cuda, "fp32") == torch.contiguous_format


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
    """With a GPU, --resources gpu=1 lets one training job run at a time: its threads keep
    OpenMP's default wait; with gpu=2 or no limit, they sleep (PASSIVE). On this machine's CPU
    training runs one job per usable core: PASSIVE on two cores, the default on one."""
    import os

    from conftest import REPO

    def policy(*args, device="auto", cores="0,1", **extra_env):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        command = ["taskset", "-c", cores, sys.executable, "-c", DRY_RUN_POLICY,
                   "--snakefile", str(REPO / "Snakefile"),
                   "--directory", str(tmp_path), "--configfile", str(REPO / "config.yaml"),
                   "--config", f"train={{'device': '{device}'}}", "-n", "--quiet",
                   "--cores", "8", *args]
        result = subprocess.run(command, capture_output=True, text=True,
                                env={**env, **extra_env}, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.split("policy: ")[-1].strip()

    gpu = {"LESION_TRANSFER_FAKE_GPUS": "1"}
    assert policy("--resources", "gpu=1", **gpu) == "None"
    assert policy(**gpu) == "PASSIVE"
    assert policy("--resources", "gpu=2", **gpu) == "PASSIVE"
    no_gpu = {"CUDA_VISIBLE_DEVICES": ""}
    assert policy("--resources", "gpu=1", **no_gpu) == "PASSIVE"
    assert policy("--resources", "gpu=1", device="cpu") == "PASSIVE"
    assert policy("--resources", "gpu=1", cores="0", **no_gpu) == "None"


def test_a_machine_hides_its_gpus_when_cuda_visible_devices_is_empty(monkeypatch):
    from lesion_transfer.devices import FAKE_GPUS, machine_may_show_gpus

    monkeypatch.delenv(FAKE_GPUS, raising=False)
    for hidden in ("", "-1", " "):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert not machine_may_show_gpus()
    monkeypatch.setenv(FAKE_GPUS, "2")  # the tests' pretend GPUs count, whatever CUDA says
    assert machine_may_show_gpus()


def test_jobs_ask_for_a_gpu_unless_they_compute_on_this_machines_cpu(monkeypatch):
    from lesion_transfer.devices import FAKE_GPUS, gpus_per_job

    monkeypatch.delenv(FAKE_GPUS, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # this machine shows no GPU
    assert gpus_per_job("auto", jobs_run_here=True) == 0
    assert gpus_per_job("auto", jobs_run_here=False) == 1  # a cluster node may have one
    assert gpus_per_job("cpu", jobs_run_here=False) == 0
    assert gpus_per_job("cuda", jobs_run_here=True) == 1  # asked for: it fails in the job
    monkeypatch.setenv(FAKE_GPUS, "1")
    assert gpus_per_job("auto", jobs_run_here=True) == 1
    assert gpus_per_job("cpu", jobs_run_here=True) == 0


def test_training_on_this_machines_cpu_runs_a_job_per_core_on_one_thread(tmp_path):
    """On a machine with no CUDA device, training and inference ask for no GPU, so that
    `--resources gpu=1` does not line them up one after another: a training job runs on one
    thread and holds one `cpu_training`, of which the workflow provides one per usable core
    (taskset's, whatever --cores says), and inference runs beside it. Where the machine has a
    GPU, all of them ask for it and training takes `threads`."""
    import os
    import re

    from conftest import REPO

    def dry_run(*resources, cores="0,1", **env):
        command = ["taskset", "-c", cores, sys.executable, "-m", "snakemake", "--snakefile",
                   str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                   str(REPO / "config.yaml"), "-n", "--cores", "8", "--resources", *resources]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                env={**os.environ, **env})
        assert result.returncode == 0, result.stderr[-3000:]
        asked = {}
        for block in re.split(r"^(?=rule \w+:$)", result.stdout, flags=re.MULTILINE):
            rule = re.match(r"rule (\w+):", block)
            resources_line = re.search(r"^    resources: (.*)$", block, re.MULTILINE)
            if not rule or not resources_line:
                continue
            threads = re.search(r"^    threads: (\d+)$", block, re.MULTILINE)
            values = dict(re.findall(r"(\w+)=([^,\s]+)", resources_line.group(1)))
            asked.setdefault(rule.group(1), set()).add(
                (int(values.get("gpu", 0)), int(values.get("cpu_training", 0)),
                 int(threads.group(1)) if threads else 1))
        provided = re.search(r"CPU: (\d+) jobs at once", result.stdout + result.stderr)
        return asked, int(provided.group(1)) if provided else None

    no_gpu, slots = dry_run("gpu=1", CUDA_VISIBLE_DEVICES="")
    assert no_gpu["finetune"] == no_gpu["pretrain_source"] == {(0, 1, 1)}  # (gpu, slot, threads)
    assert no_gpu["evaluate_model"] == no_gpu["score_source"] == {(0, 0, 2)}
    assert slots == 2
    assert dry_run("gpu=1", cores="0", CUDA_VISIBLE_DEVICES="")[1] == 1
    assert dry_run("gpu=1", "cpu_training=3", CUDA_VISIBLE_DEVICES="")[1] == 3  # the command's
    one_gpu, slots = dry_run("gpu=1", LESION_TRANSFER_FAKE_GPUS="1")
    assert one_gpu["finetune"] == one_gpu["pretrain_source"] == {(1, 0, 2)}
    assert one_gpu["evaluate_model"] == one_gpu["score_source"] == {(1, 0, 2)}
    assert slots is None
