"""GPU checks, run on a lent GPU machine: prints one table per check (not a test).

1. Real timm fine-tuning on the GPU: pretrain resnet18 (timm, random init) on digits 0-4, save
   the state_dict, then fine-tune it on digits 5-9 from that local checkpoint with AMP,
   channels_last, layer decay, L2-SP, mixup and Co-Tuning (the source head).
2. NAS detection: MnasNet backbone + RetinaNet on the synthetic shapes set, mAP per epoch.
3. Latency (batch 1, warm-up, median) of SpineNet-49 + RetinaNet at 640 px and of the default
   MnasNet at 224 px, on CPU and GPU.

Usage: python bench/gpu_checks.py [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def finetune_check(out: Path, epochs: int = 4) -> list[dict]:
    from trainers.finetune import FineTuner
    from trainers.api import LocalContext
    from trainers.local import run_local

    base = {"model": "resnet18", "image_size": 64, "batch-size": 128, "amp": True,
            "opt": "adamw", "lr": 1e-3, "sched": "cosine", "num_workers": 4}
    ctx = LocalContext(out / "pretrain", seed=0, max_epochs=epochs, echo=True)
    ft = FineTuner({**base, "dataset": "digits-source", "checkpoint_every": 0}, ctx)
    ft.fit()
    ckpt = out / "resnet18_digits_source.pt"
    torch.save(ft.model.state_dict(), ckpt)
    cfg = {**base, "dataset": "digits-target", "pretrained": str(ckpt), "layer-decay": 0.75,
           "sp-reg": 1e-3, "mixup": 0.2, "mixup-prob": 0.5, "cotuning-reg": 0.5,
           "data-augmentation": "trivial-augment", "lr": 5e-4}
    return run_local(cfg, out / "finetune", max_epochs=epochs, seed=0)


def detection_check(out: Path, epochs: int = 6, n_train: int = 512) -> list[dict]:
    from spaces.library import get_space
    from trainers.api import LocalContext
    from trainers.nas.train import train

    space = get_space("mnasnet")
    cfg = space.default()
    cfg.update({"arch": "mnasnet", "task": "detection", "dataset": "synthetic-shapes",
                "image_size": 128, "num_train_images": n_train, "num_val_images": 64,
                "batch_size": 32, "optimizer": "adamw", "lr": 2e-3, "width_scale": 0.5,
                "fpn_channels": 64, "latency_device": "auto"})
    ctx = LocalContext(out / "detection", seed=0, max_epochs=epochs, echo=True)
    train(cfg, ctx)
    ctx.close()
    return ctx.results


def latency_check() -> list[tuple]:
    from torch import nn

    from spaces.library import get_space
    from trainers.nas import build_model
    from trainers.nas.heads import build_retinanet
    from trainers.nas.objectives import measure_latency
    from spaces.library.spinenet import SPINENET49_BLOCK_SPECS
    from trainers.nas.spinenet import SpineNet

    class BackboneAndHead(nn.Module):
        """SpineNet-49 features + RetinaNet head outputs (no anchor decoding / NMS)."""

        def __init__(self, det):
            super().__init__()
            self.backbone, self.head = det.backbone, det.head

        def forward(self, x):
            return self.head(list(self.backbone(x).values()))

    spine = SpineNet(SPINENET49_BLOCK_SPECS, endpoint_filters=256, filter_scale=1.0,
                     resample_alpha=0.5, block_repeats=1)
    models = [("SpineNet-49 + RetinaNet head", BackboneAndHead(build_retinanet(spine, 80, image_size=640)), 640),
              ("MnasNet (space default)", build_model("mnasnet", get_space("mnasnet").default(),
                                                      num_classes=1000), 224)]
    rows = []
    for name, model, size in models:
        for dev in (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]):
            ms = measure_latency(model, (1, 3, size, size), device=dev, warmup=5, repeats=20)
            rows.append((name, size, dev, round(ms, 2)))
    return rows


def _print_table(columns: list[str], rows) -> None:
    """Print a Markdown table (each row a sequence of cells) after a blank line."""
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/gpu_checks")
    ap.add_argument("--only", default="finetune,detection,latency")
    ap.add_argument("--smoke", action="store_true", help="1 epoch, few images (CPU sanity run)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
          "torch", torch.__version__)
    if "finetune" in args.only:
        t = time.time()
        res = finetune_check(out, epochs=1 if args.smoke else 4)
        _print_table(["epoch", "train_loss", "val_acc", "train img/s"],
                     ([r["epoch"], f"{r['train_loss']:.3f}", f"{r['val_acc']:.3f}",
                       f"{r['train_images_per_s']:.0f}"] for r in res))
        print(f"finetune check: {time.time() - t:.1f}s")
    if "detection" in args.only:
        t = time.time()
        res = detection_check(out, epochs=1 if args.smoke else 6, n_train=32 if args.smoke else 512)
        _print_table(["epoch", "train_loss", "mAP", "mAP@50"],
                     ([r["epoch"], f"{r['train_loss']:.3f}", f"{r.get('map', float('nan')):.3f}",
                       f"{r.get('map_50', float('nan')):.3f}"] for r in res))
        print(f"detection check: {time.time() - t:.1f}s")
    if "latency" in args.only:
        _print_table(["model", "px", "device", "latency ms (median, batch 1)"], latency_check())

if __name__ == "__main__":
    main()
