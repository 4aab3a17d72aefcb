"""A model class bound to an architecture tree (Archai's ``ConfigSearchSpace``).

::

    from spaces.tree import ArchTree, choice, repeat
    from trainers.nas.model_space import ModelSpace

    tree = {"num_ch": choice([8, 16, 32]),
            "layers": repeat({"kernel_size": choice([3, 5, 7])}, counts=[1, 2, 3])}
    ms = ModelSpace(MyModel, tree, model_kwargs={"stem_stride": 2}, seed=0)
    m = ms.random_sample()          # MyModel(arch_config, stem_stride=2), with .archid, .config
    m2 = ms.mutate(m)
    m3 = ms.crossover([m, m2, ms.random_sample()])
    ms.save_arch(m3, "arch.json"); m4 = ms.load_arch("arch.json")

``model_cls(arch_config, **model_kwargs)`` receives an :class:`~spaces.tree.ArchConfig` and reads
its decisions with ``pick``. ``model.archid`` is the space's ``config_id`` over the decisions the
model read (two configurations that differ only in unread decisions share it);
``model.config`` is the flat configuration. Every child of ``mutate``/``crossover`` is valid
(they use :mod:`spaces.variation` and its repair).

A ``ModelSpace`` is also a trainer: ``ms(config, ctx)`` trains ``model_cls`` for ``config`` with
the ``nas`` trainer's loop (a model whose output is a feature map gets a pooled linear head), so
``Experiment(trainer=ms)`` (space defaulting to ``ms.space``) or ``trainer: pkg.mod:ms`` in an
experiment file searches it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from spaces.core import SearchSpace
from spaces.tree import ArchTree
from trainers.api import TrialContext
from trainers.errors import TrainerError

__all__ = ["ModelSpace", "with_classifier"]


def _repair(space: SearchSpace, cfg: Mapping[str, Any], rng: np.random.Generator) -> dict:
    fn = getattr(space, "repair", None) or space._repair
    return fn(cfg, rng)


def _forbidden(space: SearchSpace, cfg: Mapping[str, Any]) -> bool:
    fn = getattr(space, "is_forbidden", None) or space._forbidden
    return bool(fn(cfg))


class _Classifier(nn.Module):
    def __init__(self, body: nn.Module, channels: int, num_classes: int):
        super().__init__()
        from timm.layers import ClassifierHead

        self.body = body
        self.head = ClassifierHead(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def with_classifier(model: nn.Module, num_classes: int, image_size: int = 32) -> nn.Module:
    """``model`` itself when it returns ``(N, num_classes)`` logits, else ``model`` followed by
    timm's pooled linear ``ClassifierHead`` over its ``(N, C, H, W)`` feature map."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, image_size, image_size))
    model.train(was_training)
    if out.ndim == 2 and out.shape[1] == num_classes:
        return model
    if out.ndim != 4:
        raise TrainerError(f"model output of shape {tuple(out.shape)} is neither logits "
                           f"(N, {num_classes}) nor a feature map (N, C, H, W)")
    return _Classifier(model, int(out.shape[1]), num_classes)


class ModelSpace:
    """``model_cls`` bound to an architecture ``tree`` (see the module docstring).

    Args:
        model_cls: callable ``model_cls(arch_config, **model_kwargs) -> nn.Module``.
        tree: an :class:`~spaces.tree.ArchTree` or the nested dict of one.
        model_kwargs: further keyword arguments of ``model_cls``.
        seed: seed of the sampling / variation random generator.
        mutation_prob: probability that ``mutate`` changes each active decision.
        name: reported as ``arch`` by the trainer (default: ``model_cls.__name__``).
    """

    checkpoints = True

    def __init__(self, model_cls: Callable[..., nn.Module], tree: ArchTree | Mapping[str, Any],
                 model_kwargs: Mapping[str, Any] | None = None, seed: int | None = None,
                 mutation_prob: float = 0.3, name: str | None = None):
        if not callable(model_cls):
            raise TrainerError(f"ModelSpace: model_cls must be callable, got {model_cls!r}")
        self.model_cls = model_cls
        self.tree = tree if isinstance(tree, ArchTree) else ArchTree(tree)
        self.model_kwargs = dict(model_kwargs or {})
        self.mutation_prob = float(mutation_prob)
        self.name = name or getattr(model_cls, "__name__", "model")
        self.rng = np.random.default_rng(seed)

    # ---- the space ---------------------------------------------------------------------------
    @property
    def space(self) -> SearchSpace:
        """The flat :class:`~spaces.core.SearchSpace` of the tree's decisions."""
        return self.tree.to_space()

    @property
    def num_archs(self) -> int | float:
        """Archai's ``num_archs``: the product of every decision's size (an upper bound)."""
        return self.tree.num_archs_upper_bound()

    @property
    def num_distinct_archs(self) -> int | float:
        """The exact number of distinct architectures (inactive decisions ignored)."""
        return self.tree.num_archs()

    # ---- models ------------------------------------------------------------------------------
    def build(self, config: Mapping[str, Any]) -> nn.Module:
        """``model_cls`` for ``config`` (a flat configuration of :attr:`space`), with ``archid``,
        ``config`` and ``used`` (the decisions it read) attached.

        Raises:
            TrainerError: ``config`` is not a valid configuration of the space.
        """
        space = self.space
        cfg = space.canonical(config)
        problems = space.violations(cfg)
        if problems:
            raise TrainerError(f"ModelSpace {self.name}: invalid configuration: "
                               f"{'; '.join(problems)}")
        arch_config = self.tree.config(cfg)
        model = self.model_cls(arch_config, **self.model_kwargs)
        model.config = dict(cfg)
        model.used = arch_config.used
        model.archid = arch_config.arch_id(space)
        return model

    def random_sample(self) -> nn.Module:
        """A model of a uniformly sampled configuration."""
        return self.build(self.space.sample(self.rng))

    def mutate(self, model: nn.Module) -> nn.Module:
        """A model whose configuration differs from ``model``'s in some decisions (each active
        one changed with probability ``mutation_prob``; at least one when possible)."""
        space = self.space
        for _ in range(20):
            child = space.mutate(model.config, prob=self.mutation_prob, rng=self.rng)
            if space.config_id(child) != space.config_id(model.config):
                return self.build(child)
        return self.build(child)

    def crossover(self, models: Sequence[nn.Module]) -> nn.Module:
        """A child taking each decision from one of ``models`` (uniformly among the parents in
        which it is active), repaired to a valid configuration."""
        if not models:
            raise TrainerError("ModelSpace.crossover needs at least one parent")
        space = self.space
        parents = [space.canonical(m.config) for m in models]
        for _ in range(100):
            mix: dict[str, Any] = {}
            for name in space.params:
                opts = [p[name] for p in parents if name in p]
                if opts:
                    mix[name] = opts[int(self.rng.integers(len(opts)))]
            child = _repair(space, mix, self.rng)
            if not _forbidden(space, child):
                return self.build(child)
        return self.build(parents[0])

    def encode(self, model: nn.Module, unused: float = np.nan) -> np.ndarray:
        """The space's fixed-length encoding of ``model``; decisions the model did not read
        (and inactive ones) encode as ``unused``, so models that differ only there encode alike."""
        used = set(getattr(model, "used", model.config))
        vec = self.space.encode({k: v for k, v in model.config.items() if k in used})
        return np.where(np.isnan(vec), unused, vec)

    def save_arch(self, model: nn.Module, path: str | Path) -> Path:
        """Write ``model``'s configuration (and ``archid``) as JSON."""
        p = Path(path)
        p.write_text(json.dumps({"config": model.config, "archid": model.archid}, indent=2,
                                default=str) + "\n")
        return p

    def load_arch(self, path: str | Path) -> nn.Module:
        """The model of a configuration written by :meth:`save_arch` (or a plain JSON dict)."""
        data = json.loads(Path(path).read_text())
        return self.build(data.get("config", data) if isinstance(data, dict) else data)

    # ---- as a model source / trainer ---------------------------------------------------------
    def build_for_trial(self, arch: Mapping[str, Any], task: str,
                        num_classes: int) -> tuple[nn.Module, set[str]]:
        if task != "classification":
            raise TrainerError(f"ModelSpace {self.name}: only task 'classification' is supported")
        model = self.build(arch)
        return with_classifier(model, num_classes), set(model.used)

    def __call__(self, config: dict, ctx: TrialContext) -> None:
        """Train ``model_cls`` for ``config`` (architecture decisions + ``nas`` run settings)."""
        from trainers.nas.model_trainer import train_model_source

        train_model_source(self, config, ctx)

    def __repr__(self) -> str:
        return (f"ModelSpace({self.name}, {len(self.space)} decisions, "
                f"num_archs={self.num_archs:.6g})")
