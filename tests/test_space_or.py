"""OR conditions over conditional parents, as ConfigSpace 1.x defines them (REFERENCE.md s.5):
a simple condition on an inactive parent is false, but an OR is active if ANY disjunct holds.

The space of the reference example, ``x | a != 'k' || b == 'on'`` with ``b`` active only for
``a == 'k'``: ``x`` is active for every ``a != 'k'``, and for ``a == 'k'`` iff ``b == 'on'``.
Every component that decides activity is checked on it: validation, single and batch sampling,
exact counting, the variation operators, the Optuna and Tune compilers and the ConfigSpace
writer and reader.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from spaces import Categorical, Equals, Int, NotEquals, Or, SearchSpace
from spaces.formats import configspace


def reference_space() -> SearchSpace:
    return SearchSpace(
        [Categorical("a", ("k", "m", "n")), Categorical("b", ("on", "off")), Int("x", 0, 2)],
        [Equals("b", "a", "k"), Or(NotEquals("x", "a", "k"), Equals("x", "b", "on"))],
        name="or_ref")


def x_should_be_active(cfg: dict) -> bool:
    return cfg["a"] != "k" or cfg.get("b") == "on"


def test_validation_follows_or_semantics():
    s = reference_space()
    assert s.is_valid({"a": "m", "x": 1})            # b inactive, a != 'k' holds
    assert s.is_valid({"a": "k", "b": "on", "x": 0})
    assert s.is_valid({"a": "k", "b": "off"})
    assert not s.is_valid({"a": "m"})                # x is active: missing
    assert not s.is_valid({"a": "k", "b": "off", "x": 1})  # x is inactive: present
    assert any("active parameter 'x' is missing" in v for v in s.violations({"a": "n"}))
    assert s.active_names({"a": "m", "b": "on", "x": 2}) == ["a", "x"]
    assert s.is_active("x", {"a": "n"}) and not s.is_active("x", {"a": "k", "b": "off"})


def test_single_and_batch_sampling_follow_or_semantics():
    s = reference_space()
    single = [s.sample(np.random.default_rng(i)) for i in range(300)]
    batch = s.sample(0, n=600)
    for cfg in single + batch:
        assert ("x" in cfg) == x_should_be_active(cfg), cfg
        assert ("b" in cfg) == (cfg["a"] == "k")
        assert s.is_valid(cfg)
    seen = {(c["a"], c.get("b"), "x" in c) for c in batch}
    assert seen == {("k", "on", True), ("k", "off", False), ("m", None, True), ("n", None, True)}


def test_size_and_enumeration_count_or_activity():
    s = reference_space()
    # a = m or n: x free (3 each); a = k: b = on -> 3 values of x, b = off -> x inactive
    assert s.size() == 3 + 3 + 3 + 1
    configs = list(s.iter_configs())
    assert len(configs) == 10 and all(s.is_valid(c) for c in configs)
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == 10


def test_variation_operators_keep_or_activity():
    s = reference_space()
    rng = np.random.default_rng(1)
    configs = s.sample(rng, n=50)
    for a, b in zip(configs, configs[1:]):
        for cfg in [s.mutate(a, 0.7, rng), s.crossover(a, b, rng), *s.neighbours(a, rng)]:
            assert s.is_valid(cfg) and ("x" in cfg) == x_should_be_active(cfg), cfg


def test_optuna_and_tune_compilers_follow_or_semantics():
    import optuna

    from spaces.compile.optuna import to_optuna
    from spaces.compile.tune import sample_configs, to_tune

    s = reference_space()
    tuned = sample_configs(to_tune(s), 120, seed=2)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    fn = to_optuna(s)
    suggested = []
    for _ in range(120):
        trial = study.ask()
        suggested.append(fn(trial))
        study.tell(trial, 0.0)
    for configs in (tuned, suggested):
        assert all(s.is_valid(c) and ("x" in c) == x_should_be_active(c) for c in configs)
        # x is seen both where only the NotEquals disjunct holds and where only b == 'on' does
        assert any(c["a"] != "k" and "x" in c for c in configs)
        assert any(c["a"] == "k" and c["b"] == "on" and "x" in c for c in configs)
        assert any(c["a"] == "k" and c["b"] == "off" and "x" not in c for c in configs)


def test_configspace_reads_the_same_or_space(tmp_path):
    import ConfigSpace as cs_mod

    s = reference_space()
    path = configspace.write(s, tmp_path / "or.json")
    cs = cs_mod.ConfigurationSpace.from_json(path)
    for cfg in s.sample(3, n=100):
        cs_mod.Configuration(cs, values=cfg).check_valid_configuration()
    with pytest.raises(ValueError):  # x set although ConfigSpace deems it inactive
        cs_mod.Configuration(cs, values={"a": "k", "b": "off", "x": 1})
    with pytest.raises(ValueError):  # x missing although the NotEquals disjunct holds
        cs_mod.Configuration(cs, values={"a": "m"})
    assert configspace.read(path) == s


def test_not_equals_over_a_conditional_parent_written_so_configspace_agrees(tmp_path):
    """ConfigSpace 1.x evaluates ``child | parent != v`` as TRUE when the parent is inactive
    while sampling and validating; the writer emits it as ``IN`` over the parent's other values
    (false on an inactive parent in ConfigSpace too), so both libraries accept the same
    configurations."""
    import ConfigSpace as cs_mod

    s = SearchSpace(
        [Categorical("a", ("x", "y")), Categorical("b", ("on", "off", "mid")), Int("c", 0, 3)],
        [Equals("b", "a", "x"), NotEquals("c", "b", "off")])
    d = configspace.to_dict(s)
    cond = next(c for c in d["conditions"] if c["child"] == "c")
    assert cond == {"type": "IN", "child": "c", "parent": "b", "values": ["on", "mid"]}
    cs = cs_mod.ConfigurationSpace.from_serialized_dict(configspace.to_dict(s))
    cs.seed(0)
    for conf in cs.sample_configuration(200):
        cfg = {k: (v.item() if hasattr(v, "item") else v) for k, v in dict(conf).items()}
        assert s.is_valid(cfg), cfg
        assert ("c" in cfg) == (cfg.get("b") in ("on", "mid"))
    for cfg in s.sample(0, n=200):
        cs_mod.Configuration(cs, values=cfg).check_valid_configuration()
    back = configspace.from_dict(d)
    assert all(back.is_valid(c) for c in s.sample(1, n=100))
