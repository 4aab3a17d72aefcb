"""The ``nas`` trainer: build an architecture from its configuration, train it, report objectives.

``train(config, ctx)`` reads

- ``arch``: the architecture space / builder name (``mnasnet``, ``efficientnetv2``, ``spinenet``,
  ``nasfpn``, ... anything registered with :func:`trainers.nas.register_builder`);
- the architecture parameters by their space names (missing ones take the space defaults);
- optional augmentation parameters of the ``randaugment`` / ``autoaugment`` spaces (or
  ``augment``), applied box- and mask-aware by :mod:`trainers.nas.augment_ops` (a segmentation
  task draws from the ``*_segmentation`` op sets);
- run settings (:class:`NasTrainConfig`) and build settings (``width_scale``, ``depth_scale``,
  ``image_size``, ``head_convs``... see ``trainers.nas.BUILD_SETTINGS`` and
  ``trainers.nas.mobile.MOBILE_SETTINGS``).

Tasks: ``classification`` (``dataset`` ``"digits"`` by default, any :mod:`trainers.data` dataset),
``detection`` (``"synthetic-shapes"`` by default, or ``"coco"`` with ``data_dir``) and
``segmentation`` (``"synthetic-shapes"`` by default, or ``"voc"`` / ``"coco"`` with ``data_dir``;
:mod:`trainers.nas.segmentation_data`; cross-entropy over the scored pixels).

Every epoch it reports ``epoch, train_loss, val_loss, metric, lr, epoch_time_s,
train_images_per_s, params, flops, latency_ms, arch, arch_id, arch_params, diverged, failed``
plus ``val_acc`` (classification), ``map, map_50, map_75, mar_100`` (detection) or ``miou,
pixel_acc, miou_background_baseline`` (segmentation; ``metric`` is ``miou``), and ``reward``
when ``latency_target`` (ms) is set. ``arch_id`` is the space's ``config_id`` over the
parameters the builder actually read; ``arch_params`` names them (comma-separated), so the search
can tell which new configurations are the same architecture. The epoch count is
``ctx.max_epochs``; the LR follows a cosine schedule over it. Checkpoints
(:mod:`trainers.checkpoint`) are written every ``checkpoint_every`` epochs and
``ctx.restore_dir`` resumes from one.

Failures never raise out of the trainer: a NaN/inf loss reports once with ``diverged=1,
failed=1``; running out of (CUDA or CPU) memory reports once with ``failed=1``; both carry
``failure_reason``, ``metric=0``, ``val_loss=1e9`` and return. Invalid configurations raise
:class:`~trainers.errors.TrainerError` before anything is trained.
"""
from __future__ import annotations

import copy
import math
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainers.api import TrialContext
from trainers.nas.settings import (  # noqa: F401 - settings names stay importable from here
    DETECTION_DATASETS,
    OPTIMIZERS,
    TASKS,
    NasTrainConfig,
    TrackedConfig,
    split_config,
)
from trainers.runtime import resolve_device, seed_everything

__all__ = ["WORST_LOSS", "NasTrainConfig", "TrackedConfig", "train"]

WORST_LOSS = 1e9


# ----------------------------------------------------------------------------------------------
# data


class _PairAugment(Dataset):
    """Applies a box- or mask-aware policy to the ``(image, target)`` samples of a detection
    dataset or the ``(image, mask)`` samples of a segmentation dataset."""

    def __init__(self, base: Dataset, policy):
        self.base, self.policy = base, policy
        self.num_classes = getattr(base, "num_classes", None)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, target = self.base[index]
        return self.policy(image, target)


def _classification_loaders(cfg: NasTrainConfig, policy, seed: int):
    from trainers.data import DataConfig, build_datasets, build_loaders

    data_cfg = DataConfig(
        dataset=cfg.resolved_dataset, data_dir=cfg.data_dir, download=cfg.download,
        data_fraction=float(cfg.data_fraction), image_size=cfg.resolved_image_size,
        val_fraction=float(cfg.val_fraction), num_workers=cfg.num_workers, batch_size=cfg.batch_size,
    )
    train_ds, val_ds, num_classes = build_datasets(data_cfg, train_transform=policy)
    train_loader, val_loader = build_loaders(train_ds, val_ds, data_cfg, seed=seed)
    return train_loader, val_loader, num_classes


def _detection_loaders(cfg: NasTrainConfig, policy, seed: int):
    from trainers.nas.detection_data import SyntheticShapes, collate_detection, detection_loaders

    size = cfg.resolved_image_size
    if cfg.resolved_dataset == "coco":
        train_loader, val_loader, n = detection_loaders(
            "coco", cfg.batch_size, size, data_dir=cfg.data_dir, num_workers=cfg.num_workers, seed=0)
        train_ds = train_loader.dataset
        if policy is not None:
            train_ds = _PairAugment(train_ds, policy)
    else:
        n_train = max(1, round(cfg.num_train_images * float(cfg.data_fraction)))
        train_ds = SyntheticShapes(n_train, size, seed=0)
        val_ds = SyntheticShapes(cfg.num_val_images, size, seed=10_000)
        n = SyntheticShapes.num_classes
        if policy is not None:
            train_ds = _PairAugment(train_ds, policy)
        val_loader = DataLoader(val_ds, cfg.batch_size, shuffle=False, collate_fn=collate_detection,
                                num_workers=cfg.num_workers)
    gen = torch.Generator().manual_seed(int(seed))
    train_loader = DataLoader(train_ds, cfg.batch_size, shuffle=True, generator=gen,
                              collate_fn=collate_detection, num_workers=cfg.num_workers,
                              drop_last=len(train_ds) > cfg.batch_size)
    return train_loader, val_loader, n


def _segmentation_loaders(cfg: NasTrainConfig, policy, seed: int):
    from trainers.nas.segmentation_data import segmentation_datasets

    train_ds, val_ds, n = segmentation_datasets(
        cfg.resolved_dataset, cfg.resolved_image_size, cfg.num_train_images, cfg.num_val_images,
        data_dir=cfg.data_dir, data_fraction=float(cfg.data_fraction), seed=0)
    if policy is not None:
        train_ds = _PairAugment(train_ds, policy)
    gen = torch.Generator().manual_seed(int(seed))
    train_loader = DataLoader(train_ds, cfg.batch_size, shuffle=True, generator=gen,
                              num_workers=cfg.num_workers,
                              drop_last=len(train_ds) > cfg.batch_size)
    val_loader = DataLoader(val_ds, cfg.batch_size, shuffle=False, num_workers=cfg.num_workers)
    return train_loader, val_loader, n


_LOADERS = {"classification": _classification_loaders, "detection": _detection_loaders,
            "segmentation": _segmentation_loaders}


# ----------------------------------------------------------------------------------------------
# helpers


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA/CPU out-of-memory errors (``torch.OutOfMemoryError`` or the message)."""
    oom_type = getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(err, oom_type):
        return True
    if isinstance(err, MemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


class _Diverged(Exception):
    pass


_FAILED_METRICS: dict[str, dict[str, float]] = {
    "classification": {"val_acc": 0.0},
    "detection": {"map": 0.0, "map_50": 0.0},
    "segmentation": {"miou": 0.0, "pixel_acc": 0.0},
}


def _measure_objectives(model: nn.Module, cfg: NasTrainConfig, device: torch.device) -> dict[str, float]:
    from trainers.nas import objectives

    shape = (1, 3, cfg.resolved_image_size, cfg.resolved_image_size)
    cpu_model = copy.deepcopy(model).cpu()
    out: dict[str, float] = {
        "params": objectives.count_params(model),
        "flops": objectives.count_flops(cpu_model, shape),
    }
    lat_dev = device if cfg.latency_device == "auto" else torch.device(cfg.latency_device)
    if lat_dev.type == "cuda" and not torch.cuda.is_available():
        lat_dev = torch.device("cpu")
    lat_model = cpu_model if lat_dev.type == "cpu" else copy.deepcopy(model).to(lat_dev)
    out["latency_ms"] = objectives.measure_latency(lat_model, shape, lat_dev, cfg.latency_warmup,
                                                   cfg.latency_repeats, cfg.latency_stat)
    return out


# ----------------------------------------------------------------------------------------------
# the trainer


class NasTrainer:
    """One trial of the ``nas`` trainer (see the module docstring); use :func:`train`."""

    def __init__(self, config: Mapping[str, Any], ctx: TrialContext):
        self.ctx = ctx
        self.cfg, self.space, self.builder_cfg = split_config(config)
        self.raw_config = dict(config)
        self.max_epochs = int(ctx.max_epochs)
        self.device = resolve_device(self.cfg.device)
        self.epoch = 0
        self.objectives: dict[str, float] = {}
        self.arch_id = ""
        self.model: nn.Module | None = None

    # -- setup --------------------------------------------------------------------------------
    def _setup(self) -> None:
        from trainers.nas import get_builder
        from trainers.nas.augment_ops import policy_from_config

        cfg, ctx = self.cfg, self.ctx
        Path(ctx.trial_dir).mkdir(parents=True, exist_ok=True)
        seed_everything(ctx.seed)
        torch.set_num_threads(max(1, int(getattr(ctx, "num_cpus", 1) or 1)))
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        policy = policy_from_config(self.raw_config, seed=ctx.seed, task=cfg.task)
        self.train_loader, self.val_loader, n = _LOADERS[cfg.task](cfg, policy, ctx.seed)
        self.num_classes = int(cfg.num_classes or n)
        if cfg.task == "segmentation":
            from trainers.nas.metrics import background_baseline

            self.background_miou = background_baseline(self.val_loader, self.num_classes)
        model = get_builder(cfg.arch)(self.builder_cfg, cfg.task, self.num_classes)
        used = self.builder_cfg.used & set(self.space.params)
        self.arch_id = self.space.config_id(dict(self.builder_cfg), used=used)
        self.arch_params = ",".join(sorted(used))
        self.objectives = _measure_objectives(model, cfg, self.device)
        self.model = model.to(self.device)
        self.optimizer = self._make_optimizer(self.model)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=float(cfg.label_smoothing),
                                             ignore_index=self._ignore_index())

    def _ignore_index(self) -> int:
        """The target value the loss skips: unscored segmentation pixels, else none (-100)."""
        if self.cfg.task != "segmentation":
            return -100
        from trainers.nas.segmentation_data import IGNORE_INDEX

        return IGNORE_INDEX

    def _lr_factor(self, epoch: int) -> float:
        warm = self.cfg.warmup_epochs
        if epoch < warm:
            return (epoch + 1) / (warm + 1)
        span = max(1, self.max_epochs - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (epoch - warm) / span)))

    def _make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        cfg = self.cfg
        decay, no_decay = [], []
        for p in model.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)
        groups = [{"params": decay, "weight_decay": float(cfg.weight_decay)},
                  {"params": no_decay, "weight_decay": 0.0}]
        if cfg.optimizer.lower() == "adamw":
            return torch.optim.AdamW(groups, lr=float(cfg.lr))
        return torch.optim.SGD(groups, lr=float(cfg.lr), momentum=float(cfg.momentum),
                               nesterov=float(cfg.momentum) > 0)

    def _restore(self) -> None:
        from trainers.checkpoint import load_checkpoint

        if self.ctx.restore_dir is None:
            return
        info = load_checkpoint(self.ctx.restore_dir, model=self.model, optimizer=self.optimizer,
                               scheduler=self.scheduler, map_location=self.device)
        self.epoch = int(info["epoch"])
        extra = info.get("extra") or {}
        self.objectives = dict(extra.get("objectives", self.objectives))
        self.ctx.logger.info("resumed from %s at epoch %d", self.ctx.restore_dir, self.epoch)

    # -- epochs -------------------------------------------------------------------------------
    def _step(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise _Diverged(f"non-finite training loss ({loss.item()}) at epoch {self.epoch + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), float(self.cfg.grad_clip))
        self.optimizer.step()

    def _train_epoch(self) -> tuple[float, int]:
        self.model.train()
        # the shuffle order depends on (seed, epoch) only, so a resumed run sees the same batches
        gen = getattr(self.train_loader, "generator", None)
        if gen is not None:
            gen.manual_seed(int(self.ctx.seed) * 100_003 + self.epoch)
        total, images = 0.0, 0
        for batch in self.train_loader:
            loss, n = self._batch_loss(batch)
            self._step(loss)
            total += float(loss.item()) * n
            images += n
        return total / max(1, images), images

    def _batch_loss(self, batch) -> tuple[torch.Tensor, int]:
        """(mean training loss of ``batch``, its number of images)."""
        model, dev = self.model, self.device
        if self.cfg.task == "detection":
            imgs, targets = batch
            imgs = [im.to(dev) for im in imgs]
            targets = [{k: v.to(dev) for k, v in t.items()} for t in targets]
            return sum(model(imgs, targets).values()), len(imgs)
        x, y = batch
        x, y = x.to(dev, non_blocking=True), torch.as_tensor(y).to(dev, non_blocking=True)
        return self.criterion(model(x), y), len(x)

    def _evaluate(self) -> dict[str, float]:
        if self.cfg.task == "classification":
            return self._evaluate_classification()
        if self.cfg.task == "segmentation":
            return self._evaluate_segmentation()
        return self._evaluate_detection()

    @torch.no_grad()
    def _evaluate_classification(self) -> dict[str, float]:
        model, dev = self.model, self.device
        model.eval()
        loss_sum, correct, n = 0.0, 0, 0
        for x, y in self.val_loader:
            x, y = x.to(dev), torch.as_tensor(y).to(dev)
            logits = model(x)
            loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            n += len(x)
        acc = correct / max(1, n)
        return {"val_loss": loss_sum / max(1, n), "val_acc": acc, "metric": acc}

    def _evaluate_segmentation(self) -> dict[str, float]:
        from trainers.nas.metrics import evaluate_segmentation

        out = evaluate_segmentation(self.model, self.val_loader, self.num_classes, self.device,
                                    ignore_index=self._ignore_index())
        out["miou_background_baseline"] = self.background_miou
        out["metric"] = out["miou"]
        return out

    @torch.no_grad()
    def _evaluate_detection(self) -> dict[str, float]:
        from trainers.nas.metrics import evaluate_detection

        model, dev = self.model, self.device
        # losses need train mode in torchvision detectors: keep BatchNorm statistics frozen
        model.train()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        loss_sum, n = 0.0, 0
        for imgs, targets in self.val_loader:
            imgs = [im.to(dev) for im in imgs]
            targets = [{k: v.to(dev) for k, v in t.items()} for t in targets]
            loss_sum += float(sum(model(imgs, targets).values())) * len(imgs)
            n += len(imgs)
        out = evaluate_detection(model, self.val_loader, dev)
        out["val_loss"] = loss_sum / max(1, n)
        out["metric"] = out["map"]
        return out

    # -- reporting ----------------------------------------------------------------------------
    def _base_metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"arch": self.cfg.arch, "arch_id": self.arch_id,
                               "arch_params": getattr(self, "arch_params", "")}
        out.update(self.objectives)
        return out

    def _reward(self, metric: float) -> dict[str, float]:
        from trainers.nas.objectives import reward

        if self.cfg.latency_target is None or "latency_ms" not in self.objectives:
            return {}
        return {"reward": reward(metric, max(self.objectives["latency_ms"], 1e-9),
                                 float(self.cfg.latency_target), self.cfg.reward,
                                 float(self.cfg.reward_weight))}

    def _failure(self, reason: str, diverged: bool) -> None:
        metrics = self._base_metrics()
        metrics.update({
            "epoch": self.epoch + 1, "train_loss": WORST_LOSS, "val_loss": WORST_LOSS,
            "metric": 0.0, "diverged": int(diverged), "failed": 1, "failure_reason": reason,
            "lr": float(self.optimizer.param_groups[0]["lr"]) if getattr(self, "optimizer", None) else 0.0,
        })
        metrics.update(_FAILED_METRICS[self.cfg.task])
        if self.cfg.task == "segmentation" and hasattr(self, "background_miou"):
            metrics["miou_background_baseline"] = self.background_miou
        if self.cfg.latency_target is not None:
            metrics["reward"] = 0.0
        self.ctx.logger.warning("trial failed: %s", reason)
        self.ctx.report(metrics)

    def _checkpoint(self, metrics: dict[str, Any]) -> None:
        from trainers.checkpoint import save_checkpoint

        every = int(self.cfg.checkpoint_every)
        done = self.epoch
        if every <= 0 or not (done % every == 0 or done == self.max_epochs):
            self.ctx.report(metrics)
            return
        tmp = Path(tempfile.mkdtemp(prefix="nas_ckpt_", dir=str(self.ctx.trial_dir)))
        try:
            save_checkpoint(tmp, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                            epoch=done, best_metric=float(metrics["metric"]),
                            extra={"objectives": dict(self.objectives), "arch_id": self.arch_id})
            self.ctx.report(metrics, checkpoint_dir=tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def fit(self) -> None:
        try:
            self._setup()
            self._restore()
            while self.epoch < self.max_epochs:
                start = time.perf_counter()
                train_loss, images = self._train_epoch()
                train_s = time.perf_counter() - start
                lr = float(self.optimizer.param_groups[0]["lr"])
                self.scheduler.step()
                evals = self._evaluate()
                if not math.isfinite(evals["val_loss"]):
                    raise _Diverged(f"non-finite validation loss at epoch {self.epoch + 1}")
                self.epoch += 1
                metrics = self._base_metrics()
                metrics.update({
                    "epoch": self.epoch, "train_loss": train_loss, **evals, "lr": lr,
                    "epoch_time_s": time.perf_counter() - start,
                    "train_images_per_s": images / max(train_s, 1e-9),
                    "diverged": 0, "failed": 0,
                })
                metrics.update(self._reward(float(evals["metric"])))
                self._checkpoint(metrics)
                if self.ctx.should_stop():
                    break
        except _Diverged as e:
            self._failure(f"diverged: {e}", diverged=True)
        except Exception as e:  # only out-of-memory is turned into a report
            if not is_out_of_memory(e):
                raise
            self.model = None
            self.optimizer = getattr(self, "optimizer", None)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if len(text) > 200:
                text = text[:197] + "..."
            self._failure(f"out of memory ({type(e).__name__}): {text}", diverged=False)


def train(config: dict, ctx: TrialContext) -> None:
    """The ``nas`` trainer: build ``config["arch"]`` from its parameters, train, report.

    Raises:
        TrainerError: invalid configuration (unknown key, bad setting, invalid architecture),
            before anything is trained. Divergence and out-of-memory are reported, not raised.
    """
    NasTrainer(config, ctx).fit()
