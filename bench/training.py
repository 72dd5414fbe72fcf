"""Benchmark: seconds per training step and peak memory, pretraining (1 channel) and
fine-tuning (4 classes, encoder frozen or not), on the device the config would pick.

    python bench/training.py --device cuda --shape 240 192 192 --width 16 --depth 5 \\
        --out bench/results/training_gpu.md        # the paper's input, bf16 on CUDA
    python bench/training.py --device cpu --shape 64 64 64 --width 8 --depth 4
    python bench/training.py --device cpu --precision bf16 --shape 32 32 32 --width 8 \
        --depth 4 --batch 4 --threads 2         # the default study's fine-tuning step
    python bench/training.py --device cuda --shape 128 128 128 --width 16 --depth 5 \
        --precision bf16 --against-monai        # and MONAI's UNet of the same size, interleaved
    python bench/training.py --device cpu --precision fp32 --shape 32 32 32 --width 8 \
        --depth 4 --batch 4 --threads 1 --against-layout   # channels last against the default

--against-monai: monai.networks.nets.UNet with the same input, classes, channels per level
(width doubled at each of `depth` levels), instance norm and no residual units, its
fine-tuning step (everything trains) timed in turns with this project's FT_All step, so that
the GPU's clocks and the machine's load fall on both alike.

--against-layout: the FT_All step in the trainer's memory layout (devices.
training_memory_format: channels last for fp32 on the CPU) and in torch's default, in turns.
"""

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from lesion_transfer.devices import autocast_context, resolve_precision, training_memory_format
from lesion_transfer.model.strategies import STRATEGIES, apply_strategy, set_train_mode
from lesion_transfer.model.unet import UNet3D, UNetConfig
from lesion_transfer.train.trainer import lay_out


def measure(model, trainable, out_channels, args, device, precision, layout=None):
    """trainable: a strategy's parts of this project's UNet, or None: every parameter trains
    (any network, MONAI's too). layout: the weights' and batch's memory format, the
    trainer's (devices.training_memory_format) unless given."""
    layout = layout or training_memory_format(device, precision)
    lay_out(model, layout)
    if trainable is None:
        parameters = list(model.parameters())
        model.train()
    else:
        parameters = apply_strategy(model, trainable)
        set_train_mode(model, trainable)
    optimizer = torch.optim.Adam(parameters, lr=1e-3)
    x = torch.rand(args.batch, 4, *args.shape, device=device).to(memory_format=layout)
    if out_channels == 1:
        target = (torch.rand(args.batch, *args.shape, device=device) > 0.99).float()
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(100.0, device=device))
    else:
        target = torch.randint(0, out_channels, (args.batch, *args.shape), device=device)
        loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast_context(device, precision):
            logits = model(x)
        loss = loss_fn(logits[:, 0].float() if out_channels == 1 else logits.float(), target)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process RSS, GiB
    return statistics.median(times), peak


def unet3d(args):
    """This project's UNet at the benchmark's width and depth (instance norm, the default's)."""
    return UNet3D(UNetConfig(out_channels=1, width=args.width, depth=args.depth,
                             norm="instance"))


def monai_unet(width, depth):
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=4, out_channels=4,
                channels=[width * 2 ** level for level in range(depth)],
                strides=[2] * (depth - 1), num_res_units=0, norm="instance")


def interleaved(models, args, device, precision):
    """Rows (label, median seconds, peak GiB) of each (model, layout)'s FT_All step, measured
    in args.rounds turns (layout None: the trainer's)."""
    times = {name: [] for name in models}
    peaks = dict.fromkeys(models, 0.0)
    for _ in range(args.rounds):
        for name, (model, layout) in models.items():
            seconds, peak = measure(model, None, 4, args, device, precision, layout)
            times[name].append(seconds)
            peaks[name] = max(peaks[name], peak)
    return [(f"fine-tuning step, everything trains, in turns: {name}",
             statistics.median(times[name]), peaks[name]) for name in models]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shape", type=int, nargs=3, default=[240, 192, 192])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch's own "
                        "choice when left out)")
    parser.add_argument("--against-monai", action="store_true",
                        help="also MONAI's UNet of the same size, timed in turns with FT_All")
    parser.add_argument("--against-layout", action="store_true",
                        help="also FT_All in the trainer's memory layout and in torch's "
                        "default, timed in turns")
    parser.add_argument("--rounds", type=int, default=3, help="turns of --against-* timings")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    source = unet3d(args).to(device)
    rows.append(("pretraining step", *measure(source, STRATEGIES["scratch"].trainable, 1, args,
                                               device, precision)))
    for strategy in ("ft_all", "ft_decoder", "ft_last_three"):
        model = unet3d(args)
        model.replace_head(4)
        model.to(device)
        rows.append((f"fine-tuning step ({strategy})",
                     *measure(model, STRATEGIES[strategy].trainable, 4, args, device,
                              precision)))
    if args.against_monai:
        ours = unet3d(args)
        ours.replace_head(4)
        models = {"this project's UNet3D": (ours.to(device), None),
                  "MONAI UNet (same channels, no residual units)":
                      (monai_unet(args.width, args.depth).to(device), None)}
        rows += interleaved(models, args, device, precision)
    if args.against_layout:
        layouts = {"the trainer's": training_memory_format(device, precision),
                   "torch's default": torch.contiguous_format}
        models = {}
        for label, layout in layouts.items():
            torch.manual_seed(0)
            model = unet3d(args)
            model.replace_head(4)
            models[f"{label} ({str(layout).removeprefix('torch.')})"] = (model.to(device),
                                                                         layout)
        rows += interleaved(models, args, device, precision)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    lines = [f"# Training step benchmark: {name or platform.machine()}", "",
             f"Command: `python {' '.join(sys.argv)}`", "",
             f"Input {args.batch} x 4 x {' x '.join(map(str, args.shape))}, UNet width "
             f"{args.width}, depth {args.depth}, "
             f"{precision if precision == 'fp32' else precision + ' autocast'}, "
             f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}, "
             # the workflow's jobs sleep between parallel regions (the Snakefile sets PASSIVE):
             # alone, a job's step is up to twice this benchmark's without it
             f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}.", "",
             "| step | median seconds | peak memory (GiB) |", "|---|---|---|"]
    lines += [f"| {n} | {t:.3f} | {m:.2f} |" for n, t, m in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
