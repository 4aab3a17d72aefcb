"""Settings of the one-shot trainers (:mod:`trainers.oneshot.train`): one frozen dataclass,
checked at construction; unknown keys are rejected naming the closest valid ones."""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainers.errors import TrainerError

__all__ = ["DEFAULT_SUPERNET", "INITS", "SAMPLINGS", "STRATEGIES", "OneShotConfig"]

STRATEGIES = ("spos", "darts")
SAMPLINGS = ("uniform", "fair", "sandwich")
INITS = ("scratch", "inherit")
DEFAULT_SUPERNET = "trainers.oneshot.mnasnet:mnasnet_supernet"


@dataclass(frozen=True)
class OneShotConfig:
    """Run settings of the ``supernet`` and ``subnet`` trainers (all optional).

    Args:
        supernet: ``"module:factory"`` returning the supernet ``nn.Module``;
            ``supernet_args`` are its keyword arguments.
        strategy: ``"spos"`` (single-path one-shot, one uniform random path per step) or
            ``"darts"`` (bi-level: architecture logits trained with Adam(``arch_lr``) on
            validation batches, weights with SGD on training batches; first order).
        sampling: paths per ``spos`` step: ``"uniform"`` (one uniform random path),
            ``"fair"`` (strict fairness, FairNAS: one path per choice, every choice of every
            decision once) or ``"sandwich"`` (largest, smallest and one random path); the
            gradients of a step's paths are averaged before one update.
        inplace_distill: ``sampling: sandwich`` only: the largest path learns from the labels,
            the smallest and the random path from the largest path's softened predictions
            (in-place distillation, OFA / BigNAS; the teacher's output is detached).
        tau: Gumbel-softmax temperature of ValueSpaces under ``darts``.
        dataset, data_fraction, val_fraction, image_size, batch_size, num_workers: the data
            (:class:`trainers.data.DataConfig`).
        lr, momentum, weight_decay, label_smoothing: SGD (Nesterov) with a cosine schedule
            over ``ctx.max_epochs``.
        eval_subnets: random subnets (fixed seed) scored with inherited weights after every
            supernet epoch (their mean is ``val_acc``; under ``darts`` the exported one).
        bn_recalib_batches: training batches used to recalibrate BatchNorm before a subnet
            is validated with inherited weights.
        init: subnet trainer only: ``"scratch"`` (random init) or ``"inherit"`` (weights of
            ``supernet_checkpoint``, a supernet checkpoint directory, then fine-tuned).
        checkpoint_every: checkpoint every N epochs (0: never; the last epoch is always
            saved when N > 0).
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``.
    """

    supernet: str = DEFAULT_SUPERNET
    supernet_args: Mapping[str, Any] = field(default_factory=dict)
    strategy: str = "spos"
    sampling: str = "uniform"
    inplace_distill: bool = False
    tau: float = 1.0
    dataset: str = "digits"
    data_fraction: float = 1.0
    val_fraction: float = 0.2
    image_size: int = 16
    batch_size: int = 64
    num_workers: int = 0
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.0
    arch_lr: float = 3e-3
    arch_weight_decay: float = 1e-3
    eval_subnets: int = 3
    bn_recalib_batches: int = 4
    init: str = "scratch"
    supernet_checkpoint: str | None = None
    checkpoint_every: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        problems = []
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.sampling not in SAMPLINGS:
            problems.append(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if not isinstance(self.inplace_distill, bool):
            problems.append(f"inplace_distill must be a bool, got {self.inplace_distill!r}")
        elif self.inplace_distill and (self.strategy, self.sampling) != ("spos", "sandwich"):
            problems.append(f"inplace_distill needs strategy 'spos' with sampling 'sandwich', "
                            f"got {self.strategy!r} with {self.sampling!r}")
        if self.init not in INITS:
            problems.append(f"init must be one of {INITS}, got {self.init!r}")
        if self.init == "inherit" and not self.supernet_checkpoint:
            problems.append("init 'inherit' needs supernet_checkpoint (a supernet checkpoint "
                            "directory)")
        if ":" not in str(self.supernet):
            problems.append(f"supernet must be 'module:factory', got {self.supernet!r}")
        if not isinstance(self.supernet_args, Mapping):
            problems.append(f"supernet_args must be a mapping, got {self.supernet_args!r}")
        for name in ("lr", "arch_lr", "tau"):
            if not float(getattr(self, name)) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("eval_subnets", "bn_recalib_batches", "checkpoint_every", "num_workers"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                problems.append(f"{name} must be an integer >= 0, got {v!r}")
        if problems:
            raise TrainerError("invalid one-shot settings: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OneShotConfig:
        """Build from a flat mapping; unknown keys raise :class:`TrainerError`."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in d if k not in names]
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(k, names, n=2)
                hints.append(f"{k!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
            raise TrainerError(f"unknown one-shot settings {', '.join(hints)}; valid: "
                               f"{', '.join(names)} (and, for the subnet trainer, the "
                               f"supernet's architecture keys)")
        return cls(**{k: (dict(v) if k == "supernet_args" else v) for k, v in d.items()})
