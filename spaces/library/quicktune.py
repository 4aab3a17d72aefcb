"""The Quick-Tune fine-tuning space (Arango et al., "Quick-Tune: Quickly Learning Which
Pretrained Model to Finetune and How", ICLR 2024).

Names, values, order, ordinal/categorical kinds and the 8 conditions follow the seed space of the
paper's tool exactly (REFERENCE.md section 1). ``quicktune_cpu`` keeps every knob but swaps in
small timm models and batch sizes that train on a CPU.
"""
from __future__ import annotations

from typing import Sequence

from spaces.core import Categorical, Equals, In, Ordinal, SearchSpace
from spaces.library.registry import register_space

#: the 24 timm models of the Quick-Tune model list (seed space), in its order
QUICKTUNE_MODELS: tuple[str, ...] = (
    "beit_base_patch16_384",
    "beit_large_patch16_512",
    "convnext_small_384_in22ft1k",
    "deit3_small_patch16_384_in21ft1k",
    "dla46x_c",
    "edgenext_small",
    "edgenext_x_small",
    "edgenext_xx_small",
    "mobilevit_xs",
    "mobilevit_xxs",
    "mobilevitv2_075",
    "swinv2_base_window12to24_192to384_22kft1k",
    "tf_efficientnet_b4_ns",
    "tf_efficientnet_b6_ns",
    "tf_efficientnet_b7_ns",
    "volo_d1_384",
    "volo_d3_448",
    "volo_d4_448",
    "volo_d5_448",
    "volo_d5_512",
    "xcit_nano_12_p8_384_dist",
    "xcit_small_12_p8_384_dist",
    "xcit_tiny_12_p8_384_dist",
    "xcit_tiny_24_p8_384_dist",
)

#: small timm models that train on a CPU (all exist in timm >= 1.0)
CPU_MODELS: tuple[str, ...] = (
    "test_resnet", "test_vit", "test_convnext", "test_efficientnet", "mobilenetv3_small_050",
    "resnet10t",
)

QUICKTUNE_BATCH_SIZES: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256, 512)
CPU_BATCH_SIZES: tuple[int, ...] = (16, 32, 64, 128)

_MUT = {"mutable": True}


def _build(models: Sequence[str], batch_sizes: Sequence[int], name: str) -> SearchSpace:
    params = [
        # fine-tuning strategies
        Ordinal("pct-to-freeze", (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)),
        Ordinal("layer-decay", (0.0, 0.65, 0.75)),
        Ordinal("linear-probing", (False, True)),
        Ordinal("stoch-norm", (False, True)),
        Ordinal("sp-reg", (0.0, 0.0001, 0.001, 0.01, 0.1), meta=_MUT),
        Ordinal("delta-reg", (0.0, 0.0001, 0.001, 0.01, 0.1), meta=_MUT),
        Ordinal("bss-reg", (0.0, 0.0001, 0.001, 0.01, 0.1), meta=_MUT),
        Ordinal("cotuning-reg", (0.0, 0.5, 1.0, 2.0, 4.0), meta=_MUT),
        # regularisation
        Ordinal("mixup", (0.0, 0.2, 0.4, 1.0, 2.0, 4.0, 8.0), meta=_MUT),
        Ordinal("mixup-prob", (0.0, 0.25, 0.5, 0.75, 1.0), meta=_MUT),
        Ordinal("cutmix", (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0), meta=_MUT),
        Ordinal("drop", (0.0, 0.1, 0.2, 0.3, 0.4), meta=_MUT),
        Ordinal("smoothing", (0.0, 0.05, 0.1), meta=_MUT),
        Ordinal("clip-grad", (0, 1, 10), meta=_MUT),
        # optimisation
        Ordinal("amp", (False, True)),
        Categorical("opt", ("sgd", "momentum", "adam", "adamw", "adamp")),
        Categorical("opt-betas", ("0.9 0.999", "0.0 0.99", "0.9 0.99", "0.0 0.999")),
        Ordinal("lr", (1e-05, 5e-05, 0.0001, 0.0005, 0.001, 0.005, 0.01), meta=_MUT),
        Ordinal("warmup_epochs", (0, 5, 10)),
        Ordinal("warmup-lr", (0.0, 1e-05, 1e-06)),
        Ordinal("weight-decay", (0, 1e-05, 0.0001, 0.001, 0.01, 0.1), meta=_MUT),
        Ordinal("batch-size", tuple(batch_sizes)),
        Ordinal("momentum", (0.0, 0.8, 0.9, 0.95, 0.99), meta=_MUT),
        Categorical("sched", ("cosine", "step", "multistep", "plateau")),
        Ordinal("patience-epochs", (2, 5, 10)),
        Ordinal("decay-rate", (0.1, 0.5)),
        Ordinal("decay-epochs", (10, 20)),
        # data augmentation
        Categorical("data-augmentation",
                    ("auto-augment", "random-augment", "trivial-augment", "none")),
        Categorical("auto-augment", ("v0", "original")),
        Ordinal("ra-num-ops", (2, 3)),
        Ordinal("ra-magnitude", (9, 17)),
        # architecture
        Categorical("model", tuple(models), meta={"arch": True}),
    ]
    conditions = [
        Equals("patience-epochs", "sched", "plateau"),
        In("decay-rate", "sched", ("step", "multistep")),
        In("decay-epochs", "sched", ("step", "multistep")),
        Equals("momentum", "opt", "momentum"),
        In("opt-betas", "opt", ("adam", "adamw", "adamp")),
        Equals("ra-num-ops", "data-augmentation", "random-augment"),
        Equals("ra-magnitude", "data-augmentation", "random-augment"),
        Equals("auto-augment", "data-augmentation", "auto-augment"),
    ]
    return SearchSpace(params, conditions, name=name)


@register_space("quicktune")
def quicktune() -> SearchSpace:
    """The Quick-Tune seed space: 32 parameters, 8 conditions, 24 timm models."""
    return _build(QUICKTUNE_MODELS, QUICKTUNE_BATCH_SIZES, "quicktune")


@register_space("quicktune_cpu")
def quicktune_cpu(models: Sequence[str] | None = None) -> SearchSpace:
    """Same knobs as :func:`quicktune`, small CPU-trainable models, batch sizes 16..128."""
    return _build(tuple(models) if models else CPU_MODELS, CPU_BATCH_SIZES, "quicktune_cpu")


__all__ = ["quicktune", "quicktune_cpu", "QUICKTUNE_MODELS", "CPU_MODELS"]
