"""Benchmark: is loading the bottleneck? Patches per second of the training loader alone (patch
sampling and MONAI augmentation, with 0, 1, 2, ... worker processes), against patches per
second of the training step alone (on synthetic batches) and of training fed by the loader.

    python bench/loader.py --device cpu --out bench/results/loader_cpu.md   # the default study
    python bench/loader.py --device cuda --shape 240 192 192 --patch 128 128 128 --width 16 \\
        --depth 5 --batch 2 --out bench/results/loader_gpu.md
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lesion_transfer.config import schema_defaults
from lesion_transfer.devices import autocast_context, resolve_precision
from lesion_transfer.io.cache import CachedSubject
from lesion_transfer.model.unet import UNet3D, UNetConfig
from lesion_transfer.train.augment import augmentation
from lesion_transfer.train.data import PatchSampler, TrainingBatches, batches
from lesion_transfer.train.tasks import TumourTask

REPO = Path(__file__).resolve().parents[1]


def subjects(count, shape, seed=0):
    """Cache-like subjects: float16 channels in [0, 1] inside an ellipsoid brain, a tumour."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    brain = (grid ** 2).sum(0) < 0.8
    made = []
    for i in range(count):
        image = (rng.random((4, *shape)) * brain).astype(np.float16)
        centre = rng.uniform(-0.3, 0.3, 3)[:, None, None, None]
        distance = ((grid - centre) ** 2).sum(0)
        label = np.select([distance < 0.01, distance < 0.02, distance < 0.05], [4, 1, 2], 0)
        made.append(CachedSubject(f"s{i}", image, label.astype(np.uint8), {}))
    return made


def loader_rate(dataset, workers, steps, batch):
    iterator = batches(dataset, range(steps + 2), workers)
    next(iterator), next(iterator)  # workers started, queue warm
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return steps * batch / (time.perf_counter() - start)


def training_rate(model, data, device, precision, steps, batch, optimizer):
    """Patches per second of training steps, fed by `data` (an iterator of batches)."""
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(images, classes):
        optimizer.zero_grad(set_to_none=True)
        with autocast_context(device, precision):
            logits = model(images.to(device, non_blocking=True))
        loss_fn(logits.float(), classes.to(device, non_blocking=True)).backward()
        optimizer.step()

    step(*next(data))  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(*next(data))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shape", type=int, nargs=3, default=[80, 64, 64], help="cached crop")
    parser.add_argument("--patch", type=int, nargs=3, default=[32, 32, 32])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = resolve_precision("auto", device)
    training = schema_defaults("training")  # a train.finetune block as the schema fills it
    sampler = PatchSampler(subjects(args.subjects, args.shape), args.patch, 0.33,
                           TumourTask.labels, augmentation(training["augmentation"]),
                           training["foreground_sampling"])
    dataset = TrainingBatches(sampler, args.batch, seed=0)
    torch.manual_seed(0)
    model = UNet3D(UNetConfig(out_channels=4, width=args.width, depth=args.depth,
                              norm="instance")).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    rows = [(f"loader alone, {w} worker{'s' * (w != 1)}",
             loader_rate(dataset, w, args.steps, args.batch)) for w in args.workers]
    fixed = dataset[0]
    rows.append(("training step alone (one batch reused)",
                 training_rate(model, iter(lambda: fixed, None), device, precision, args.steps,
                               args.batch, optimizer)))
    for w in args.workers:
        data = batches(dataset, range(10**6), w)
        rows.append((f"training fed by the loader, {w} worker{'s' * (w != 1)}",
                     training_rate(model, data, device, precision, args.steps, args.batch,
                                   optimizer)))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    lines = [f"# Loader benchmark: {name or platform.machine()}", "",
             f"Command: `python {' '.join(sys.argv)}`", "",
             f"{args.subjects} cached subjects of 4 x {' x '.join(map(str, args.shape))}, "
             f"patches {' x '.join(map(str, args.patch))}, batch {args.batch}, MONAI "
             f"augmentation at the schema's defaults; UNet width {args.width}, depth "
             f"{args.depth}, {precision}, {torch.get_num_threads()} torch threads, torch "
             f"{torch.__version__}.", "",
             "| what | patches per second |", "|---|---|"]
    lines += [f"| {what} | {rate:.1f} |" for what, rate in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
