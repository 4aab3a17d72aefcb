"""Training-time data augmentation from the Quick-Tune knobs.

:func:`build_train_transform` maps a configuration's ``data-augmentation`` knob (and its children
``auto-augment``, ``ra-num-ops``, ``ra-magnitude``) to a callable on ``uint8`` CHW image tensors
that returns a ``uint8`` tensor of the same shape. It is applied by the datasets of
:mod:`trainers.data` before the float conversion and normalisation.

============================  ================================================================
``data-augmentation``         transform
============================  ================================================================
``"none"`` (or absent)        identity
``"auto-augment"``            AutoAugment with timm's policy named by ``auto-augment``: ``"v0"``
                              (timm's EfficientNet policy) or ``"original"`` (the AutoAugment
                              paper's ImageNet policy). timm's ops, as Quick-Tune used them; they
                              run on PIL images, so the tensor is converted to PIL and back.
                              Translations are scaled like ``timm.data.create_transform``:
                              ``0.45 * image side`` pixels; the fill colour is the model's mean.
``"random-augment"``          ``torchvision.transforms.v2.RandAugment(num_ops=ra-num-ops,
                              magnitude=ra-magnitude)`` on torchvision's 0-30 magnitude scale
                              (31 bins).
``"trivial-augment"``         ``torchvision.transforms.v2.TrivialAugmentWide()``
============================  ================================================================

Randomness: the torchvision ops draw from torch's global generator and timm's AutoAugment from
Python's ``random``; :func:`trainers.data.build_loaders` seeds both in each worker, and the trainer
seeds them in the main process.
"""
from __future__ import annotations

import difflib
from typing import Any, Mapping, Sequence

import torch

from trainers.errors import TrainerError
from trainers.knobs import AUGMENTATIONS, AUTO_AUGMENT_POLICIES

__all__ = [
    "AUGMENTATIONS",
    "AUTO_AUGMENT_POLICIES",
    "Identity",
    "TimmAutoAugment",
    "TensorAugment",
    "augmentation_kwargs",
    "create_augmentation",
    "build_train_transform",
    "with_safe_posterize",
]


def _check_uint8_chw(img: torch.Tensor) -> None:
    if not isinstance(img, torch.Tensor) or img.dtype != torch.uint8 or img.ndim != 3:
        if isinstance(img, torch.Tensor):
            got = f"{img.dtype} {tuple(img.shape)}"
        else:
            got = type(img).__name__
        raise TrainerError(f"augmentations take a uint8 (C, H, W) tensor, got {got}")


class Identity:
    """The ``none`` augmentation: returns its input unchanged."""

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return img

    def __repr__(self) -> str:
        return "Identity()"


def _posterize_safe(img, bits_to_keep, **_):
    """Posterize keeping ``bits_to_keep`` most significant bits; 0 bits gives a black image.

    timm's v0 policy asks for 0 bits at low magnitudes (the TensorFlow reference shifts every bit
    out, i.e. black), which Pillow >= 10 rejects with ValueError; handle both ends here.
    """
    from PIL import Image, ImageOps

    bits = int(bits_to_keep)
    if bits >= 8:
        return img
    if bits <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits)


def with_safe_posterize(aug):
    """Swap timm's posterize for :func:`_posterize_safe` in every op of a timm AutoAugment."""
    from timm.data import auto_augment as timm_aa

    for sub_policy in getattr(aug, "policy", ()):
        for op in sub_policy:
            if getattr(op, "aug_fn", None) is timm_aa.posterize:
                op.aug_fn = _posterize_safe
    return aug


class TimmAutoAugment:
    """timm's AutoAugment policy ``policy`` (``"v0"`` or ``"original"``) on uint8 CHW tensors.

    The timm policy is built per image side (translations are ``0.45 * side`` pixels, as
    ``timm.data.create_transform`` does) and cached. ``mean`` (0-1 floats, the model's
    normalisation mean) sets the fill colour of geometric ops; default mid-grey.
    """

    def __init__(self, policy: str = "v0", mean: Sequence[float] | None = None):
        if policy not in AUTO_AUGMENT_POLICIES:
            raise TrainerError(
                f"auto-augment: unknown policy {policy!r}; "
                f"valid: {', '.join(AUTO_AUGMENT_POLICIES)}"
            )
        self.policy = policy
        if mean is None:
            self.fill: tuple[int, ...] = (128, 128, 128)
        else:
            self.fill = tuple(min(255, round(255 * float(m))) for m in mean)
        self._cache: dict[int, Any] = {}

    def _policy_for(self, side: int):
        aug = self._cache.get(side)
        if aug is None:
            from timm.data.auto_augment import auto_augment_transform

            hparams = {"translate_const": max(1, int(side * 0.45)), "img_mean": self.fill}
            aug = with_safe_posterize(auto_augment_transform(self.policy, hparams))
            self._cache[side] = aug
        return aug

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        _check_uint8_chw(img)
        channels = img.shape[0]
        rgb = img.expand(3, -1, -1) if channels == 1 else img
        pil = TF.to_pil_image(rgb.contiguous())
        out = self._policy_for(min(img.shape[-2:]))(pil)
        res = TF.pil_to_tensor(out)
        return res[:1] if channels == 1 else res

    def __getstate__(self) -> dict:  # timm policies hold lambdas in some versions: rebuild lazily
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def __repr__(self) -> str:
        return f"TimmAutoAugment(policy={self.policy!r}, fill={self.fill})"


class TensorAugment:
    """A torchvision ``transforms.v2`` op applied to a uint8 CHW tensor (returns a plain tensor)."""

    def __init__(self, op: torch.nn.Module):
        self.op = op

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        _check_uint8_chw(img)
        out = self.op(img)
        return out.as_subclass(torch.Tensor) if type(out) is not torch.Tensor else out

    def __repr__(self) -> str:
        return f"TensorAugment({self.op!r})"


def _as_int(value: Any) -> int | None:
    """``value`` as an int when it is integral (int, numpy integer, float like 2.0), else None."""
    if isinstance(value, bool):
        return None
    try:
        as_int = int(value)
    except (TypeError, ValueError):
        return None
    return as_int if as_int == value else None


def _closest(value: Any, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(value), list(valid), n=2, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def augmentation_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """Map a flat Quick-Tune configuration to :func:`create_augmentation` kwargs.

    Reads ``data-augmentation`` (default ``"none"``) and, when relevant, ``auto-augment``
    (default ``"v0"``), ``ra-num-ops`` (default 2) and ``ra-magnitude`` (default 9). Other keys
    are ignored, so the whole trial configuration can be passed.
    """
    name = config.get("data-augmentation", "none")
    if name is None:
        name = "none"
    kw: dict[str, Any] = {"name": name}
    if name == "auto-augment":
        kw["policy"] = config.get("auto-augment", "v0")
    elif name == "random-augment":
        kw["num_ops"] = config.get("ra-num-ops", 2)
        kw["magnitude"] = config.get("ra-magnitude", 9)
    return kw


def create_augmentation(
    name: str,
    *,
    policy: str = "v0",
    num_ops: int = 2,
    magnitude: int = 9,
    mean: Sequence[float] | None = None,
):
    """Build one augmentation by name (one of :data:`AUGMENTATIONS`).

    Args:
        name: ``auto-augment`` | ``random-augment`` | ``trivial-augment`` | ``none``.
        policy: AutoAugment policy, ``v0`` or ``original`` (``auto-augment`` only).
        num_ops: RandAugment ops per image, integer >= 1 (``random-augment`` only).
        magnitude: RandAugment magnitude, integer in [0, 30] (``random-augment`` only).
        mean: the model's normalisation mean, the fill colour of AutoAugment's geometric ops.

    Raises:
        TrainerError: unknown name or policy, or out-of-range RandAugment settings.
    """
    from torchvision.transforms import v2

    if name == "none":
        return Identity()
    if name == "auto-augment":
        return TimmAutoAugment(policy, mean)
    if name == "random-augment":
        problems = []
        n_ops, mag = _as_int(num_ops), _as_int(magnitude)
        if n_ops is None or n_ops < 1:
            problems.append(f"ra-num-ops must be an integer >= 1, got {num_ops!r}")
        if mag is None or not 0 <= mag <= 30:
            problems.append(f"ra-magnitude must be an integer in [0, 30], got {magnitude!r}")
        if problems:
            raise TrainerError("random-augment: " + "; ".join(problems))
        num_ops, magnitude = n_ops, mag
        op = v2.RandAugment(num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=31)
        return TensorAugment(op)
    if name == "trivial-augment":
        return TensorAugment(v2.TrivialAugmentWide())
    raise TrainerError(
        f"data-augmentation: unknown value {name!r}.{_closest(name, AUGMENTATIONS)} "
        f"Valid: {', '.join(AUGMENTATIONS)}."
    )


def build_train_transform(config: Mapping[str, Any], mean: Sequence[float] | None = None):
    """The training augmentation a Quick-Tune configuration asks for.

    Returns a callable taking a ``uint8`` (C, H, W) tensor and returning a ``uint8`` tensor of the
    same shape (identity for ``none``). Pass ``mean`` (the model's normalisation mean) so
    AutoAugment fills uncovered pixels with the mean colour.

    Example:
        >>> t = build_train_transform({"data-augmentation": "random-augment",
        ...                            "ra-num-ops": 2, "ra-magnitude": 9})
        >>> t(torch.zeros(3, 32, 32, dtype=torch.uint8)).shape
        torch.Size([3, 32, 32])
    """
    return create_augmentation(**augmentation_kwargs(config), mean=mean)
