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

