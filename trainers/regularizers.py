"""Fine-tuning regularisers: L2-SP, DELTA, BSS and Co-Tuning (REFERENCE.md section 1).

Notation: ``w`` current weights, ``w0`` weights when fine-tuning starts, ``f(x)`` the pre-logit
features of the model being trained, ``f0(x)`` the same from a frozen copy of the starting model.
Every penalty here is *alpha-free*: the training loop multiplies it by the knob's value
(``sp-reg``, ``delta-reg``, ``bss-reg``, ``cotuning-reg``) and skips it when the value is 0.

- :class:`L2SP`: ``sum ||w - w0||^2`` over the backbone parameters trainable at the start.
- :class:`DeltaRegularizer`: ``mean_batch ||f(x) - f0(x)||^2``, ``f0`` detached.
- :func:`bss_penalty`: ``sum_{i=1..k} sigma_{-i}^2`` of the batch feature matrix (b x d).
- :class:`CoTuning`: ``mean_b CE(R[y_b], source_head(f(x_b)))`` with the category relationship
  ``R[t, s] = mean over training images of target class t of softmax(source_head(f(x)))[s]``.

Features come from :func:`pre_logits`, i.e. timm's ``forward_head(forward_features(x),
pre_logits=True)``, which works for CNNs and ViTs alike.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainers.errors import TrainerError

__all__ = [
    "L2SP",
    "CoTuning",
    "DeltaRegularizer",
    "SourceHead",
    "backbone_parameters",
    "bss_penalty",
    "compute_relationship",
    "features_and_logits",
    "head_parameter_names",
    "head_pre_logits",
    "make_frozen_copy",
    "no_head_dropout",
    "pre_logits",
    "source_head_of",
]


# ----------------------------------------------------------------------------------------------
# Model helpers


def head_parameter_names(model: nn.Module) -> set[str]:
    """Names of the head's parameters: everything ``reset_classifier`` re-creates
    (:func:`trainers.freezing.head_parameter_names`)."""
    from trainers.freezing import head_parameter_names as names

    return names(model)


def backbone_parameters(
    model: nn.Module, trainable_only: bool = True
) -> list[tuple[str, nn.Parameter]]:
    """``(name, param)`` of every parameter outside the classifier head (trainable ones only by
    default): the parameters L2-SP pulls back to their starting values."""
    head = head_parameter_names(model)
    return [
        (n, p) for n, p in model.named_parameters()
        if n not in head and (p.requires_grad or not trainable_only)
    ]


def make_frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with ``requires_grad=False`` everywhere (the ``f0``
    of DELTA). Take it *before* training changes the weights."""
    frozen = copy.deepcopy(model)
    frozen.eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


@contextlib.contextmanager
def no_head_dropout(model: nn.Module) -> Iterator[None]:
    """Within the block, the head's dropout is off: every dropout module is in eval mode and a
    timm model's ``drop_rate`` (applied functionally in ``forward_head``) is 0."""
    dropouts = [m for m in model.modules()
                if isinstance(m, nn.modules.dropout._DropoutNd) and m.training]
    rate = getattr(model, "drop_rate", None)
    for m in dropouts:
        m.train(False)
    if isinstance(rate, float) and rate > 0:
        model.drop_rate = 0.0
    try:
        yield
    finally:
        for m in dropouts:
            m.train(True)
        if isinstance(rate, float) and rate > 0:
            model.drop_rate = rate


def _timm_parts(model: nn.Module):
    forward_features = getattr(model, "forward_features", None)
    forward_head = getattr(model, "forward_head", None)
    if forward_features is None or forward_head is None:
        raise TrainerError(
            f"{type(model).__name__} has no forward_features/forward_head: DELTA, BSS and "
            f"Co-Tuning need a timm-style model to read pre-logit features"
        )
    return forward_features, forward_head


def head_pre_logits(model: nn.Module, feature_map: Tensor) -> Tensor:
    """Pre-logit features (b, d) from a ``forward_features`` output: ``forward_head(...,
    pre_logits=True)`` with the head's dropout off, flattened."""
    _, forward_head = _timm_parts(model)
    with no_head_dropout(model):
        feats = forward_head(feature_map, pre_logits=True)
    return feats.flatten(1) if feats.ndim > 2 else feats


def pre_logits(model: nn.Module, x: Tensor) -> Tensor:
    """Pre-logit features ``f(x)`` of shape (b, d): timm's ``forward_head(forward_features(x),
    pre_logits=True)`` (pooled features, after any head norm, *before* the head's dropout and
    the classifier).

    Raises:
        TrainerError: the model has no ``forward_features``/``forward_head(pre_logits=...)``.
    """
    forward_features, _ = _timm_parts(model)
    return head_pre_logits(model, forward_features(x))


def features_and_logits(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(pre-logit features, logits)`` from one ``forward_features`` pass: the features as
    :func:`pre_logits` (no dropout), the logits ``forward_head(feature_map)`` -- the whole head
    ``model(x)`` uses (VOLO's ``aux_head`` term, DLA's 1x1-conv classifier, dropout in training).
    """
    forward_features, forward_head = _timm_parts(model)
    fmap = forward_features(x)
    return head_pre_logits(model, fmap), forward_head(fmap)


def source_head_of(model: nn.Module) -> nn.Linear:
    """A deep copy of ``model``'s current classifier, for Co-Tuning's source head.

    Call it on the *pretrained* model before ``reset_classifier(num_target_classes)``.

    Raises:
        TrainerError: the classifier is not an ``nn.Linear`` with outputs (e.g. ``num_classes=0``).
    """
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, nn.Linear) and head.out_features > 0:
        return copy.deepcopy(head)
    raise TrainerError(
        f"cotuning-reg: {type(model).__name__} has no linear source classifier "
        f"(got {type(head).__name__ if head is not None else None}); Co-Tuning needs the "
        f"pretrained model's classifier head"
    )


class SourceHead(nn.Module):
    """The pretrained model's whole classifier head, kept for Co-Tuning: copies of every module
    ``reset_classifier`` re-creates (:func:`trainers.freezing.head_module_names`; VOLO's
    ``head`` and ``aux_head``, DLA's 1x1-conv ``fc`` ...).

    :meth:`logits` runs the *current* model's ``forward_head`` on a ``forward_features`` output
    with these modules swapped in, so the parts of the head path that fine-tuning trains (norms,
    pooling) are the current ones. ``out_features`` is the number of source classes.

    Raises:
        TrainerError: the model has no head with outputs.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        from trainers.freezing import head_module_names

        self.names = list(head_module_names(model))
        out = int(getattr(model, "num_classes", 0) or 0)
        if not self.names or out < 1:
            raise TrainerError(
                f"cotuning-reg: {type(model).__name__} has no classifier head with outputs; "
                f"Co-Tuning needs the pretrained model's classifier head")
        self.heads = nn.ModuleDict({n.replace(".", "__"): copy.deepcopy(model.get_submodule(n))
                                    for n in self.names})
        self.out_features = out

    @contextlib.contextmanager
    def _swapped(self, model: nn.Module) -> Iterator[None]:
        saved = []
        for name in self.names:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            saved.append((parent, child, getattr(parent, child)))
            setattr(parent, child, self.heads[name.replace(".", "__")])
        try:
            yield
        finally:
            for parent, child, module in reversed(saved):
                setattr(parent, child, module)

    def logits(self, model: nn.Module, feature_map: Tensor) -> Tensor:
        """Source-class logits of ``model``'s ``forward_features`` output (head dropout off)."""
        _, forward_head = _timm_parts(model)
        with self._swapped(model), no_head_dropout(model):
            return forward_head(feature_map)


# ----------------------------------------------------------------------------------------------
# L2-SP


def _buffer_name(name: str) -> str:
    return "w0__" + name.replace(".", "__")


class L2SP(nn.Module):
    """L2-SP penalty ``sum_i ||w_i - w0_i||^2`` (alpha-free; the loop multiplies by ``sp-reg``).

    Args:
        model: the model being fine-tuned, already holding its starting weights ``w0``.
        params: ``(name, param)`` pairs to regularise, e.g. the backbone parameters trainable at
            the start. ``None``: :func:`backbone_parameters` (every trainable parameter outside the
            classifier head).

    Parameters are looked up by name in ``model`` at every call, so the penalty stays correct
    when modules are replaced after construction (e.g.
    :func:`trainers.stochnorm.convert_to_stochnorm`) or the model is moved to another device; a
    name no longer in ``model`` falls back to the parameter object given at construction.

    ``w0`` is stored as buffers, so ``state_dict()`` carries it through checkpoints: on resume,
    load the saved state into a freshly built ``L2SP`` so ``w0`` stays the start of fine-tuning,
    not the resumed weights. Buffers follow ``.to(device)``.

    Example:
        >>> reg = L2SP(model)
        >>> loss = ce + alpha * reg()
    """

    def __init__(self, model: nn.Module, params: Iterable[tuple[str, nn.Parameter]] | None = None):
        super().__init__()
        pairs = backbone_parameters(model) if params is None else list(params)
        self.__dict__["_model"] = model  # a reference, not a submodule (no double registration)
        self.names: list[str] = []
        self._params: list[nn.Parameter] = []
        for name, p in pairs:
            if not isinstance(p, torch.Tensor):
                raise TrainerError(f"L2SP: parameter {name!r} is not a tensor")
            self.names.append(name)
            self._params.append(p)
            self.register_buffer(_buffer_name(name), p.detach().clone())

    def parameters_and_start(self) -> Iterator[tuple[str, Tensor, Tensor]]:
        """``(name, w, w0)`` for every regularised parameter."""
        current = dict(self.__dict__["_model"].named_parameters())
        for name, p in zip(self.names, self._params):
            yield name, current.get(name, p), getattr(self, _buffer_name(name))

    def forward(self) -> Tensor:
        """``sum ||w - w0||^2`` as a scalar float32 tensor (0 when nothing is regularised)."""
        total = None
        for _, p, p0 in self.parameters_and_start():
            term = (p.float() - p0.to(device=p.device, dtype=torch.float32)).pow(2).sum()
            total = term if total is None else total + term
        if total is None:
            device = self._params[0].device if self._params else None
            return torch.zeros((), device=device)
        return total

    def extra_repr(self) -> str:
        return f"num_tensors={len(self.names)}"


# ----------------------------------------------------------------------------------------------
# DELTA


class DeltaRegularizer:
    """DELTA, feature-map form: ``mean_batch ||f(x) - f0(x)||^2`` (alpha-free).

    Holds a frozen copy of the starting model (:func:`make_frozen_copy`) computing ``f0`` under
    ``no_grad``, always in eval mode (running BatchNorm statistics, no dropout), so in training
    mode the penalty is not exactly 0 at the start when the model has BatchNorm or dropout.
    Build it before training changes the weights; move it with ``.to(device)``. On resume,
    rebuild it from the *starting* weights (e.g. the pretrained model), not the resumed ones.

    Example:
        >>> delta = DeltaRegularizer(model)
        >>> feats, logits = features_and_logits(model, x)
        >>> loss = ce + alpha * delta(x, feats)
    """

    def __init__(
        self,
        model: nn.Module,
        features_fn: Callable[[nn.Module, Tensor], Tensor] = pre_logits,
    ):
        self.source = make_frozen_copy(model)
        self.features_fn = features_fn

    def to(self, *args, **kwargs) -> DeltaRegularizer:
        self.source.to(*args, **kwargs)
        return self

    @torch.no_grad()
    def source_features(self, x: Tensor) -> Tensor:
        """``f0(x)`` from the frozen copy (always in eval mode)."""
        self.source.eval()
        return self.features_fn(self.source, x)

    @staticmethod
    def penalty(feats: Tensor, feats0: Tensor) -> Tensor:
        """``mean over the batch of ||feats - feats0||^2`` (squared L2 over all non-batch dims);
        ``feats0`` is detached."""
        if feats.shape != feats0.shape:
            raise TrainerError(
                f"DELTA: feature shapes differ: {tuple(feats.shape)} vs {tuple(feats0.shape)}"
            )
        diff = feats.float().flatten(1) - feats0.detach().float().flatten(1)
        return diff.pow(2).sum(dim=1).mean()

    def __call__(self, x: Tensor, feats: Tensor) -> Tensor:
        """Penalty of the trained model's features ``feats = f(x)`` against ``f0(x)``."""
        return self.penalty(feats, self.source_features(x))


# ----------------------------------------------------------------------------------------------
# BSS


def bss_penalty(features: Tensor, k: int = 1) -> Tensor:
    """Batch Spectral Shrinkage: the sum of the squares of the ``k`` smallest singular values of
    the batch feature matrix ``features`` (b x d; higher-rank input is flattened to (b, -1)).

    Computed in float32 with ``torch.linalg.svdvals``; ``k`` is capped at ``min(b, d)``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise TrainerError(f"bss: k must be an integer >= 1, got {k!r}")
    feats = features.float().flatten(1) if features.ndim != 2 else features.float()
    sigma = torch.linalg.svdvals(feats)  # descending
    k = min(k, sigma.numel())
    return sigma[-k:].pow(2).sum()


# ----------------------------------------------------------------------------------------------
# Co-Tuning


@torch.no_grad()
def compute_relationship(
    model_features_fn: Callable[[Tensor], Tensor],
    source_head: nn.Module,
    loader: Iterable,
    num_target_classes: int,
    device: torch.device | str | None = None,
) -> Tensor:
    """Co-Tuning's category relationship ``R`` (num_target_classes x num_source_classes).

    ``R[t] = mean over the images of target class t of softmax(source_head(model_features_fn(x)))``.
    ``loader`` yields ``(x, y)`` batches with ``y`` integer target labels (use un-augmented
    training images and put the model in eval mode first). A target class with no image gets the
    uniform row, so every row is a probability vector.

    Raises:
        TrainerError: no source head, or a label outside ``[0, num_target_classes)``.
    """
    if source_head is None:
        raise TrainerError(_NO_SOURCE_HEAD)
    n = num_target_classes
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise TrainerError(f"cotuning: num_target_classes must be an integer >= 1, got {n!r}")
    sums: Tensor | None = None
    counts = torch.zeros(num_target_classes, dtype=torch.float64)
    was_training = source_head.training
    source_head.eval()
    try:
        for batch in loader:
            x, y = batch[0], batch[1]
            if device is not None:
                x = x.to(device)
            probs = F.softmax(source_head(model_features_fn(x)).double(), dim=1).cpu()
            y = torch.as_tensor(y).long().cpu()
            if y.numel() and (y.min() < 0 or y.max() >= num_target_classes):
                raise TrainerError(
                    f"cotuning: label {int(y.max() if y.max() >= num_target_classes else y.min())} "
                    f"outside [0, {num_target_classes})"
                )
            if sums is None:
                sums = torch.zeros(num_target_classes, probs.shape[1], dtype=torch.float64)
            sums.index_add_(0, y, probs)
            counts.index_add_(0, y, torch.ones_like(y, dtype=torch.float64))
    finally:
        source_head.train(was_training)
    if sums is None:
        raise TrainerError(
            "cotuning: the loader yielded no batches; cannot compute the relationship"
        )
    rel = sums / counts.clamp(min=1).unsqueeze(1)
    empty = counts == 0
    if empty.any():
        rel[empty] = 1.0 / rel.shape[1]
    return rel.float()


_NO_SOURCE_HEAD = (
    "cotuning-reg > 0 needs the pretrained source classifier head (a pretrained checkpoint with "
    "its classifier); none is available, so set cotuning-reg to 0 or use a pretrained model"
)


class CoTuning(nn.Module):
    """Co-Tuning loss ``mean_b CE(R[y_b], source_head(f(x_b)))`` (alpha-free).

    Args:
        source_head: the pretrained model's classifier (e.g. from :func:`source_head_of`), mapping
            pre-logit features to source-class logits. It is a submodule: add its parameters to
            the optimiser to fine-tune it jointly, as the Co-Tuning paper does.
        relationship: ``R`` (num_target x num_source), rows probability vectors; see
            :func:`compute_relationship` or :meth:`from_loader`. Stored as a buffer, so it is in
            ``state_dict()`` and survives checkpoints.

    Raises:
        TrainerError: ``source_head`` is None, or ``R`` has the wrong shape.
    """

    def __init__(self, source_head: nn.Module | None, relationship: Tensor):
        super().__init__()
        if source_head is None:
            raise TrainerError(_NO_SOURCE_HEAD)
        rel = torch.as_tensor(relationship, dtype=torch.float32)
        out = getattr(source_head, "out_features", None)
        if rel.ndim != 2 or (out is not None and rel.shape[1] != out):
            raise TrainerError(
                "cotuning: relationship must be "
                f"(num_target, {out if out is not None else 'num_source'}), "
                f"got {tuple(rel.shape)}"
            )
        self.source_head = source_head
        self.register_buffer("relationship", rel)

    @classmethod
    def from_loader(
        cls,
        model_features_fn: Callable[[Tensor], Tensor],
        source_head: nn.Module | None,
        loader: Iterable,
        num_target_classes: int,
        device: torch.device | str | None = None,
    ) -> CoTuning:
        """Compute ``R`` with :func:`compute_relationship` and build the loss module."""
        if source_head is None:
            raise TrainerError(_NO_SOURCE_HEAD)
        rel = compute_relationship(
            model_features_fn, source_head, loader, num_target_classes, device
        )
        return cls(source_head, rel.to(device) if device is not None else rel)

    @property
    def num_target_classes(self) -> int:
        return int(self.relationship.shape[0])

    def loss(self, features: Tensor, y: Tensor) -> Tensor:
        """``mean_b CE(R[y_b], source_head(features_b))`` with the soft targets ``R[y_b]``."""
        logits = self.source_head(features)
        targets = self.relationship.to(logits.device)[y.long()]
        return -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()

    def loss_from_logits(self, source_logits: Tensor, target: Tensor) -> Tensor:
        """``mean_b CE(R[y_b], source_logits_b)``; ``target`` holds hard labels (b,) or soft
        targets (b, num_target) -- mixed targets mix the relationship rows alike."""
        rel = self.relationship.to(source_logits.device)
        soft = target.float() @ rel if target.ndim == 2 else rel[target.long()]
        return -(soft * F.log_softmax(source_logits.float(), dim=1)).sum(dim=1).mean()

    def forward(self, features: Tensor, y: Tensor) -> Tensor:
        return self.loss(features, y)
