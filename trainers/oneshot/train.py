"""The one-shot trainers, both following the trial contract of :mod:`trainers.api`.

``train_supernet(config, ctx)`` (registered as ``supernet``) trains a weight-sharing supernet:
``strategy: spos`` samples one uniform random path per step (single-path one-shot), or, with
``sampling: fair`` / ``sandwich``, several paths whose gradients are averaged (FairNAS strict
fairness / the sandwich rule, with ``inplace_distill`` the smaller paths learning from the
largest path's predictions);
``strategy: darts`` alternates an architecture step (Adam on the :class:`DartsMutator` logits,
on a validation batch) with a weight step (SGD, training batch). Each epoch reports
``epoch, train_loss, val_acc, val_acc_max, val_loss, metric, lr, epoch_time_s, num_decisions``
(plus ``arch``, the exported configuration, under darts), where ``val_acc`` is the mean
inherited-weight accuracy of ``eval_subnets`` fixed random subnets after BatchNorm
recalibration. Checkpoints hold the supernet, optimiser, schedule, RNG states, the mutator's
logits and the supernet's factory and arguments (``extra``), so any process can rebuild it
(:func:`load_supernet`).

``train_subnet(config, ctx)`` trains one architecture (the supernet's keys in ``config``)
exported by :func:`~trainers.oneshot.build_subnet`: from scratch (``init: scratch``) or
fine-tuned from the inherited weights of ``supernet_checkpoint`` (``init: inherit``, BatchNorm
recalibrated first). It reports ``val_acc, params, flops, arch_id`` per epoch.
"""
from __future__ import annotations

import itertools
import math
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spaces.registry import import_object
from trainers.api import TrialContext
from trainers.errors import TrainerError
from trainers.oneshot.evaluate import SubnetEvaluator, accuracy, recalibrate_bn
from trainers.oneshot.export import build_subnet
from trainers.oneshot.mutators import DartsMutator, FairMutator, RandomMutator, SandwichMutator
from trainers.oneshot.settings import OneShotConfig
from trainers.oneshot.space import search_space
from trainers.runtime import resolve_device, seed_everything

__all__ = ["build_supernet", "data_loaders", "load_supernet", "train_subnet", "train_supernet"]


def build_supernet(factory: str, args: Mapping[str, Any] | None = None) -> nn.Module:
    """The supernet of ``"module:factory"`` called with ``args``."""
    fn = import_object(factory, error=TrainerError, what="supernet factory")
    net = fn(**dict(args or {}))
    if not isinstance(net, nn.Module):
        raise TrainerError(f"supernet factory {factory!r} returned {type(net).__name__}, "
                           f"not an nn.Module")
    return net


def load_supernet(checkpoint_dir: str | Path, map_location: Any = "cpu") -> nn.Module:
    """Rebuild a supernet from a ``supernet`` trainer checkpoint (factory, args, weights)."""
    from trainers.checkpoint import read_checkpoint

    state = read_checkpoint(checkpoint_dir, map_location=map_location)
    extra = state.get("extra") or {}
    if "supernet" not in extra:
        raise TrainerError(f"{checkpoint_dir}: not a supernet checkpoint (no 'supernet' in "
                           f"its extra state)")
    net = build_supernet(extra["supernet"], extra.get("supernet_args"))
    net.load_state_dict(state["model"])
    return net


def data_loaders(cfg: OneShotConfig, seed: int):
    """``(train_loader, val_loader)`` of the configured dataset."""
    from trainers.data import DataConfig, build_datasets, build_loaders

    dc = DataConfig(dataset=cfg.dataset, data_fraction=float(cfg.data_fraction),
                    image_size=int(cfg.image_size), val_fraction=float(cfg.val_fraction),
                    num_workers=int(cfg.num_workers), batch_size=int(cfg.batch_size))
    train_ds, val_ds, _ = build_datasets(dc)
    return build_loaders(train_ds, val_ds, dc, seed=seed)


class _Loop:
    """State shared by both trainers: data, model, SGD + cosine schedule, checkpoints."""

    def __init__(self, cfg: OneShotConfig, ctx: TrialContext, model: nn.Module) -> None:
        self.cfg, self.ctx = cfg, ctx
        Path(ctx.trial_dir).mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(max(1, int(getattr(ctx, "num_cpus", 1) or 1)))
        self.device = resolve_device(cfg.device)
        self.train_loader, self.val_loader = data_loaders(cfg, ctx.seed)
        self.model = model.to(self.device)
        decay = [p for p in model.parameters() if p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.ndim <= 1]
        self.optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": float(cfg.weight_decay)},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=float(cfg.lr), momentum=float(cfg.momentum), nesterov=float(cfg.momentum) > 0)
        total = max(1, int(ctx.max_epochs))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda e: 0.5 * (1.0 + math.cos(math.pi * min(1.0, e / total))))
        self.epoch = 0

    def batches(self):
        """The training batches of this epoch (order fixed by seed and epoch, for resume)."""
        gen = getattr(self.train_loader, "generator", None)
        if gen is not None:
            gen.manual_seed(int(self.ctx.seed) * 100_003 + self.epoch)
        for x, y in self.train_loader:
            yield x.to(self.device), torch.as_tensor(y).to(self.device)

    def step(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise TrainerError(f"non-finite training loss at epoch {self.epoch + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.model(x), y, label_smoothing=float(self.cfg.label_smoothing))

    def restore(self, extra_modules: Mapping[str, Any] = ()) -> dict[str, Any]:
        """Resume from ``ctx.restore_dir`` (if set); ``extra_modules`` name objects with
        ``load_state_dict`` whose state lives in the checkpoint's ``extra``."""
        from trainers.checkpoint import load_checkpoint

        if self.ctx.restore_dir is None:
            return {}
        info = load_checkpoint(self.ctx.restore_dir, model=self.model, optimizer=self.optimizer,
                               scheduler=self.scheduler, map_location=self.device)
        self.epoch = int(info["epoch"])
        extra = info.get("extra") or {}
        for name, obj in dict(extra_modules).items():
            if name in extra:
                obj.load_state_dict(extra[name])
        return extra

    def report(self, metrics: dict[str, Any], extra: dict[str, Any]) -> None:
        from trainers.checkpoint import save_checkpoint

        every = int(self.cfg.checkpoint_every)
        if every <= 0 or not (self.epoch % every == 0 or self.epoch >= self.ctx.max_epochs):
            self.ctx.report(metrics)
            return
        tmp = Path(tempfile.mkdtemp(prefix="oneshot_ckpt_", dir=str(self.ctx.trial_dir)))
        try:
            save_checkpoint(tmp, model=self.model, optimizer=self.optimizer,
                            scheduler=self.scheduler, epoch=self.epoch,
                            best_metric=float(metrics.get("metric", 0.0)), extra=extra)
            self.ctx.report(metrics, checkpoint_dir=tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


_SAMPLERS = {"uniform": RandomMutator, "fair": FairMutator, "sandwich": SandwichMutator}


def _path_loss(loop: _Loop, logits: torch.Tensor, y: torch.Tensor,
               teacher: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy with the labels, or with ``teacher`` probabilities when given (in-place
    distillation)."""
    if teacher is None:
        return F.cross_entropy(logits, y, label_smoothing=float(loop.cfg.label_smoothing))
    return -(teacher * F.log_softmax(logits, 1)).sum(1).mean()


def _spos_epoch(loop: _Loop, mutator: RandomMutator) -> float:
    mutator.rng = np.random.default_rng([int(loop.ctx.seed), loop.epoch])
    total, n = 0.0, 0
    loop.model.train()
    for x, y in loop.batches():
        paths = mutator.paths() if hasattr(mutator, "paths") else [mutator.sample()]
        loop.optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        teacher = None
        for cfg in paths:
            mutator.apply(cfg)
            logits = loop.model(x)
            loss = _path_loss(loop, logits, y, teacher) / len(paths)
            if loop.cfg.inplace_distill and teacher is None:
                teacher = logits.detach().softmax(1)
            if not torch.isfinite(loss):
                raise TrainerError(f"non-finite training loss at epoch {loop.epoch + 1}")
            loss.backward()
            loss_sum += float(loss.detach())
        loop.optimizer.step()
        total, n = total + loss_sum * len(y), n + len(y)
    return total / max(1, n)


def _darts_epoch(loop: _Loop, mutator: DartsMutator, arch_opt: torch.optim.Optimizer) -> float:
    val = itertools.cycle(list(loop.val_loader))
    total, n = 0.0, 0
    loop.model.train()
    for x, y in loop.batches():
        xv, yv = next(val)
        mutator.reset()
        arch_opt.zero_grad(set_to_none=True)
        loop.loss(xv.to(loop.device), torch.as_tensor(yv).to(loop.device)).backward()
        arch_opt.step()
        mutator.reset()
        loss = loop.loss(x, y)
        loop.step(loss)
        total, n = total + float(loss.detach()) * len(y), n + len(y)
    return total / max(1, n)


def _score_supernet(loop: _Loop, evaluator: SubnetEvaluator, configs: list[dict],
                    mutator: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(mutator, DartsMutator):
        configs = [mutator.export()]
        out["arch"] = dict(configs[0])
        out["arch_entropy"] = mutator.entropy()
    scores = [evaluator(c) for c in configs]
    accs = [s["val_acc"] for s in scores]
    out.update(val_acc=float(np.mean(accs)), val_acc_max=float(np.max(accs)),
               val_loss=float(np.mean([s["val_loss"] for s in scores])))
    out["metric"] = out["val_acc"]
    return out


def train_supernet(config: dict, ctx: TrialContext) -> None:
    """The ``supernet`` trainer (see the module docstring).

    Raises:
        TrainerError: unknown or invalid settings, before anything is trained.
    """
    cfg = OneShotConfig.from_dict(config)
    seed_everything(ctx.seed)
    net = build_supernet(cfg.supernet, cfg.supernet_args)
    loop = _Loop(cfg, ctx, net)
    darts = cfg.strategy == "darts"
    mutator: Any = DartsMutator(net, tau=cfg.tau).to(loop.device) if darts \
        else _SAMPLERS[cfg.sampling](net, seed=ctx.seed)
    arch_opt = torch.optim.Adam(mutator.parameters(), lr=float(cfg.arch_lr), betas=(0.5, 0.999),
                                weight_decay=float(cfg.arch_weight_decay)) if darts else None
    extra_state = {"mutator": mutator, "arch_optimizer": arch_opt} if darts else {}
    loop.restore(extra_state)
    probe = RandomMutator(net, seed=10_007)
    eval_cfgs = [probe.sample() for _ in range(max(1, cfg.eval_subnets))]
    while loop.epoch < ctx.max_epochs:
        start = time.perf_counter()
        lr = float(loop.optimizer.param_groups[0]["lr"])
        train_loss = _darts_epoch(loop, mutator, arch_opt) if darts else _spos_epoch(loop, mutator)
        loop.scheduler.step()
        loop.epoch += 1
        evaluator = SubnetEvaluator(net, loop.train_loader, loop.val_loader,
                                    cfg.bn_recalib_batches, loop.device)
        metrics = {"epoch": loop.epoch, "train_loss": train_loss, "lr": lr,
                   **_score_supernet(loop, evaluator, eval_cfgs, mutator),
                   "epoch_time_s": time.perf_counter() - start,
                   "num_decisions": len(mutator.decisions), "failed": 0}
        extra = {"supernet": cfg.supernet, "supernet_args": dict(cfg.supernet_args),
                 "strategy": cfg.strategy}
        if darts:
            extra.update(mutator=mutator.state_dict(), arch_optimizer=arch_opt.state_dict())
        loop.report(metrics, extra)
        if ctx.should_stop():
            break


train_supernet.checkpoints = True


def _split_subnet_config(config: Mapping[str, Any]) -> tuple[OneShotConfig, nn.Module, dict]:
    keys_net = build_supernet(str(config.get("supernet", OneShotConfig.supernet)),
                              config.get("supernet_args"))
    arch_keys = set(search_space(keys_net).params)
    arch = {k: v for k, v in config.items() if k in arch_keys}
    cfg = OneShotConfig.from_dict({k: v for k, v in config.items() if k not in arch_keys})
    return cfg, keys_net, arch


def train_subnet(config: dict, ctx: TrialContext) -> None:
    """The ``subnet`` trainer (see the module docstring).

    Raises:
        TrainerError: invalid settings or checkpoint; SpaceError: an invalid architecture.
    """
    from trainers.nas.objectives import count_flops, count_params

    seed_everything(ctx.seed)
    cfg, supernet, arch = _split_subnet_config(config)
    if cfg.init == "inherit":
        supernet = load_supernet(cfg.supernet_checkpoint)
    space = search_space(supernet)
    model = build_subnet(supernet, arch)
    arch_id = space.config_id(arch)
    shape = (1, 3, int(cfg.image_size), int(cfg.image_size))
    cost = {"params": count_params(model), "flops": count_flops(model, shape)}
    loop = _Loop(cfg, ctx, model)
    if cfg.init == "inherit" and ctx.restore_dir is None and cfg.bn_recalib_batches:
        recalibrate_bn(model, [x for x, _ in itertools.islice(loop.batches(),
                                                             cfg.bn_recalib_batches)])
    loop.restore()
    val = [(x.to(loop.device), torch.as_tensor(y).to(loop.device)) for x, y in loop.val_loader]
    while loop.epoch < ctx.max_epochs:
        start = time.perf_counter()
        lr = float(loop.optimizer.param_groups[0]["lr"])
        model.train()
        total, n = 0.0, 0
        for x, y in loop.batches():
            loss = loop.loss(x, y)
            loop.step(loss)
            total, n = total + float(loss.detach()) * len(y), n + len(y)
        loop.scheduler.step()
        loop.epoch += 1
        ev = accuracy(model, val)
        metrics = {"epoch": loop.epoch, "train_loss": total / max(1, n), "lr": lr, **ev,
                   "metric": ev["val_acc"], **cost, "arch_id": arch_id,
                   "epoch_time_s": time.perf_counter() - start, "failed": 0}
        loop.report(metrics, {"arch": dict(arch), "init": cfg.init})
        if ctx.should_stop():
            break


train_subnet.checkpoints = True
