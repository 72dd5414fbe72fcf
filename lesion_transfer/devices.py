"""Devices: which one a job computes in (and in what precision), and one GPU per GPU job.

Snakemake counts GPUs (`--resources gpu=N`) but does not say which one a job may use, so two
jobs started at once would both land on cuda:0. Each GPU job therefore claims the first free
GPU of the machine with an exclusive lock file (`fcntl.flock`, released by the kernel when the
job ends or dies) and runs on it. A scheduler that hands each job its own GPUs (SLURM sets
CUDA_VISIBLE_DEVICES) leaves one visible device, and nothing needs claiming.
"""

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads inside the functions that need it (job start-up time)
    import torch

# Tests pretend a machine has this many GPUs: the claim happens, the job runs on the CPU.
FAKE_GPUS = "LESION_TRANSFER_FAKE_GPUS"


def default_lock_dir() -> Path:
    # node-local on purpose: a lock on a shared file system would be shared between nodes
    return Path(tempfile.gettempdir()) / f"lesion-transfer-gpus-{os.getuid()}"


def visible_gpus() -> list[str]:
    """Ids of the GPUs this job may use, in CUDA's order."""
    if os.environ.get(FAKE_GPUS):
        return [f"fake{i}" for i in range(int(os.environ[FAKE_GPUS]))]
    import torch

    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
              if d.strip()]
    return listed[:count] if len(listed) >= count else [str(i) for i in range(count)]


def machine_may_show_gpus() -> bool:
    """Whether a job started on this machine may find a CUDA device, told without torch
    (Snakemake parses the workflow in every job, and torch costs seconds there): NVIDIA's
    driver lists its GPUs in /proc/driver/nvidia/gpus (WSL2 has /dev/dxg, ROCm /dev/kfd);
    CUDA_VISIBLE_DEVICES set to nothing or -1 hides them. In doubt, yes: a job that asks for a
    GPU it does not use only waits longer."""
    if os.environ.get(FAKE_GPUS):
        return int(os.environ[FAKE_GPUS]) > 0
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):
        return False
    nvidia = Path("/proc/driver/nvidia/gpus")
    return (nvidia.is_dir() and any(nvidia.iterdir())) or Path("/dev/dxg").exists() or \
        Path("/dev/kfd").exists()


def gpus_per_job(device_setting: str, jobs_run_here: bool) -> int:
    """GPUs a training or an inference job asks Snakemake for (`--resources gpu=N`): none
    with `train.device: cpu`, nor where Snakemake runs the jobs on this machine and it shows
    no GPU (`auto` computes on the CPU there); else one. On a cluster the node that runs the
    job decides, and `auto` may find CUDA only there. A job that asks for no GPU is not held
    back by `--resources gpu=1`: inference runs beside training (bench/results/
    default_run.md, stop 40), and CPU training is limited by cores instead (cpu_training)."""
    if device_setting == "cpu":
        return 0
    if jobs_run_here and device_setting == "auto" and not machine_may_show_gpus():
        return 0
    return 1


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: what taskset or a cpuset leaves),
    whatever Snakemake's `--cores` says: the README's `--cores 8` on a 2-core machine."""
    return len(os.sched_getaffinity(0))


@contextlib.contextmanager
def claim_gpu(gpu_ids: Sequence[str], lock_dir: str | Path | None = None,
              poll_seconds: float = 1.0,
              timeout_seconds: float | None = None) -> Iterator[int]:
    """Hold the first free GPU of `gpu_ids`; yields its index. Waits while all are taken."""
    lock_dir = Path(lock_dir or default_lock_dir())
    lock_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    while True:
        for index, gpu in enumerate(gpu_ids):
            handle = open(lock_dir / f"gpu-{gpu}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                handle.truncate(0)
                handle.write(f"{os.getpid()}\n")
                handle.flush()
                yield index
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if timeout_seconds is not None and time.monotonic() - started > timeout_seconds:
            raise TimeoutError(f"no free GPU among {gpu_ids} in {lock_dir} after "
                               f"{timeout_seconds} s")
        time.sleep(poll_seconds)


# --- which device and precision a job computes in ------------------------------------------

def resolve_device(setting: str) -> "torch.device":
    """`auto`: CUDA when torch sees it, else the CPU; `cpu`, `cuda`, `cuda:N` as given."""
    import torch

    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 instructions (x86 AVX-512 BF16 or AMX): there bf16 autocast is
    1.6 times faster a training step (bench/results/cpu_precision.md); elsewhere it would be
    emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: no way to tell without a private torch call
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(setting: str, device: Any) -> str:
    """`auto`: bf16 mixed precision on CUDA and on a CPU with bf16 instructions, else fp32.
    `bf16` is mixed precision on either device; `fp16` needs CUDA's loss scaling and is
    refused on the CPU. `device`: a torch.device or its name ("cpu", "cuda:1")."""
    device_type = getattr(device, "type", str(device).split(":")[0])
    if setting == "auto":
        native_bf16 = device_type == "cuda" or cpu_computes_bf16()
        return "bf16" if native_bf16 else "fp32"
    if setting == "fp16" and device_type != "cuda":
        raise ValueError(f"config key 'train.precision': fp16 needs a CUDA device, found "
                         f"{device}: use bf16 or fp32 on the CPU")
    return setting


def autocast_context(device: "torch.device",
                     precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision (bf16, or fp16 on CUDA) where asked; plain fp32 otherwise."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def training_memory_format(device: "torch.device", precision: str) -> "torch.memory_format":
    """How a training job lays out its weights and batches. fp32 on the CPU: channels last
    (NDHWC), in which oneDNN's convolution backward runs faster: a default fine-tuning step
    1.27 times as fast in turns, a whole fine-tuning job 1.35 times, on a 2-core AMD EPYC
    Zen 3 without bf16 instructions (bench/results/cpu_training.md, 2026-12-03). Elsewhere
    (bf16 on the CPU, CUDA) unmeasured, so torch's default layout. Inference jobs keep the
    default everywhere: a forward pass alone gains nothing measurable."""
    import torch

    if device.type == "cpu" and precision == "fp32":
        return torch.channels_last_3d
    return torch.contiguous_format


def openmp_wait_policy(training_jobs_at_once: int | None) -> str | None:
    """What OpenMP's idle threads do in training jobs on the CPU, from how many of them
    Snakemake may run at once on one machine (None: nothing limits it). One at a time, they
    keep OpenMP's default (spin a while, then sleep): a job that has its cores wakes its
    threads at once, and the other jobs yield to it (workflow.yield_cpu_to_training). Several,
    they sleep at once (PASSIVE), or each spins through the time slices the others need.
    Measured on 2 cores (bench/results/default_run.md, 2026-12-02): FT_All step alone 0.14 s
    spinning, 0.21 s PASSIVE; two jobs side by side 0.65 s spinning, 0.42 s PASSIVE."""
    if training_jobs_at_once is not None and training_jobs_at_once <= 1:
        return None
    return "PASSIVE"


def log_cpu_threads(device: str, log: logging.Logger) -> None:
    """Training on the CPU is as fast as its OpenMP wait policy lets it be (the Snakefile
    chooses it: openmp_wait_policy): the log says what the job ran with."""
    if device == "cpu":
        import torch

        log.info("CPU threads: %d (OMP_WAIT_POLICY=%s)", torch.get_num_threads(),
                 os.environ.get("OMP_WAIT_POLICY", "(unset: OpenMP's default, spinning)"))


@contextlib.contextmanager
def job_device(setting: str, log: logging.Logger,
               lock_dir: str | Path | None = None) -> Iterator[str]:
    """The device for one job: `cpu` and `cuda:N` as configured; `auto` and `cuda` take a GPU
    of their own when the machine shows several, cuda:0 when it shows one, else the CPU.
    The job's log says which device it got and why (and what the scheduler handed it)."""
    scheduler = f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}"
    if setting not in ("auto", "cuda"):
        log.info("device %s (train.device: %s; %s)", setting, setting, scheduler)
        log_cpu_threads(setting, log)
        yield setting
        return
    gpus = visible_gpus()
    if not gpus:
        if setting == "cuda":
            raise RuntimeError(f"train.device is cuda, but no CUDA device is visible ({scheduler})")
        log.info("device cpu (train.device: auto, and torch sees no CUDA device; %s)", scheduler)
        log_cpu_threads("cpu", log)
        yield "cpu"
        return
    fake = bool(os.environ.get(FAKE_GPUS))
    if len(gpus) == 1:
        device = "cpu" if fake else "cuda:0"
        log.info("device %s (the one visible GPU, id %s; %s)", device, gpus[0], scheduler)
        yield device
        return
    with claim_gpu(gpus, lock_dir) as index:
        log.info("claimed GPU %d of %d (id %s)", index, len(gpus), gpus[index])
        device = "cpu" if fake else f"cuda:{index}"
        log.info("device %s (%s)", device, scheduler)
        yield device
