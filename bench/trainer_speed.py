"""Training throughput of archtune's fine-tuning trainer vs a minimal hand-written PyTorch loop.

Both loops train the same timm model with the same batches, batch size, input size, optimiser
(AdamW) and thread count, without regularisers; the table reports train images/s and the ratio
(goal: >= 0.9x). Runs alternate (trainer, hand, trainer, hand, ...) and the best of each is kept,
which damps noise from other processes.

    python bench/trainer_speed.py                      # CPU: resnet10t, 32 px, digits loader
    python bench/trainer_speed.py --threads 1 --repeats 3
    python bench/trainer_speed.py --gpu                # resnet50, 224 px, AMP, channels_last, synthetic

CPU mode feeds both loops from the same digits DataLoader (so the data pipeline is in both); GPU
mode feeds both from synthetic batches already on the GPU, so only the training step is measured.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainers.api import LocalContext  # noqa: E402
from trainers.finetune import FineTuner  # noqa: E402


class Synthetic:
    """``steps`` identical-shape batches, already on ``device``."""

    def __init__(self, batch_size, image_size, num_classes, steps, device, channels_last):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch_size, 3, image_size, image_size, generator=g)
        y = torch.randint(0, num_classes, (batch_size,), generator=g)
        x = x.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self.x, self.y, self.steps = x, y.to(device), steps
        self.generator = None

    def __iter__(self):
        for _ in range(self.steps):
            yield self.x, self.y

    def __len__(self):
        return self.steps


def make_trainer(args, device: str) -> FineTuner:
    config = {
        "model": args.model, "image_size": args.image_size, "batch-size": args.batch_size,
        "opt": "adamw", "lr": 1e-3, "weight-decay": 1e-4, "sched": "cosine", "amp": args.amp,
        "device": device, "checkpoint_every": 0, "data_fraction": args.data_fraction,
    }
    ctx = LocalContext(tempfile.mkdtemp(prefix="bench_"), seed=0, max_epochs=args.epochs + 1,
                       num_cpus=args.threads, echo=False, tensorboard=False)
    return FineTuner(config, ctx)


def trainer_run(ft: FineTuner, loader, epochs: int) -> float:
    ft.train_loader = loader
    best = 0.0
    for _ in range(epochs):
        _, images, seconds = ft.train_epoch()
        if ft.device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, images / seconds)
    return best


def hand_run(model, loader, epochs: int, device: torch.device, amp_dtype, channels_last: bool) -> float:
    """The minimal loop: forward, cross-entropy, backward, AdamW step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model.train()
    best = 0.0
    for _ in range(epochs):
        images = 0
        start = time.perf_counter()
        for x, y in loader:
            if channels_last:
                x = x.to(device, non_blocking=True, memory_format=torch.channels_last)
            else:
                x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                out = model(x)
            loss = F.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            images += len(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, images / (time.perf_counter() - start))
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="resnet50 @224 px, AMP, channels_last, synthetic data")
    parser.add_argument("--model", default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per repeat (best kept)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="synthetic steps per epoch (--gpu)")
    parser.add_argument("--amp", action="store_true", help="AMP on CPU too (always on with --gpu)")
    args = parser.parse_args(argv)

    if args.gpu:
        if not torch.cuda.is_available():
            parser.error("--gpu needs CUDA")
        args.model = args.model or "resnet50"
        args.image_size = args.image_size or 224
        args.batch_size = args.batch_size or 128
        args.amp = True
        args.data_fraction = 0.05
        device = "cuda"
    else:
        args.model = args.model or "resnet10t"
        args.image_size = args.image_size or 32
        args.batch_size = args.batch_size or 64
        args.data_fraction = 1.0
        device = "cpu"
    args.threads = args.threads or (os.cpu_count() or 1)
    torch.set_num_threads(args.threads)

    ft = make_trainer(args, device)
    dev = ft.device
    if args.gpu:
        loader = Synthetic(args.batch_size, args.image_size, ft.num_classes, args.steps, dev, True)
    else:
        loader = ft.train_loader
    # same architecture, fresh weights, for the hand-written loop
    import timm

    hand_model = timm.create_model(args.model, num_classes=ft.num_classes).to(dev)
    if ft.channels_last:
        hand_model = hand_model.to(memory_format=torch.channels_last)

    # warm-up (allocator, cuDNN autotuning, oneDNN primitives)
    warm = Synthetic(args.batch_size, args.image_size, ft.num_classes, 3, dev, ft.channels_last)
    trainer_run(ft, warm, 1)
    hand_run(hand_model, warm, 1, dev, ft.amp_dtype, ft.channels_last)

    trainer_best = hand_best = 0.0
    for _ in range(args.repeats):
        trainer_best = max(trainer_best, trainer_run(ft, loader, args.epochs))
        hand_best = max(hand_best, hand_run(hand_model, loader, args.epochs, dev, ft.amp_dtype, ft.channels_last))

    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else f"CPU x{args.threads} threads"
    amp = f"{ft.amp_dtype}".replace("torch.", "") if ft.amp_dtype is not None else "off"
    data = "synthetic on GPU" if args.gpu else f"digits loader ({len(ft.train_ds)} imgs/epoch)"
    print(f"device: {name} | model {args.model} | {args.image_size} px | batch {args.batch_size} | "
          f"AMP {amp} | channels_last {ft.channels_last} | data: {data}")
    print("| loop | train images/s |")
    print("|---|---|")
    print(f"| archtune trainer | {trainer_best:.1f} |")
    print(f"| hand-written PyTorch | {hand_best:.1f} |")
    print(f"| ratio trainer/hand | {trainer_best / hand_best:.3f}x |")


if __name__ == "__main__":
    main()
