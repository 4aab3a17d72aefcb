"""Optimiser and LR-scheduler factories for the fine-tuning trainer.

Thin wrappers over ``timm.optim.create_optimizer_v2`` and ``timm.scheduler.create_scheduler_v2``:
``optimizer_kwargs(cfg)`` / ``scheduler_kwargs(cfg, num_epochs)`` map a :class:`TrainerConfig`
onto their keyword arguments (``None`` values dropped so library defaults apply), and the
factories never see a config object.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2

from trainers.errors import TrainerError

from .config import TrainerConfig
from .knobs import SCHEDULERS

__all__ = [
    "create_optimizer",
    "create_scheduler",
    "current_lr",
    "multistep_milestones",
    "optimizer_kwargs",
    "rebuild_optimizer",
    "scheduler_kwargs",
]

# The Quick-Tune optimiser names (trainers.knobs.OPTIMIZERS) are timm's: "sgd" is SGD with
# Nesterov momentum and "momentum" plain SGD with momentum; both take the momentum kwarg.


def _drop_none(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def optimizer_kwargs(cfg: TrainerConfig) -> dict[str, Any]:
    """kwargs for ``create_optimizer_v2``.

    - ``sgd``: Nesterov SGD with momentum 0.9; ``momentum``: SGD with ``cfg.momentum``.
    - ``adam``/``adamw``/``adamp``: betas from ``opt-betas``.
    - ``layer_decay`` only when ``layer-decay > 0`` (0.0 means OFF; passing 0.0 to timm would
      scale every layer but the head to LR 0).
    - 1-D parameters (biases, norm affine) get no weight decay (``filter_bias_and_bn``).
    """
    kwargs: dict[str, Any] = {
        "opt": cfg.opt,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "filter_bias_and_bn": True,
        "momentum": None,
        "betas": None,
        "layer_decay": cfg.layer_decay if cfg.layer_decay > 0 else None,
    }
    if cfg.opt == "sgd":
        kwargs["momentum"] = 0.9
    elif cfg.opt == "momentum":
        kwargs["momentum"] = cfg.momentum
    else:
        kwargs["betas"] = cfg.betas
    return _drop_none(kwargs)


def scheduler_kwargs(cfg: TrainerConfig, num_epochs: int) -> dict[str, Any]:
    """kwargs for ``create_scheduler_v2``; the schedule spans ``num_epochs`` (the experiment's
    max epochs, even when a trial scheduler stops the trial earlier).

    ``step`` decays every ``decay-epochs`` epochs; ``multistep`` at
    :func:`multistep_milestones` (intervals doubling); ``plateau`` watches validation accuracy
    (mode ``max``).
    """
    if num_epochs < 1:
        raise TrainerError(f"the schedule needs num_epochs >= 1, got {num_epochs}")
    kwargs: dict[str, Any] = {
        "sched": cfg.sched,
        "num_epochs": int(num_epochs),
        "warmup_epochs": cfg.warmup_epochs,
        "warmup_lr": cfg.warmup_lr,
        "min_lr": 0.0,
        "decay_epochs": None,
        "decay_milestones": None,
        "decay_rate": None,
        "patience_epochs": None,
        "plateau_mode": None,
    }
    if cfg.sched == "step":
        kwargs.update(decay_epochs=cfg.decay_epochs, decay_rate=cfg.decay_rate)
    elif cfg.sched == "multistep":
        kwargs.update(decay_milestones=multistep_milestones(cfg.decay_epochs, num_epochs),
                      decay_rate=cfg.decay_rate)
    elif cfg.sched == "plateau":
        kwargs.update(patience_epochs=cfg.patience_epochs, decay_rate=cfg.decay_rate,
                      plateau_mode="max")
    elif cfg.sched != "cosine":
        raise TrainerError(f"sched: unknown scheduler {cfg.sched!r}; valid: {', '.join(SCHEDULERS)}")
    return _drop_none(kwargs)


def multistep_milestones(decay_epochs: int, num_epochs: int) -> list[int]:
    """timm ``decay_milestones`` of the ``multistep`` schedule: the LR is multiplied by
    ``decay-rate`` at the start of 0-based epochs ``de, 3de, 7de, ...`` (``de * (2**k - 1)``,
    intervals doubling) below ``num_epochs``, where ``step`` decays every ``de`` epochs
    (``de, 2de, 3de, ...``). The two differ once a run is longer than ``2 * de`` epochs.

    Quick-Tune's ``multistep`` passed timm's default ``decay_milestones`` (90, 180, 270) and
    ignored ``decay-epochs``, so in its runs of at most 50 epochs the LR never decayed; here the
    milestones follow ``decay-epochs`` as the space's condition on it implies. timm's
    ``MultiStepLRScheduler`` decays once ``t + 1 >= milestone``, hence the ``+ 1``.
    """
    starts, k = [], 1
    while decay_epochs * (2 ** k - 1) < num_epochs:
        starts.append(decay_epochs * (2 ** k - 1))
        k += 1
    return [m + 1 for m in starts] or [decay_epochs * (2 ** k - 1) + 1]


def create_optimizer(model: torch.nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    """The optimiser over ``model``'s trainable parameters.

    ``model`` must be the timm model itself (not a wrapper) so layer decay finds its
    ``group_matcher``; frozen parameters (``requires_grad=False``) are left out.
    """
    return create_optimizer_v2(model, **optimizer_kwargs(cfg))


def create_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainerConfig, num_epochs: int):
    """The timm epoch scheduler. Its LR for epoch ``e`` (0-based) is set by ``step(e)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # PlateauLRScheduler deprecation notice
        scheduler, _ = create_scheduler_v2(optimizer, **scheduler_kwargs(cfg, num_epochs))
    if scheduler is None:
        raise TrainerError(f"sched: timm built no scheduler for {cfg.sched!r}")
    return scheduler


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The largest group LR (the head's when layer decay is on)."""
    return max(float(g["lr"]) for g in optimizer.param_groups)


_PLATEAU_STATE = ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "mode_worse")


def rebuild_optimizer(model: torch.nn.Module, cfg: TrainerConfig, optimizer, scheduler,
                      epoch: int, num_epochs: int, factory=None):
    """New ``(optimizer, scheduler)`` after the trainable set changed (linear-probing switch).

    Per-parameter optimiser state (momentum buffers, Adam moments) carries over for parameters
    that were already trained; the new scheduler is put at ``epoch`` (0-based) of the same
    schedule. A plateau scheduler keeps its best metric, patience counters and the LR factor it
    has applied so far. ``factory()`` builds the new optimiser (default
    ``create_optimizer(model, cfg)``).
    """
    new_opt = factory() if factory is not None else create_optimizer(model, cfg)
    for group in new_opt.param_groups:
        for p in group["params"]:
            if p in optimizer.state:
                new_opt.state[p] = optimizer.state[p]
    new_sched = create_scheduler(new_opt, cfg, num_epochs)
    if cfg.sched == "plateau":
        old_inner, new_inner = scheduler.lr_scheduler, new_sched.lr_scheduler
        for key in _PLATEAU_STATE:
            if hasattr(old_inner, key):
                setattr(new_inner, key, getattr(old_inner, key))
        if epoch <= new_sched.warmup_t:
            new_sched.step(epoch)
        else:
            g = optimizer.param_groups[0]
            factor = float(g["lr"]) / (float(g["initial_lr"]) * float(g.get("lr_scale", 1.0)))
            for group in new_opt.param_groups:
                group["lr"] = float(group["initial_lr"]) * float(group.get("lr_scale", 1.0)) * factor
            new_inner._last_lr = [group["lr"] for group in new_opt.param_groups]
    else:
        new_sched.step(epoch)
    return new_opt, new_sched
