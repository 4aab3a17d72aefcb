"""The Quick-Tune seed space and the built-in library registry."""
from __future__ import annotations

import math

import numpy as np
import pytest

from spaces import Categorical, Ordinal, SpaceError, describe_space
from spaces.library import get_space, list_spaces, quicktune, quicktune_cpu

EXPECTED = {
    "pct-to-freeze": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    "layer-decay": (0.0, 0.65, 0.75),
    "linear-probing": (False, True),
    "stoch-norm": (False, True),
    "sp-reg": (0.0, 1e-4, 1e-3, 1e-2, 1e-1),
    "delta-reg": (0.0, 1e-4, 1e-3, 1e-2, 1e-1),
    "bss-reg": (0.0, 1e-4, 1e-3, 1e-2, 1e-1),
    "cotuning-reg": (0.0, 0.5, 1.0, 2.0, 4.0),
    "mixup": (0.0, 0.2, 0.4, 1.0, 2.0, 4.0, 8.0),
    "mixup-prob": (0.0, 0.25, 0.5, 0.75, 1.0),
    "cutmix": (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0),
    "drop": (0.0, 0.1, 0.2, 0.3, 0.4),
    "smoothing": (0.0, 0.05, 0.1),
    "clip-grad": (0, 1, 10),
    "amp": (False, True),
    "opt": ("sgd", "momentum", "adam", "adamw", "adamp"),
    "opt-betas": ("0.9 0.999", "0.0 0.99", "0.9 0.99", "0.0 0.999"),
    "lr": (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2),
    "warmup_epochs": (0, 5, 10),
    "warmup-lr": (0.0, 1e-5, 1e-6),
    "weight-decay": (0, 1e-5, 1e-4, 1e-3, 1e-2, 0.1),
    "batch-size": (2, 4, 8, 16, 32, 64, 128, 256, 512),
    "momentum": (0.0, 0.8, 0.9, 0.95, 0.99),
    "sched": ("cosine", "step", "multistep", "plateau"),
    "patience-epochs": (2, 5, 10),
    "decay-rate": (0.1, 0.5),
    "decay-epochs": (10, 20),
    "data-augmentation": ("auto-augment", "random-augment", "trivial-augment", "none"),
    "auto-augment": ("v0", "original"),
    "ra-num-ops": (2, 3),
    "ra-magnitude": (9, 17),
}
CATEGORICAL = {"opt", "opt-betas", "sched", "data-augmentation", "auto-augment", "model"}


def test_quicktune_parameters_exact():
    s = quicktune()
    assert len(s) == 32 and len(s.conditions) == 8
    for name, values in EXPECTED.items():
        assert s[name].values == values, name
        kind = Categorical if name in CATEGORICAL else Ordinal
        assert isinstance(s[name], kind), name
    model = s["model"]
    assert isinstance(model, Categorical) and len(model.values) == 24
    assert len(set(model.values)) == 24
    assert {"beit_large_patch16_512", "volo_d5_512", "dla46x_c", "mobilevit_xxs",
            "xcit_nano_12_p8_384_dist", "tf_efficientnet_b7_ns"} <= set(model.values)
    assert model.meta == {"arch": True}
    for n in ("lr", "weight-decay", "mixup", "cutmix", "smoothing", "drop"):
        assert s[n].meta and s[n].meta.get("mutable"), n


def test_quicktune_conditions():
    s = quicktune()
    for c in s.sample(np.random.default_rng(0), 2000):
        assert ("opt-betas" in c) == (c["opt"] in ("adam", "adamw", "adamp"))
        assert ("momentum" in c) == (c["opt"] == "momentum")
        assert ("patience-epochs" in c) == (c["sched"] == "plateau")
        assert ("decay-rate" in c) == (c["sched"] in ("step", "multistep"))
        assert ("decay-epochs" in c) == (c["sched"] in ("step", "multistep"))
        assert ("auto-augment" in c) == (c["data-augmentation"] == "auto-augment")
        assert ("ra-num-ops" in c) == (c["data-augmentation"] == "random-augment")
        assert ("ra-magnitude" in c) == (c["data-augmentation"] == "random-augment")


def test_quicktune_size():
    s = quicktune()
    gated = {"opt", "opt-betas", "momentum", "sched", "patience-epochs", "decay-rate",
             "decay-epochs", "data-augmentation", "auto-augment", "ra-num-ops", "ra-magnitude"}
    free = math.prod(len(v) for k, v in EXPECTED.items() if k not in gated) * 24
    opt = 1 + 5 + 3 * 4            # sgd | momentum x 5 | adam/adamw/adamp x 4 betas
    sched = 1 + 2 * (2 * 2) + 3    # cosine | step/multistep x rate x epochs | plateau x 3
    aug = 2 + 2 * 2 + 1 + 1        # auto x 2 | random x ops x magnitude | trivial | none
    assert s.size() == free * opt * sched * aug
    assert s.size_upper_bound() == math.prod(len(v) for v in EXPECTED.values()) * 24


def test_quicktune_operators_valid():
    s = quicktune()
    rng = np.random.default_rng(1)
    cs = s.sample(rng, 1000)
    for a, b in zip(cs, cs[1:]):
        assert s.is_valid(s.mutate(a, 0.3, rng))
        assert s.is_valid(s.crossover(a, b, rng))
    for nb in s.neighbours(cs[0]):
        s.validate(nb)
    assert s.default()["batch-size"] == 2


def test_quicktune_cpu():
    s = quicktune_cpu()
    assert len(s) == 32
    assert set(s["model"].values) == {"test_resnet", "test_vit", "test_convnext",
                                      "test_efficientnet", "mobilenetv3_small_050", "resnet10t"}
    assert s["batch-size"].values == (16, 32, 64, 128)
    assert set(s.names) == set(quicktune().names)


def test_registry():
    assert {"quicktune", "quicktune_cpu"} <= set(list_spaces())
    assert list_spaces("quick*") == ["quicktune", "quicktune_cpu"]
    assert get_space("QuickTune") == quicktune()
    with pytest.raises(SpaceError, match="unknown space 'quiktune'.*quicktune"):
        get_space("quiktune")


def test_describe_space():
    text = describe_space(quicktune())
    assert "batch-size" in text and "opt-betas | opt in" in text
    assert "size (distinct valid configurations)" in text and "upper bound" in text
    assert "[arch]" in text and "[mutable]" in text
