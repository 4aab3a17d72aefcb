"""Compilation of search spaces to Optuna (define-by-run) and Ray Tune (param_space)."""
from __future__ import annotations

import sys

import numpy as np
import optuna
import pytest

from spaces.compile.optuna import decode_params, optuna_choices, to_optuna
from spaces.compile.tune import (
    INACTIVE, JOINT_KEY, sample_configs, strip_inactive, to_tune,
)
from spaces.core import (
    And, Categorical, Constant, Equals, Float, ForbiddenAnd, ForbiddenEquals, ForbiddenIn,
    ForbiddenPredicate, ForbiddenRelation, GreaterThan, In, Int, LessThan, NotEquals, Or,
    Ordinal, SearchSpace,
)
from spaces.formats import load_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def cond_space() -> SearchSpace:
    """Every parameter type and condition type, nested conditions, tuple choices, forbiddens."""
    params = [
        Float("lr", 1e-5, 1e-1, log=True),
        Float("dropout", 0.0, 0.5, step=0.1),
        Float("shift", 0.05, 0.95, step=0.3),  # grid not on multiples of step
        Int("epochs", 1, 50),
        Int("width", 8, 512, log=True),
        Int("layers", 3, 11, step=2),  # grid not on multiples of step
        Int("even", 2, 12, step=2),
        Categorical("opt", ("sgd", "momentum", "adam", "adamw"), weights=(1, 1, 3, 3)),
        Ordinal("momentum", (0.8, 0.9, 0.99)),
        Categorical("betas", ((0.9, 0.999), (0.0, 0.99))),  # tuples: encoded for Optuna
        Ordinal("size", ("small", "medium", "large")),
        Int("heads", 1, 8),
        Float("gamma", 0.1, 0.9),
        Categorical("flag", (False, True, 1)),  # True and 1 both: encoded for Optuna
        Constant("model", "resnet18"),
        Int("warm", 0, 5),
        Ordinal("beta2", (0.99, 0.999)),  # grandchild: active iff betas active and (0.9, 0.999)
    ]
    conditions = [
        Equals("momentum", "opt", "momentum"),
        In("betas", "opt", ("adam", "adamw")),
        Equals("beta2", "betas", (0.9, 0.999)),
        GreaterThan("heads", "size", "small"),
        LessThan("gamma", "epochs", 30),
        And(NotEquals("warm", "opt", "sgd"), GreaterThan("warm", "epochs", 5)),
        Or(Equals("flag", "opt", "adam"), LessThan("flag", "layers", 7)),
    ]
    forbiddens = [
        ForbiddenAnd(ForbiddenEquals("opt", "adamw"), ForbiddenIn("size", ("large",))),
        ForbiddenRelation("dropout", ">", "gamma"),
        ForbiddenAnd(ForbiddenEquals("beta2", 0.999), ForbiddenIn("momentum", (0.8,))),
    ]
    return SearchSpace(params, conditions, forbiddens, name="cond")


def no_forbidden_space() -> SearchSpace:
    s = cond_space()
    return SearchSpace(list(s.params.values()), s.conditions, (), name="noforb")


def run_optuna(space, n, sampler):
    fn = to_optuna(space)
    study = optuna.create_study(sampler=sampler)
    configs = []
    for _ in range(n):
        trial = study.ask()
        try:
            cfg = fn(trial)
        except optuna.TrialPruned as exc:
            assert "forbidden" in str(exc)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        configs.append(cfg)
        study.tell(trial, float(len(cfg)))
    return study, configs


# ------------------------------------------------------------------------------ optuna
def test_optuna_random_thousands_valid_and_conditional():
    space = cond_space()
    study, configs = run_optuna(space, 2000, optuna.samplers.RandomSampler(seed=0))
    assert len(configs) > 1500
    for cfg in configs:
        space.validate(cfg)
        assert set(cfg) == set(space.active_names(cfg))
    seen = {n for c in configs for n in c}
    assert seen == set(space.params)  # every parameter is reached
    assert any(isinstance(c.get("betas"), tuple) for c in configs)
    # conditional params appear in Optuna's record only when their condition holds
    for t in study.trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        if "momentum" in t.params:
            assert t.params["opt"] == "momentum"
        else:
            assert t.params["opt"] != "momentum"
        assert ("heads" in t.params) == (t.params["size"] > 0)
        cfg = decode_params(space, t.params)
        space.validate(cfg)


def test_optuna_ordinals_are_int_indices():
    space = cond_space()
    study, configs = run_optuna(space, 50, optuna.samplers.RandomSampler(seed=1))
    t = study.trials[0]
    dist = t.distributions["size"]
    assert isinstance(dist, optuna.distributions.IntDistribution)
    assert (dist.low, dist.high, dist.step) == (0, 2, 1)
    assert isinstance(t.params["size"], int)
    for t in study.trials:
        if "momentum" in t.params:
            assert t.params["momentum"] in (0, 1, 2)
    assert all(c["size"] in ("small", "medium", "large") for c in configs)
    d = study.trials[0].distributions
    assert isinstance(d["opt"], optuna.distributions.CategoricalDistribution)
    assert d["lr"].log and d["width"].log and d["dropout"].step == pytest.approx(0.1)
    assert d["layers"].step == 2 and (d["layers"].low, d["layers"].high) == (3, 11)


def test_optuna_tpe_valid():
    space = cond_space()
    _, configs = run_optuna(
        space, 120, optuna.samplers.TPESampler(seed=0, n_startup_trials=20))
    assert configs
    for cfg in configs:
        space.validate(cfg)


def test_optuna_forbidden_prunes_with_reason():
    space = SearchSpace([Categorical("a", ("x", "y")), Categorical("b", ("u", "v"))],
                        forbiddens=[ForbiddenAnd(ForbiddenEquals("a", "y"),
                                                 ForbiddenEquals("b", "v"))])
    fn = to_optuna(space)
    trial = optuna.trial.FixedTrial({"a": "y", "b": "v"})
    with pytest.raises(optuna.TrialPruned, match="forbidden.*a='y'"):
        fn(trial)
    assert fn(optuna.trial.FixedTrial({"a": "y", "b": "u"})) == {"a": "y", "b": "u"}


def test_optuna_choice_encoding():
    assert optuna_choices(("a", 1, None, 2.5)) == (("a", 1, None, 2.5), None)
    enc, dec = optuna_choices(((1, 2), "x"))
    assert enc == ("(1, 2)", "'x'") and dec["(1, 2)"] == (1, 2)
    enc, dec = optuna_choices((False, True, 1))
    assert len(set(enc)) == 3 and dec[enc[2]] == 1 and dec[enc[1]] is True


def test_optuna_quicktune_fixed_trial_returns_values():
    q = load_space("quicktune")
    fn = to_optuna(q)
    cfg = fn(optuna.trial.FixedTrial({**{n: 0 for n in q.params if
                                          type(q[n]).__name__ == "Ordinal"},
                                      **{n: q[n].choices[0] for n in q.params
                                         if type(q[n]).__name__ == "Categorical"}}))
    q.validate(cfg)
    assert cfg["pct-to-freeze"] == q["pct-to-freeze"].sequence[0]


# ------------------------------------------------------------------------------ tune
def test_tune_native_domains_and_bounds():
    from ray.tune.search import sample as ts

    space = no_forbidden_space()
    ps = to_tune(space)
    assert JOINT_KEY not in ps
    assert isinstance(ps["epochs"], ts.Integer)
    assert (ps["epochs"].lower, ps["epochs"].upper) == (1, 51)  # randint upper is exclusive
    assert isinstance(ps["width"].get_sampler(), ts.LogUniform)
    assert ps["width"].upper == 513
    assert isinstance(ps["even"].get_sampler(), ts.Quantized)
    assert (ps["even"].lower, ps["even"].upper) == (2, 12)
    assert isinstance(ps["layers"], ts.Categorical)  # 3..11 step 2 is not on multiples of 2
    assert list(ps["layers"].categories) == [3, 5, 7, 9, 11]
    assert isinstance(ps["lr"].get_sampler(), ts.LogUniform)
    assert isinstance(ps["dropout"].get_sampler(), ts.Quantized)
    assert isinstance(ps["size"], ts.Categorical)
    assert isinstance(ps["opt"], ts.Function)  # weighted categorical
    assert ps["model"] == "resnet18"
    for name in ("momentum", "betas", "beta2", "heads", "gamma", "warm", "flag"):
        assert isinstance(ps[name], ts.Function), name


def test_tune_samples_thousands_valid():
    space = no_forbidden_space()
    configs = sample_configs(to_tune(space), 1500, seed=0)
    assert len(configs) == 1500
    for cfg in configs:
        space.validate(cfg)
    seen = {n for c in configs for n in c}
    assert seen == set(space.params)
    # conditional params appear only when their condition holds
    for c in configs:
        assert ("momentum" in c) == (c["opt"] == "momentum")
        assert ("beta2" in c) == (c.get("betas") == (0.9, 0.999))
        assert ("warm" in c) == (c["opt"] != "sgd" and c["epochs"] > 5)
    # the bounds are reached: inclusive upper bounds map correctly
    assert max(c["epochs"] for c in configs) == 50 and min(c["epochs"] for c in configs) == 1
    assert {c["even"] for c in configs} == {2, 4, 6, 8, 10, 12}
    # weights are honoured: adam/adamw drawn ~3x as often as sgd
    n_sgd = sum(c["opt"] == "sgd" for c in configs)
    n_adam = sum(c["opt"] == "adam" for c in configs)
    assert n_adam > 2 * n_sgd


def test_tune_forbidden_resampled_by_joint_sample_from():
    space = cond_space()
    ps = to_tune(space)
    assert JOINT_KEY in ps
    configs = sample_configs(ps, 1500, seed=1)
    for cfg in configs:
        space.validate(cfg)
    # the forbidden combination could be drawn often without resampling
    assert not any(c["opt"] == "adamw" and c["size"] == "large" for c in configs)
    assert any(c["opt"] == "adamw" for c in configs) and any(c["size"] == "large"
                                                             for c in configs)
    # unconditional params outside the forbidden closure keep native domains
    from ray.tune.search import sample as ts

    assert isinstance(ps["lr"].get_sampler(), ts.LogUniform)


def test_tune_quicktune_and_predicate_forbidden():
    q = load_space("quicktune")
    for cfg in sample_configs(to_tune(q), 500, seed=2):
        q.validate(cfg)
    s = SearchSpace([Int("a", 0, 9), Int("b", 0, 9)],
                    forbiddens=[ForbiddenPredicate(("a", "b"), lambda a, b: a + b > 9, "sum")])
    for cfg in sample_configs(to_tune(s), 300, seed=3):
        assert cfg["a"] + cfg["b"] <= 9


def test_tune_basic_variant_generator_without_ray():
    from ray.tune.registry import register_trainable
    from ray.tune.search import BasicVariantGenerator

    def trainable(config):  # never run
        return None

    register_trainable("archtune_compile_test", trainable)
    space = cond_space()
    gen = BasicVariantGenerator(random_state=0)
    gen.add_configurations({"exp": {"run": "archtune_compile_test", "config": to_tune(space),
                                    "num_samples": 50}})
    n = 0
    while True:
        trial = gen.next_trial()
        if trial is None:
            break
        space.validate(strip_inactive(trial.config))
        n += 1
    assert n == 50


def test_strip_inactive():
    assert strip_inactive({"a": 1, "b": INACTIVE, JOINT_KEY: {"a": 1}}) == {"a": 1}


def test_compile_modules_do_not_import_ray_or_optuna_at_import():
    import subprocess

    code = ("import sys, spaces.compile.tune, spaces.compile.optuna, spaces.formats; "
            "print('ray' in sys.modules, 'optuna' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False", "False"]


def test_tune_sample_from_is_reproducible_with_numpy_seed():
    space = no_forbidden_space()
    a = sample_configs(to_tune(space), 20, seed=7)
    b = sample_configs(to_tune(space), 20, seed=7)
    assert a == b
    assert np.isfinite([c["lr"] for c in a]).all()
