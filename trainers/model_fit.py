"""Which size a timm model runs at, for any requested image size.

:func:`fit_model` decides, once per ``(model, image_size)``, how the model is built and what
side its inputs have, in this order:

1. ``image_size`` unset or equal to the model's native size: built as is.
2. The model takes ``img_size`` (ViT, DeiT, BEiT, VOLO, Swin V2, XCiT, MobileViT ...): built for
   the requested size (timm resamples position embeddings of pretrained weights); where the patch
   size does not divide it, with ``dynamic_img_pad=True`` when the model has it.
3. Otherwise the model is tried at the requested size as is (most CNNs run at any size).
4. Failing that, the nearest size that works (multiples of 8, larger first on ties, up to the
   native size): the data pipelines then resize the images to that size, and the trial reports
   it as ``input_size``.

Each candidate is checked by a forward pass of a batch of one on PyTorch's ``meta`` device
(shapes only: no memory, no arithmetic), on the CPU when an op has no meta kernel.
:func:`check_models` runs it for every model an experiment can draw, so a model that cannot
run is rejected before any trial starts.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from trainers.errors import TrainerError

__all__ = ["ModelFit", "check_finetune_experiment", "check_models", "fit_model", "native_size"]

_SIZE_STEP = 8


@dataclass(frozen=True)
class ModelFit:
    """How ``model`` runs at the requested ``image_size``.

    Attributes:
        model: timm model name.
        image_size: the requested side (``None``: the model's native size).
        input_size: the side the model's inputs have (equal to ``image_size`` unless the
            images are resized to the nearest size the model accepts).
        create_kwargs: extra ``timm.create_model`` arguments (``img_size``, ``dynamic_img_pad``).
        how: ``native``, ``img_size``, ``dynamic_img_pad``, ``as_is`` or ``resized``.
        reason: why no size works (then the model cannot run); ``None`` when it can.
    """

    model: str
    image_size: int | None
    input_size: int
    create_kwargs: Mapping[str, Any] = field(default_factory=dict)
    how: str = "native"
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


@functools.lru_cache(maxsize=256)
def native_size(model: str) -> int:
    """The side of the model's default input, from the pretrained config of the model timm
    builds for the name (deprecated names such as ``tf_efficientnet_b7_ns`` resolve to their
    current tag); 224 when it has none."""
    import timm

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = timm.create_model(model, pretrained=False)
    size = (getattr(net, "pretrained_cfg", None) or {}).get("input_size")
    return int(size[-1]) if size else 224


def _probe(model: str, kwargs: Mapping[str, Any], side: int) -> str | None:
    return _probe_cached(model, tuple(sorted(kwargs.items())), side)


@functools.lru_cache(maxsize=512)
def _probe_cached(model: str, items: tuple[tuple[str, Any], ...], side: int) -> str | None:
    """``None`` when ``model`` built with ``kwargs`` runs a forward pass at ``side`` px, else the
    error (first line). ``TypeError`` from ``create_model`` means an unknown kwarg."""
    import timm

    def run(device: str) -> None:
        with torch.device(device), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = timm.create_model(model, pretrained=False, num_classes=2, **dict(items))
            net.eval()
            with torch.no_grad():
                net(torch.zeros(1, 3, side, side))

    try:
        run("meta")
        return None
    except TypeError as exc:
        if "unexpected keyword" in str(exc) or "got an unexpected" in str(exc):
            return f"TypeError: {exc}"
        first = str(exc)
    except (NotImplementedError, RuntimeError, AssertionError, ValueError, IndexError) as exc:
        first = f"{type(exc).__name__}: {exc}"
        if "meta" not in first.lower() and not isinstance(exc, NotImplementedError):
            return first.splitlines()[0]
    try:  # an op without a meta kernel: check on the CPU
        run("cpu")
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "does not run at this size"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else first}"


def _accepts(model: str, kwarg: str, side: int) -> bool:
    error = _probe(model, {kwarg: True} if kwarg == "dynamic_img_pad" else {kwarg: side}, side)
    return error is None or not error.startswith("TypeError")


def _nearby(side: int, limit: int) -> list[int]:
    """Candidate sides near ``side``: multiples of 8 up to ``limit``, nearest first (larger
    first on ties)."""
    top = max(limit, side)
    sizes = [s for s in range(_SIZE_STEP, top + 1, _SIZE_STEP) if s != side]
    return sorted(sizes, key=lambda s: (abs(s - side), -s))


@functools.lru_cache(maxsize=256)
def fit_model(model: str, image_size: int | None) -> ModelFit:
    """How ``model`` runs at ``image_size`` (see the module docstring). Cached per process.

    Raises:
        TrainerError: ``model`` is not a timm model (with the closest names).
    """
    import timm

    if not timm.is_model(model):
        import difflib

        close = difflib.get_close_matches(model, timm.list_models(), n=3, cutoff=0.6)
        raise TrainerError(f"model: unknown timm model {model!r}; close: {close}")
    native = native_size(model)
    if image_size is None or int(image_size) == native:
        return ModelFit(model, image_size, native)
    side = int(image_size)
    takes_size = _accepts(model, "img_size", side)
    first = _probe(model, {"img_size": side} if takes_size else {}, side)
    if first is None:
        kwargs = {"img_size": side} if takes_size else {}
        return ModelFit(model, side, side, kwargs, "img_size" if takes_size else "as_is")
    if takes_size and _probe(model, {"img_size": side, "dynamic_img_pad": True}, side) is None:
        return ModelFit(model, side, side, {"img_size": side, "dynamic_img_pad": True},
                        "dynamic_img_pad")
    for other in _nearby(side, native):
        kwargs = {"img_size": other} if takes_size else {}
        if _probe(model, kwargs, other) is None:
            return ModelFit(model, side, other, kwargs, "resized")
    return ModelFit(model, side, native, {}, "native",
                    reason=f"no input size from {_SIZE_STEP} to {max(native, side)} px runs "
                           f"({first})")


def check_models(models: Iterable[str], image_size: int | None) -> list[tuple[str, str]]:
    """``(model, reason)`` for every model of ``models`` that cannot run at ``image_size``
    (unknown to timm, or no input size works); empty when all can."""
    bad = []
    for name in dict.fromkeys(models):
        try:
            fit = fit_model(str(name), None if image_size is None else int(image_size))
        except TrainerError as exc:
            bad.append((str(name), str(exc)))
            continue
        if not fit.ok:
            bad.append((str(name), str(fit.reason)))
    return bad


def _values(space: Any, name: str) -> tuple[Any, ...] | None:
    """The values the space can give parameter ``name`` (None when it has no such parameter)."""
    params = getattr(space, "params", {})
    if name not in params:
        return None
    p = params[name]
    for attr in ("choices", "values", "sequence"):
        if hasattr(p, attr):
            return tuple(getattr(p, attr))
    if hasattr(p, "value"):
        return (p.value,)
    low, high = getattr(p, "low", None), getattr(p, "high", None)
    return (low, high) if low is not None else None


def _conditional_on(space: Any, child: str, parent: str) -> bool:
    for cond in getattr(space, "conditions", ()):
        if getattr(cond, "child", None) == child and parent in str(getattr(cond, "parent", "")):
            return True
    return False


def check_finetune_experiment(data: Mapping[str, Any], space: Any) -> None:
    """Reject, before any trial starts, a ``finetune`` experiment some trial of which would fail:

    - a model the space can draw (the ``model`` parameter, fixed or searched, else
      ``data.model``) that cannot run at ``data.image_size`` (:func:`check_models`);
    - ``cotuning-reg`` that can be > 0 without a pretrained source head (``pretrained`` false),
      unless the space makes it conditional on ``pretrained``.

    Raises:
        TrainerError: one error naming the model(s), the image size and the reason, and how to
            exclude them.
    """
    image_size = data.get("image_size")
    models = _values(space, "model")
    if models is None:
        models = (data.get("model", "resnet10t"),)
    bad = check_models([str(m) for m in models], image_size)
    if bad:
        lines = "; ".join(f"{m}: {why}" for m, why in bad)
        if len(models) == 1:
            raise TrainerError(f"model {bad[0][0]!r} cannot run at image_size {image_size}: "
                               f"{bad[0][1]}")
        raise TrainerError(
            f"{len(bad)} of the {len(models)} models of the space's 'model' parameter cannot run "
            f"at image_size {image_size} ({lines}); exclude them (e.g. fixed: {{model: ...}} or a "
            f"space without them) or change data.image_size")
    _check_cotuning(data, space)


def _check_cotuning(data: Mapping[str, Any], space: Any) -> None:
    pretrained = data.get("pretrained", False)
    values = _values(space, "cotuning-reg")
    pretrained_values = _values(space, "pretrained")
    if pretrained_values is not None and all(v not in (False, None, "false") for v in pretrained_values):
        return
    if pretrained not in (False, None, "false") or values is None:
        return
    positive = [v for v in values if isinstance(v, (int, float)) and float(v) > 0]
    if not positive or _conditional_on(space, "cotuning-reg", "pretrained"):
        return
    raise TrainerError(
        f"cotuning-reg can be > 0 (values {list(values)}) but the experiment has no pretrained "
        f"source head (pretrained: {pretrained!r}), so those trials would fail; fix it to 0 "
        f"(fixed: {{cotuning-reg: 0.0}}), set data.pretrained to true or a checkpoint path, or "
        f"make cotuning-reg conditional on pretrained")
