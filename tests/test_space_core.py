"""Core search-space behaviour: parameters, conditions, forbiddens, SearchSpace operations."""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from spaces import (
    And, Categorical, Constant, Equals, Float, ForbiddenAnd, ForbiddenEquals, ForbiddenIn,
    ForbiddenPredicate, ForbiddenRelation, GreaterThan, In, Int, LessThan, NotEquals, Or, Ordinal,
    Param, SearchSpace, SpaceError,
)


def mixed_space() -> SearchSpace:
    return SearchSpace(
        [
            Categorical("opt", ("sgd", "adam", "rmsprop"), weights=(1, 2, 1)),
            Float("lr", 1e-4, 1e-1, log=True),
            Ordinal("beta", (0.9, 0.99, 0.999)),
            Int("depth", 1, 8),
            Int("width", 16, 64, step=16),
            Float("drop", 0.0, 0.5, step=0.1),
            Categorical("act", ("relu", "gelu")),
            Ordinal("gelu_approx", ("none", "tanh")),
            Int("extra", 1, 100, log=True),
            Constant("seed", 3),
        ],
        conditions=[
            In("beta", "opt", ("adam", "rmsprop")),
            And(GreaterThan("width", "depth", 2), LessThan("width", "depth", 8)),
            Equals("gelu_approx", "act", "gelu"),
            Or(Equals("extra", "beta", 0.99), Equals("extra", "beta", 0.999)),
            NotEquals("drop", "opt", "sgd"),
        ],
        forbiddens=[
            ForbiddenAnd(ForbiddenEquals("opt", "adam"), ForbiddenIn("depth", (7, 8))),
            ForbiddenRelation("width", "<", "depth"),
            ForbiddenPredicate(("lr", "depth"), lambda lr, d: lr > 0.09 and d == 1, "big_lr_shallow"),
        ],
        name="mixed",
    )


def discrete_space() -> SearchSpace:
    return SearchSpace(
        [
            Categorical("a", ("x", "y", "z")),
            Ordinal("b", (1, 2, 3, 4)),
            Categorical("c", (True, False)),
            Int("d", 0, 3),
            Ordinal("e", ("lo", "hi")),
            Categorical("f", ("p", "q")),
            Int("g", 1, 5),
            Constant("k", "const"),
        ],
        conditions=[
            Equals("c", "a", "y"),
            GreaterThan("d", "b", 2),
            Equals("e", "c", True),
            In("g", "a", ("x", "z")),
        ],
        forbiddens=[ForbiddenAnd(ForbiddenEquals("a", "z"), ForbiddenEquals("g", 5)),
                    ForbiddenRelation("d", ">=", "b")],
        name="disc",
    )


# ---- parameters -------------------------------------------------------------------------------

def test_param_defaults_and_domains():
    assert Categorical("a", ("x", "y")).default == "x"
    assert Ordinal("o", (3, 1, 2)).default == 3
    assert Int("i", 0, 10).default == 5
    assert Int("i", 1, 100, log=True).default == 10
    assert Float("f", 0.0, 1.0).default == 0.5
    assert math.isclose(Float("f", 1e-4, 1e-2, log=True).default, 1e-3)
    assert Float("f", 0.0, 1.0, step=0.25).values == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert Int("w", 16, 64, step=16).values == (16, 32, 48, 64)
    assert Constant("c", 1).default == 1 and Constant("c", 1).cardinality == 1
    assert Float("f", 0.0, 1.0).cardinality == math.inf and not Float("f", 0.0, 1.0).is_discrete
    assert Int("i", 0, 10).contains(10) and not Int("i", 0, 10).contains(11)
    assert not Int("i", 0, 10).contains(True)
    c = Categorical("b", (False, True))
    assert c.contains(True) and not c.contains(1)


@pytest.mark.parametrize("ctor,words", [
    (lambda: Int("n", 5, 1), ["'n'", "low=5", "high=1"]),
    (lambda: Int("n", 0, 10, log=True), ["'n'", "log", "low=0"]),
    (lambda: Float("f", 1.0, 2.0, log=True, step=0.5), ["'f'", "log", "step"]),
    (lambda: Float("f", 0.0, 1.0, step=0.3), ["'f'", "multiple", "step"]),
    (lambda: Categorical("c", ()), ["'c'", "empty"]),
    (lambda: Categorical("c", ("a", "a")), ["'c'", "duplicates"]),
    (lambda: Categorical("c", ("a", "b"), weights=(1,)), ["'c'", "weights"]),
    (lambda: Categorical("c", ("a", "b"), weights=(-1, 2)), ["'c'", "weights"]),
    (lambda: Int("n", 0.5, 3), ["'n'", "integer"]),
])
def test_param_rejects_bad_construction(ctor, words):
    with pytest.raises(SpaceError) as e:
        ctor()
    for w in words:
        assert w in str(e.value)


def test_default_outside_domain_names_param_and_rule():
    with pytest.raises(SpaceError, match=r"'lr'.*default 2\.0.*outside \[0\.0, 1\.0\]"):
        Float("lr", 0.0, 1.0, default=2.0)
    with pytest.raises(SpaceError, match=r"'opt'.*default 'x'.*not one of the choices"):
        Categorical("opt", ("sgd", "adam"), default="x")


def test_params_are_frozen():
    p = Int("n", 0, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.low = 2  # type: ignore[misc]


# ---- space construction errors ------------------------------------------------------------------

def test_unknown_type_from_dict():
    with pytest.raises(SpaceError) as e:
        Param.from_dict({"type": "gaussian", "name": "lr"})
    msg = str(e.value)
    assert "'lr'" in msg and "unknown type 'gaussian'" in msg and "categorical" in msg
    with pytest.raises(SpaceError, match="'lr'.*unknown type"):
        SearchSpace.from_dict({"params": [{"type": "gaussian", "name": "lr"}]})


def test_condition_on_missing_parent():
    with pytest.raises(SpaceError) as e:
        SearchSpace([Ordinal("beta", (0.9, 0.99))], [Equals("beta", "opt", "adam")])
    assert "'opt'" in str(e.value) and "'beta'" in str(e.value) and "missing" in str(e.value)


def test_cyclic_conditions():
    with pytest.raises(SpaceError) as e:
        SearchSpace(
            [Categorical("a", ("x", "y")), Categorical("b", ("x", "y")), Categorical("c", ("x",))],
            [Equals("a", "b", "x"), Equals("b", "a", "x")],
        )
    msg = str(e.value)
    assert "cyclic" in msg and "'a'" in msg and "'b'" in msg and "'c'" not in msg


def test_condition_child_equals_parent():
    with pytest.raises(SpaceError, match="'a'.*own parent"):
        SearchSpace([Categorical("a", ("x", "y"))], [Equals("a", "a", "x")])


def test_condition_value_outside_choices():
    with pytest.raises(SpaceError) as e:
        SearchSpace([Categorical("opt", ("sgd", "adam")), Float("m", 0.0, 1.0)],
                    [Equals("m", "opt", "momentum")])
    msg = str(e.value)
    assert "'momentum'" in msg and "'opt'" in msg and "domain" in msg


def test_greater_than_needs_orderable_parent():
    with pytest.raises(SpaceError, match="orderable parent.*'opt' is categorical"):
        SearchSpace([Categorical("opt", ("sgd", "adam")), Float("m", 0.0, 1.0)],
                    [GreaterThan("m", "opt", "sgd")])


def test_default_violating_forbidden_clause():
    with pytest.raises(SpaceError) as e:
        SearchSpace([Categorical("opt", ("sgd", "adam")), Int("bs", 1, 4, default=1)],
                    forbiddens=[ForbiddenAnd(ForbiddenEquals("opt", "sgd"), ForbiddenEquals("bs", 1))])
    msg = str(e.value)
    assert "default configuration violates forbidden clause" in msg
    assert "opt='sgd'" in msg and "bs=1" in msg


def test_duplicate_param_name():
    with pytest.raises(SpaceError, match="'a' is defined twice"):
        SearchSpace([Int("a", 0, 1), Int("a", 0, 2)])


# ---- validate -------------------------------------------------------------------------------------

def test_validate_lists_every_violation():
    s = mixed_space()
    cfg = s.default()
    bad = dict(cfg)
    bad["nope"] = 1                 # unknown
    bad["opt"] = "sgd"              # beta becomes inactive
    bad["beta"] = 0.9               # inactive key present
    bad["act"] = "gelu"             # gelu_approx becomes active but missing
    bad.pop("gelu_approx", None)
    bad["depth"] = 99               # outside domain
    with pytest.raises(SpaceError) as e:
        s.validate(bad)
    v = e.value.violations
    text = "\n".join(v)
    assert "unknown parameter 'nope'" in text
    assert "inactive parameter 'beta' is present" in text
    assert "active parameter 'gelu_approx' is missing" in text
    assert "value 99 of parameter 'depth' is outside its domain" in text
    assert len(v) >= 4


def test_value_outside_choices_message():
    s = mixed_space()
    cfg = s.default()
    cfg["opt"] = "lion"
    with pytest.raises(SpaceError) as e:
        s.validate(cfg)
    assert "value 'lion' of parameter 'opt' is outside its domain ['sgd', 'adam', 'rmsprop']" in str(e.value)


def test_validate_forbidden_combination():
    s = discrete_space()
    cfg = {"a": "z", "b": 1, "f": "p", "g": 5, "k": "const"}
    with pytest.raises(SpaceError, match="forbidden combination"):
        s.validate(cfg)
    cfg["g"] = 4
    s.validate(cfg)


# ---- properties over many samples -------------------------------------------------------------------

@pytest.mark.parametrize("make", [mixed_space, discrete_space])
def test_samples_mutations_crossovers_validate(make):
    s = make()
    rng = np.random.default_rng(0)
    batch = s.sample(rng, 1500)
    assert len(batch) == 1500
    for c in batch:
        s.validate(c)
        assert list(c) == [n for n in s.names if n in c]
    for i in range(1500):
        c = s.sample(rng)
        assert s.is_valid(c)
        m = s.mutate(c, 0.5, rng)
        assert s.is_valid(m), s.violations(m)
        x = s.crossover(c, batch[i], rng)
        assert s.is_valid(x), s.violations(x)
    for c in batch[:100]:
        for nb in s.neighbours(c):
            assert s.is_valid(nb), s.violations(nb)


def test_sampling_is_seeded_and_covers_conditions():
    s = mixed_space()
    assert s.sample(7) == s.sample(7)
    assert s.sample(np.random.default_rng(3), 5) == s.sample(np.random.default_rng(3), 5)
    batch = s.sample(1, 3000)
    w = SearchSpace([Categorical("opt", ("sgd", "adam", "rmsprop"), weights=(1, 2, 1))])
    opts = [c["opt"] for c in w.sample(1, 3000)]
    assert abs(opts.count("adam") / 3000 - 0.5) < 0.05  # weights 1:2:1
    opts = [w.sample(np.random.default_rng(i))["opt"] for i in range(2000)]
    assert abs(opts.count("adam") / 2000 - 0.5) < 0.05
    assert any("beta" in c for c in batch) and any("beta" not in c for c in batch)
    for c in batch:
        assert ("beta" in c) == (c["opt"] in ("adam", "rmsprop"))
        assert ("extra" in c) == (c.get("beta") in (0.99, 0.999))


def test_single_sample_distribution_matches_batch():
    s = discrete_space()
    rng = np.random.default_rng(0)
    single = [s.sample(rng) for _ in range(2000)]
    batch = s.sample(rng, 2000)
    f1 = sum(c["a"] == "y" for c in single) / 2000
    f2 = sum(c["a"] == "y" for c in batch) / 2000
    assert abs(f1 - f2) < 0.06


def test_forbidden_max_tries_error():
    s = SearchSpace([Int("a", 0, 10**7, default=0)],
                    forbiddens=[ForbiddenPredicate(("a",), lambda a: a > 0, "positive")])
    with pytest.raises(SpaceError, match="no valid configuration found"):
        s.sample(0)
    with pytest.raises(SpaceError, match="no valid configuration found"):
        s.sample(0, n=20)


def test_batch_sampling_with_heavy_rejection_is_complete_and_seeded():
    # ~95 % of rows are forbidden; the batch still returns exactly n valid, distinct-seeded rows
    s = SearchSpace([Int("a", 0, 99, default=0), Categorical("b", ("x", "y")),
                     Float("c", 0.0, 1.0)],
                    [Equals("c", "b", "y")],
                    [ForbiddenIn("a", tuple(range(5, 100)))])
    batch = s.sample(3, n=500)
    assert len(batch) == 500 and all(s.is_valid(c) for c in batch)
    assert {c["a"] for c in batch} == set(range(5))
    assert batch == s.sample(3, n=500)
    assert s.sample(3, n=7) == s.sample(3, n=7)


def test_user_input_errors_are_archtune_errors():
    from spaces import ArchtuneError, ArchConfig, ArchTree, choice  # noqa: F401

    with pytest.raises(ArchtuneError, match=r"'lr'.*low=1\.0 must be <= high=0\.0"):
        Float("lr", 1, 0)
    try:
        Float("lr", 1, 0)
    except ArchtuneError as exc:  # the one family every layer's errors share
        assert isinstance(exc, SpaceError) and isinstance(exc, ValueError)
    bad = [
        (lambda: Int("n", 1, 5, step=0), "step=0 must be >= 1"),
        (lambda: In("c", "p", ()), "must not be empty"),
        (lambda: Or(Equals("c", "p", 1)), "at least two conditions"),
        (lambda: And(Equals("c", "p", 1), Equals("d", "p", 1)), "share one child"),
        (lambda: ForbiddenRelation("a", "<>", "b"), "op '<>'"),
        (lambda: ForbiddenAnd(), "one or more"),
        (lambda: Param.from_dict({"type": "floaty", "name": "x"}), "unknown type 'floaty'"),
        (lambda: ArchTree({"a": choice([])}), "values must not be empty"),
    ]
    for make, match in bad:
        with pytest.raises(ArchtuneError, match=match):
            make()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), junk=st.integers(-5, 5))
def test_canonical_and_config_id_ignore_inactive(seed, junk):
    s = mixed_space()
    c = s.sample(seed)
    noisy = dict(c)
    for n in s.names:
        if n not in c:
            noisy[n] = junk
    assert s.canonical(noisy) == s.canonical(c)
    assert s.config_id(noisy) == s.config_id(c)
    # an active value change changes the id
    other = dict(c)
    other["act"] = "gelu" if c["act"] == "relu" else "relu"
    assert s.config_id(other) != s.config_id(c)


def test_config_id_stable_across_processes_and_types():
    s = mixed_space()
    c = s.default()
    c2 = {k: (np.float64(v) if isinstance(v, float) else v) for k, v in c.items()}
    assert s.config_id(c) == s.config_id(c2)
    code = (
        "import sys; sys.path.insert(0, '.');"
        "from tests.test_space_core import mixed_space;"
        "s = mixed_space(); print(s.config_id(s.default()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip() == s.config_id(c)
    assert len(s.config_id(c)) == 40


def test_canonical_normalises_types_and_order():
    s = mixed_space()
    c = s.sample(4)
    noisy = {k: (np.int64(v) if isinstance(v, int) and not isinstance(v, bool) else v)
             for k, v in reversed(list(c.items()))}
    if "width" in noisy:
        noisy["width"] = float(noisy["width"])
    canon = s.canonical(noisy)
    assert canon == c and list(canon) == list(c)
    assert all(type(canon[k]) is int for k in ("depth",) if k in canon)
    assert "width" not in canon or type(canon["width"]) is int


def test_validate_reports_forbidden_with_other_violations():
    s = discrete_space()
    cfg = {"a": "z", "b": 1, "f": "p", "g": 5, "k": "const", "zz": 0}
    with pytest.raises(SpaceError) as e:
        s.validate(cfg)
    text = "\n".join(e.value.violations)
    assert "unknown parameter 'zz'" in text and "forbidden combination" in text


def test_config_id_used_subset():
    s = discrete_space()
    a = {"a": "x", "b": 1, "f": "p", "g": 1, "k": "const"}
    b = dict(a, f="q")
    assert s.config_id(a) != s.config_id(b)
    assert s.config_id(a, used={"a", "b"}) == s.config_id(b, used={"a", "b"})


# ---- size and enumeration ---------------------------------------------------------------------------

def brute_force_count(s: SearchSpace) -> int:
    seen = set()
    names = list(s.params)
    for combo in itertools.product(*(s.params[n].values for n in names)):
        cfg = s.canonical(dict(zip(names, combo)))
        if s.is_valid(cfg):
            seen.add(json.dumps(cfg, sort_keys=True))
    return len(seen)


def test_size_matches_brute_force_and_iter_configs():
    s = discrete_space()
    expected = brute_force_count(s)
    assert s.size() == expected
    configs = list(s.iter_configs())
    assert len(configs) == expected
    assert len({s.config_id(c) for c in configs}) == expected
    assert all(s.is_valid(c) for c in configs)
    assert s.size_upper_bound() == 3 * 4 * 2 * 4 * 2 * 2 * 5 * 1


def test_size_continuous_and_big_space_fast():
    assert mixed_space().size() == math.inf
    assert mixed_space().size_upper_bound() == math.inf
    # 60 independent blocks each gated by its own switch: enumeration would be 4**60
    params, conds = [], []
    for i in range(60):
        params += [Categorical(f"on{i}", (False, True)), Ordinal(f"v{i}", (1, 2, 3))]
        conds.append(Equals(f"v{i}", f"on{i}", True))
    s = SearchSpace(params, conds)
    assert s.size() == 4 ** 60


def test_with_fixed_and_discrete_values():
    s = discrete_space()
    f = s.with_fixed({"a": "y"})
    assert isinstance(f["a"], Constant)
    assert all(c["a"] == "y" for c in f.sample(0, 50))
    assert f.size() == sum(1 for c in s.iter_configs() if c["a"] == "y")
    with pytest.raises(SpaceError, match="'a'.*'w'"):
        s.with_fixed({"a": "w"})
    with pytest.raises(SpaceError, match="unknown parameter 'zz'"):
        s.with_fixed({"zz": 1})
    assert s.discrete_values("b") == (1, 2, 3, 4)
    with pytest.raises(SpaceError):
        mixed_space().discrete_values("lr")


def test_encode_fixed_length_with_nan_for_inactive():
    s = mixed_space()
    names = s.encoding_names
    assert "opt=adam" in names and "beta" in names and "seed" not in names
    vecs = [s.encode(c) for c in s.sample(0, 50)]
    assert {v.shape for v in vecs} == {(len(names),)}
    for c, v in zip(s.sample(0, 50), vecs):
        i = names.index("beta")
        assert math.isnan(v[i]) == ("beta" not in c)
        oh = [v[names.index(f"opt={o}")] for o in ("sgd", "adam", "rmsprop")]
        assert sorted(oh) == [0.0, 0.0, 1.0]


def test_round_trip_dict():
    s = discrete_space()
    d = json.loads(json.dumps(s.to_dict()))
    s2 = SearchSpace.from_dict(d)
    assert s2 == s
    assert s2.size() == s.size()
    with pytest.raises(SpaceError, match="cannot be serialised"):
        mixed_space().to_dict()


def test_active_names_and_conditions_for():
    s = mixed_space()
    c = {"opt": "sgd", "act": "relu"}
    assert not s.is_active("beta", c)
    assert s.is_active("beta", {"opt": "adam"})
    assert len(s.conditions_for("width")) == 1
    assert s.names.index("opt") < s.names.index("beta") < s.names.index("extra")


def test_import_spaces_pulls_no_torch_or_ray():
    code = ("import sys, spaces, spaces.library, spaces.tree, spaces.describe;"
            "spaces.library.list_spaces();"
            "bad=[m for m in ('torch','ray','timm') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
