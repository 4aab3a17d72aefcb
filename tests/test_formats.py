"""Search-space file formats: native YAML, ConfigSpace JSON/YAML, NNI JSON; load_space."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from spaces.core import (
    And, Categorical, Constant, Equals, Float, ForbiddenAnd, ForbiddenEquals, ForbiddenIn,
    ForbiddenRelation, GreaterThan, In, Int, LessThan, NotEquals, Or, Ordinal, SearchSpace,
)
from spaces.errors import SpaceError
from spaces.formats import configspace, detect_format, load_space, native, nni


def rich_space() -> SearchSpace:
    """Every parameter type, condition type and file-expressible forbidden type."""
    params = [
        Float("lr", 1e-5, 1e-1, default=1e-3, log=True, meta={"mutable": True}),
        Float("dropout", 0.0, 0.5, step=0.1),
        Float("wd", 0.0, 0.1),
        Int("epochs", 1, 50, default=10),
        Int("width", 8, 512, log=True),
        Int("layers", 2, 12, step=2, default=4),
        Categorical("opt", ("sgd", "momentum", "adam", "adamw"), weights=(1, 1, 2, 2)),
        Ordinal("momentum", (0.8, 0.9, 0.99), default=0.9),
        Categorical("betas", ("0.9 0.999", "0.0 0.99")),
        Ordinal("size", ("small", "medium", "large"), default="medium"),
        Int("heads", 1, 8),
        Float("gamma", 0.1, 0.9),
        Categorical("flag", (False, True)),
        Constant("model", "resnet18", meta={"arch": True}),
        Int("warm", 0, 5),
    ]
    conditions = [
        Equals("momentum", "opt", "momentum"),
        In("betas", "opt", ("adam", "adamw")),
        GreaterThan("heads", "size", "small"),
        LessThan("gamma", "epochs", 30),
        And(NotEquals("warm", "opt", "sgd"), GreaterThan("warm", "epochs", 5)),
        Or(Equals("flag", "opt", "adam"), LessThan("flag", "layers", 6)),
    ]
    forbiddens = [
        ForbiddenAnd(ForbiddenEquals("opt", "adamw"), ForbiddenIn("size", ("large",))),
        ForbiddenIn("layers", (12,)),
        ForbiddenRelation("dropout", ">", "gamma"),
        ForbiddenRelation("heads", "!=", "warm"),
        ForbiddenAnd(ForbiddenEquals("flag", True), ForbiddenEquals("model", "resnet18"),
                     ForbiddenIn("epochs", (1, 2))),
    ]
    return SearchSpace(params, conditions, forbiddens, name="rich")


def assert_same_space(a: SearchSpace, b: SearchSpace, meta: bool = True) -> None:
    assert list(a.params) == list(b.params)
    for n in a.params:
        assert a[n] == b[n], n
        assert type(a[n]) is type(b[n]), n
        assert a[n].default == b[n].default, n
        if meta:
            assert (a[n].meta or None) == (b[n].meta or None), n
    assert sorted(map(str, a.conditions)) == sorted(map(str, b.conditions))
    assert sorted(map(str, a.forbiddens)) == sorted(map(str, b.forbiddens))
    assert a == b


# ------------------------------------------------------------------------------ round trips
def test_native_round_trip(tmp_path):
    space = rich_space()
    path = native.write(space, tmp_path / "rich.yaml")
    back = native.read(path)
    assert back.name == "rich"
    assert_same_space(space, back)
    # a second write is byte-identical
    assert native.dumps(back) == path.read_text()


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_configspace_round_trip(tmp_path, suffix):
    space = rich_space()
    path = configspace.write(space, tmp_path / f"rich{suffix}")
    back = configspace.read(path)
    assert_same_space(space, back)
    assert load_space(str(path)) == space


def test_configspace_stepped_params_written_as_ordinal_grid(tmp_path):
    d = configspace.to_dict(rich_space())
    hp = {h["name"]: h for h in d["hyperparameters"]}
    assert hp["layers"]["type"] == "ordinal"
    assert hp["layers"]["sequence"] == [2, 4, 6, 8, 10, 12]
    assert hp["dropout"]["sequence"] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert hp["lr"]["type"] == "uniform_float" and hp["lr"]["log"] is True
    assert hp["opt"]["weights"] == [1.0, 1.0, 2.0, 2.0]
    # warm has two conditions in archtune terms? (one AND) -> one AND entry per child
    children = [c["child"] for c in d["conditions"]]
    assert len(children) == len(set(children))


def test_native_yaml_example_and_shorthands(tmp_path):
    text = """
name: demo
parameters:
  lr: {type: float, low: 1e-5, high: 1e-1, log: true, default: 1e-3}
  opt: [sgd, momentum, adam]
  momentum: {type: ordinal, sequence: [0.8, 0.9, 0.99]}
  amp: {type: bool}
  seed: 7
  bs: {type: int, low: 16, high: 256, step: 16}
conditions:
  - {child: momentum, parent: opt, equals: momentum}
forbidden:
  - all: [{name: opt, equals: adam}, {name: amp, equals: true}]
"""
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    space = load_space(path)
    assert isinstance(space["lr"], Float) and space["lr"].low == 1e-5 and space["lr"].log
    assert space["lr"].default == 1e-3
    assert space["opt"].choices == ("sgd", "momentum", "adam")
    assert space["amp"].choices == (False, True)
    assert space["seed"] == Constant("seed", 7)
    assert space["bs"].step == 16
    assert not space.is_active("momentum", {"opt": "sgd"})
    assert space.is_active("momentum", {"opt": "momentum"})
    assert not space.is_valid({**space.default(), "opt": "adam", "amp": True})


def test_configspace_legacy_keys_and_distributions():
    data = {
        "name": "legacy",
        "json_format_version": 0.2,
        "hyperparameters": [
            {"type": "uniform_float", "name": "a", "lower": 0.0, "upper": 1.0, "default": 0.5,
             "log": False, "q": 0.25},
            {"type": "uniform_int", "name": "b", "lower": 0, "upper": 10, "default": 4,
             "log": False, "q": 2},
            {"type": "categorical", "name": "c", "choices": ["x", "y"], "default": "y",
             "probabilities": [0.25, 0.75]},
            {"type": "normal_float", "name": "n", "mu": 5.0, "sigma": 2.0, "lower": 0.0,
             "upper": 10.0, "default_value": 5.0, "log": False, "meta": None},
            {"type": "beta_int", "name": "g", "alpha": 2.0, "beta": 3.0, "lower": 0,
             "upper": 10, "default_value": 3, "log": False, "meta": {"k": 1}},
            {"type": "constant", "name": "k", "value": "v"},
        ],
        "conditions": [],
        "forbiddens": [],
    }
    space = configspace.from_dict(data)
    assert space["a"].step == 0.25 and space["a"].default == 0.5
    assert space["b"].step == 2 and space["b"].default == 4
    assert space["c"].weights == (0.25, 0.75) and space["c"].default == "y"
    assert isinstance(space["n"], Float) and (space["n"].low, space["n"].high) == (0.0, 10.0)
    assert space["n"].meta["configspace"] == {"type": "normal_float", "mu": 5.0, "sigma": 2.0}
    assert isinstance(space["g"], Int) and space["g"].meta["k"] == 1
    out = {h["name"]: h for h in configspace.to_dict(space)["hyperparameters"]}
    assert out["n"] == data["hyperparameters"][3]
    assert out["g"] == data["hyperparameters"][4]
    assert configspace.from_dict(configspace.to_dict(space)) == space


def test_configspace_yaml_python_tuple_read_safely(tmp_path):
    text = """
conditions: []
forbiddens:
- clauses:
  - name: c
    type: EQUALS
    value: z
  - name: d
    type: IN
    values: !!python/tuple
    - 1
    - 2
  type: AND
format_version: 0.4
hyperparameters:
- {choices: [x, y, z], default_value: x, meta: null, name: c, type: categorical, weights: null}
- {default_value: 1, meta: null, name: d, sequence: [1, 2, 4], type: ordinal}
name: probe
python_module_version: 1.2.0
"""
    path = tmp_path / "probe.yaml"
    path.write_text(text)
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(text)  # the plain safe loader refuses the tag...
    space = load_space(path)  # ...ours reads it without an unsafe loader
    assert detect_format(path) == "configspace"
    (f,) = space.forbiddens
    assert str(f) == str(ForbiddenAnd(ForbiddenEquals("c", "z"), ForbiddenIn("d", (1, 2))))
    assert not space.is_valid({"c": "z", "d": 2})
    assert space.is_valid({"c": "z", "d": 4})


def test_configspace_or_clause_and_legacy_relation_forbiddens():
    data = {
        "hyperparameters": [
            {"type": "uniform_int", "name": "a", "lower": 0, "upper": 9, "default_value": 5},
            {"type": "uniform_int", "name": "b", "lower": 0, "upper": 9, "default_value": 5},
            {"type": "uniform_float", "name": "x", "lower": 0.0, "upper": 1.0,
             "default_value": 0.5},
        ],
        "forbiddens": [
            {"type": "OR", "clauses": [{"type": "EQUALS", "name": "a", "value": 0},
                                       {"type": "EQUALS", "name": "b", "value": 0}]},
            {"type": "RELATION", "lambda": "LT", "left": "a", "right": "b"},
            {"type": "CLAUSE_GT", "name": "a", "value": 7},
            {"type": "CLAUSE_LE", "name": "x", "value": 0.1},
        ],
    }
    space = configspace.from_dict(data)
    assert not space.is_valid({"a": 0, "b": 0, "x": 0.5})
    assert not space.is_valid({"a": 3, "b": 0, "x": 0.5})
    assert not space.is_valid({"a": 3, "b": 4, "x": 0.5})  # a < b
    assert not space.is_valid({"a": 8, "b": 4, "x": 0.5})  # a > 7
    assert not space.is_valid({"a": 5, "b": 4, "x": 0.05})  # x <= 0.1
    assert space.is_valid({"a": 5, "b": 4, "x": 0.5})
    back = configspace.from_dict(json.loads(json.dumps(configspace.to_dict(space))))
    for cfg in space.sample(0, n=200):
        assert back.is_valid(cfg)
    assert back == space


NNI_SPACE = {
    "lr": {"_type": "loguniform", "_value": [1e-5, 0.1]},
    "bs": {"_type": "choice", "_value": [16, 32, 64]},
    "layers": {"_type": "randint", "_value": [1, 5]},
    "drop": {"_type": "uniform", "_value": [0.0, 0.5]},
    "width": {"_type": "quniform", "_value": [16, 128, 16]},
    "frac": {"_type": "quniform", "_value": [0.0, 1.0, 0.25]},
    "decay": {"_type": "qloguniform", "_value": [1e-4, 1e-1, 1e-4]},
    "units": {"_type": "qloguniform", "_value": [1, 1024, 1]},
    "shift": {"_type": "normal", "_value": [0.0, 1.0]},
    "qshift": {"_type": "qnormal", "_value": [0.0, 1.0, 0.5]},
    "scale": {"_type": "lognormal", "_value": [0.0, 0.5]},
    "layer0": {"_type": "choice", "_value": [
        {"_name": "Empty"},
        {"_name": "Conv", "kernel_size": {"_type": "choice", "_value": [1, 3, 5]},
         "act": {"_type": "choice", "_value": [
             {"_name": "relu"},
             {"_name": "leaky", "slope": {"_type": "uniform", "_value": [0.01, 0.3]}}]}},
        {"_name": "Pool", "pooling_type": {"_type": "choice", "_value": ["max", "avg"]}},
    ]},
}


def test_nni_read_types_and_nested_names(tmp_path):
    path = tmp_path / "search_space.json"
    path.write_text(json.dumps(NNI_SPACE))
    assert detect_format(path) == "nni"
    space = load_space(str(path))
    assert space["layers"] == Int("layers", 1, 4)  # randint upper bound is exclusive
    assert space["width"] == Int("width", 16, 128, step=16)
    assert space["frac"] == Float("frac", 0.0, 1.0, step=0.25)
    assert space["units"] == Int("units", 1, 1024, log=True)
    assert space["decay"].log and space["decay"].meta["nni"]["_type"] == "qloguniform"
    assert (space["shift"].low, space["shift"].high) == (-4.0, 4.0)
    assert space["qshift"].step == 0.5
    assert math.isclose(space["scale"].high, math.exp(2.0)) and space["scale"].log
    assert space["layer0"].choices == ("Empty", "Conv", "Pool")
    assert "layer0.Conv.kernel_size" in space and "layer0.Pool.pooling_type" in space
    assert "layer0.Conv.act.leaky.slope" in space
    cfg = {**space.default(), "layer0": "Pool"}
    active = set(space.active_names(cfg))
    assert "layer0.Pool.pooling_type" in active and "layer0.Conv.kernel_size" not in active
    cfg = {"layer0": "Conv", "layer0.Conv.act": "leaky"}
    assert space.is_active("layer0.Conv.act.leaky.slope", cfg)
    assert not space.is_active("layer0.Conv.act.leaky.slope", {"layer0": "Pool"})
    for c in space.sample(1, n=300):
        if c["layer0"] != "Conv":
            assert not any(k.startswith("layer0.Conv.") for k in c)


def test_nni_round_trip(tmp_path):
    space = nni.from_dict(NNI_SPACE)
    path = nni.write(space, tmp_path / "out.json")
    assert json.loads(path.read_text()) == NNI_SPACE
    back = nni.read(path)
    assert_same_space(space, back)


def test_nni_writes_plain_space_and_refuses_what_it_cannot_express(tmp_path):
    space = SearchSpace([Int("a", 1, 4), Float("b", 0.0, 1.0), Ordinal("c", (1, 2, 3)),
                         Float("d", 1e-3, 1.0, log=True), Constant("e", "z")])
    back = nni.loads(nni.dumps(space))
    assert back["a"] == space["a"] and back["b"] == space["b"] and back["d"] == space["d"]
    assert back["c"].values == (1, 2, 3) and back["e"] == space["e"]
    with pytest.raises(SpaceError, match="forbidden"):
        nni.write(rich_space(), tmp_path / "x.json")
    s2 = SearchSpace([Int("a", 1, 4), Int("b", 1, 3)], [GreaterThan("b", "a", 2)])
    with pytest.raises(SpaceError, match="'b'"):
        nni.dumps(s2)


NNI_BATCH_SPACE = {  # NNI's batch-tuner style: a choice over whole configurations
    "combine_params": {"_type": "choice", "_value": [
        {"optimizer": "Adam", "learning_rate": 0.00001},
        {"optimizer": "Adam", "learning_rate": 0.0001},
        {"optimizer": "SGD", "learning_rate": 0.01, "betas": [0.9, 0.99]},
    ]},
    "mixed": {"_type": "choice", "_value": [{"_name": "a", "x": 1}, "b"]},
}


def test_nni_choice_over_mappings_is_a_categorical_of_those_values(tmp_path):
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(NNI_BATCH_SPACE))
    space = load_space(str(path))
    assert list(space.params) == ["combine_params", "mixed"]  # no nested parameters
    p = space["combine_params"]
    assert isinstance(p, Categorical) and p.cardinality == 3
    assert p.choices[2] == {"optimizer": "SGD", "learning_rate": 0.01, "betas": (0.9, 0.99)}
    # NNI nests only when every entry has '_name': here the mapping is a plain value
    assert space["mixed"].choices == ({"_name": "a", "x": 1}, "b")
    seen = set()
    for cfg in space.sample(0, n=60):
        v = cfg["combine_params"]
        assert v in [dict(c) for c in p.choices]
        seen.add(v["learning_rate"])
        # a configuration read back from JSON (plain dicts and lists) is still valid
        assert space.is_valid(json.loads(json.dumps(cfg)))
    assert seen == {0.00001, 0.0001, 0.01}
    with pytest.raises(TypeError):
        cfg["combine_params"]["optimizer"] = "x"
    assert not space.is_valid({"combine_params": {"optimizer": "Adam"}, "mixed": "b"})
    assert json.loads(nni.dumps(space)) == NNI_BATCH_SPACE


NNI_CLASSIC_NAS_SPACE = {
    "first_conv": {"_type": "layer_choice", "_value": ["conv5x5", "conv3x3", "maxpool"]},
    "skip": {"_type": "input_choice", "_value": {"candidates": ["in1", "in2", "in3", "in4"],
                                                  "n_chosen": 2}},
    "optional": {"_type": "input_choice", "_value": {"candidates": ["", ""],
                                                      "n_chosen": [0, 1]}},
    "any": {"_type": "input_choice", "_value": {"candidates": ["a", "b", "c"], "n_chosen": None}},
}


def test_nni_classic_nas_layer_and_input_choice(tmp_path):
    path = tmp_path / "search_space.json"
    path.write_text(json.dumps(NNI_CLASSIC_NAS_SPACE))
    assert detect_format(path) == "nni"
    space = load_space(str(path))
    assert space["first_conv"].choices == ("conv5x5", "conv3x3", "maxpool")
    # n-of-k: every 2-subset of the 4 candidates, in candidate order
    assert space["skip"].choices == (("in1", "in2"), ("in1", "in3"), ("in1", "in4"),
                                     ("in2", "in3"), ("in2", "in4"), ("in3", "in4"))
    # repeated keys: subsets of candidate indices; 0 or 1 chosen
    assert space["optional"].choices == ((), (0,), (1,))
    assert space["any"].cardinality == 8  # null: any number, the empty subset included
    assert space.size() == 3 * 6 * 3 * 8
    skips = set()
    for cfg in space.sample(1, n=200):
        assert len(cfg["skip"]) == 2 and set(cfg["skip"]) <= {"in1", "in2", "in3", "in4"}
        skips.add(cfg["skip"])
        assert space.is_valid(json.loads(json.dumps(cfg)))  # lists after JSON
    assert len(skips) == 6
    assert json.loads(nni.dumps(space)) == NNI_CLASSIC_NAS_SPACE
    assert_same_space(space, nni.loads(nni.dumps(space)))


@pytest.mark.parametrize("spec, match", [
    ({"_type": "input_choice", "_value": {"candidates": ["a", "b"], "n_chosen": 3}},
     r"n_chosen .* in \[0, 2\], got 3"),
    ({"_type": "input_choice", "_value": ["a", "b"]}, "'candidates'"),
    ({"_type": "input_choice", "_value": {"candidates": [], "n_chosen": 1}}, "non-empty"),
    ({"_type": "layer_choice", "_value": []}, "non-empty list"),
    ({"_type": "factor", "_value": [1, 2]}, "unknown _type 'factor'; valid: choice"),
])
def test_nni_bad_nas_entries_and_non_standard_types(tmp_path, spec, match):
    p = _write(tmp_path, "nni.json", json.dumps({"x": spec}))
    with pytest.raises(SpaceError, match=match) as info:
        load_space(str(p))
    assert "'x'" in str(info.value)


def test_nni_nested_choice_written_with_name_on_every_entry():
    space = SearchSpace([Categorical("op", ("none", "conv")), Int("k", 1, 3)],
                        [Equals("k", "op", "conv")])
    d = nni.to_dict(space)
    assert d == {"op": {"_type": "choice", "_value": [
        {"_name": "none"}, {"_name": "conv", "k": {"_type": "randint", "_value": [1, 4]}}]}}
    back = nni.from_dict(d)
    assert back["op"].meta == {"nni": "nested"}
    assert back.conditions_for("op.conv.k") == [Equals("op.conv.k", "op", "conv")]


def test_load_space_sources(tmp_path):
    q = load_space("quicktune")
    assert "lr" in q and "opt-betas" in q
    assert load_space(q) is q
    d = native.to_dict(q)
    assert load_space(d) == q
    assert load_space(configspace.to_dict(q)) == q
    assert load_space(q.to_dict()) == q
    p = native.write(q, tmp_path / "q.yml")
    assert load_space(p) == q
    with pytest.raises(SpaceError, match="no-such-space"):
        load_space("no-such-space")
    with pytest.raises(SpaceError, match="not found"):
        load_space(str(tmp_path / "missing.yaml"))


# ------------------------------------------------------------------------------ bad input
def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


NATIVE_OK = {"parameters": {"opt": {"type": "categorical", "choices": ["sgd", "adam"]},
                            "mom": {"type": "float", "low": 0.0, "high": 1.0}}}


def _native(tmp_path, mutate):
    d = json.loads(json.dumps(NATIVE_OK))
    mutate(d)
    return _write(tmp_path, "bad.yaml", yaml.safe_dump(d))


CS_OK = {"hyperparameters": [
    {"type": "categorical", "name": "opt", "choices": ["sgd", "adam"], "default_value": "sgd"},
    {"type": "uniform_float", "name": "mom", "lower": 0.0, "upper": 1.0, "default_value": 0.5},
], "conditions": [], "forbiddens": []}


def _cs(tmp_path, mutate, suffix=".json"):
    d = json.loads(json.dumps(CS_OK))
    mutate(d)
    text = json.dumps(d) if suffix == ".json" else yaml.safe_dump(d)
    return _write(tmp_path, f"bad{suffix}", text)


def _assert_rejected(path, *fragments):
    with pytest.raises(SpaceError) as info:
        load_space(str(path))
    msg = str(info.value)
    assert str(path) in msg, msg
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


def test_bad_unknown_type(tmp_path):
    _assert_rejected(_native(tmp_path, lambda d: d["parameters"]["mom"].update(type="floaty")),
            "'mom'", "unknown type 'floaty'")
    _assert_rejected(_cs(tmp_path, lambda d: d["hyperparameters"][1].update(type="uniform_real")),
            "'mom'", "unknown type 'uniform_real'")
    p = _write(tmp_path, "nni.json", json.dumps({"x": {"_type": "choise", "_value": [1]}}))
    _assert_rejected(p, "'x'", "unknown _type 'choise'")


def test_bad_condition_on_missing_parent(tmp_path):
    _assert_rejected(_native(tmp_path, lambda d: d.update(
        conditions=[{"child": "mom", "parent": "optimizer", "equals": "sgd"}])),
        "'mom'", "'optimizer'", "not a parameter")
    _assert_rejected(_cs(tmp_path, lambda d: d.update(conditions=[
        {"type": "EQ", "child": "mom", "parent": "optimizer", "value": "sgd"}]), ".yaml"),
        "'mom'", "'optimizer'", "not a hyperparameter")


def test_bad_cyclic_conditions(tmp_path):
    def cyc(d):
        d["parameters"]["k"] = {"type": "int", "low": 0, "high": 3}
        d["conditions"] = [{"child": "mom", "parent": "k", "greater_than": 0},
                           {"child": "k", "parent": "mom", "less_than": 0.5}]
    _assert_rejected(_native(tmp_path, cyc), "cyclic", "'k'", "'mom'")

    def cyc_cs(d):
        d["conditions"] = [{"type": "EQ", "child": "mom", "parent": "opt", "value": "sgd"},
                           {"type": "LT", "child": "opt", "parent": "mom", "value": 0.5}]
    _assert_rejected(_cs(tmp_path, cyc_cs), "cyclic", "'mom'", "'opt'")


def test_bad_default_outside_domain(tmp_path):
    _assert_rejected(_native(tmp_path, lambda d: d["parameters"]["mom"].update(default=2.0)),
            "'mom'", "default 2.0 is outside")
    _assert_rejected(_cs(tmp_path, lambda d: d["hyperparameters"][1].update(default_value=-1.0)),
            "'mom'", "default -1.0 is outside")


def test_bad_value_outside_choices(tmp_path):
    _assert_rejected(_native(tmp_path, lambda d: d["parameters"]["opt"].update(default="rmsprop")),
            "'opt'", "'rmsprop'", "not one of the choices")
    _assert_rejected(_native(tmp_path, lambda d: d.update(
        conditions=[{"child": "mom", "parent": "opt", "equals": "rmsprop"}])),
        "'opt'", "'rmsprop'", "not in the domain")
    _assert_rejected(_cs(tmp_path, lambda d: d.update(
        forbiddens=[{"type": "EQUALS", "name": "opt", "value": "rmsprop"}])),
        "'opt'", "'rmsprop'", "not in the domain")


def test_bad_default_violates_forbidden(tmp_path):
    _assert_rejected(_native(tmp_path, lambda d: d.update(forbidden=[{"name": "opt", "equals": "sgd"}])),
            "default configuration violates forbidden", "opt")
    _assert_rejected(_cs(tmp_path, lambda d: d.update(forbiddens=[
        {"type": "AND", "clauses": [{"type": "EQUALS", "name": "opt", "value": "sgd"},
                                    {"type": "IN", "name": "mom", "values": [0.5]}]}])),
        "default configuration violates forbidden", "opt", "mom")


def test_bad_malformed_yaml_names_file_and_line(tmp_path):
    p = _write(tmp_path, "broken.yaml",
               "name: x\nparameters:\n  lr: {type: float, low: 0\n  opt: [a, b]\n")
    msg = _assert_rejected(p, "malformed YAML", "line ")
    assert "line 4" in msg or "line 3" in msg
    p2 = _write(tmp_path, "broken.json", '{"hyperparameters": [\n  {"name": "a",}\n]}')
    _assert_rejected(p2, "malformed JSON", "line 2")


def test_bad_file_reports_every_problem_and_nothing_half_loads(tmp_path):
    def many(d):
        d["parameters"]["mom"]["type"] = "nope"
        d["parameters"]["x"] = {"type": "int", "low": 5, "high": 1}
        d["conditions"] = [{"child": "ghost", "parent": "opt", "equals": "sgd"}]
    msg = _assert_rejected(_native(tmp_path, many), "'mom'", "'x'", "'ghost'")
    assert "3 violations" in msg


def test_unknown_keys_rejected(tmp_path):
    _assert_rejected(_native(tmp_path, lambda d: d["parameters"]["mom"].update(lowr=0.1)),
            "'mom'", "unknown keys ['lowr']")


def test_docs_example_loads_and_round_trips(tmp_path):
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "spaces-yaml.md"
    text = doc.read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(block)
    space = load_space(path)
    assert space.name == "finetune-small"
    assert space["sched"].choices == ("cosine", "step") and space["seed"].value == 0
    assert not space.is_active("decay", {"sched": "cosine"})
    assert space.is_active("amp", {"epochs": 20, "opt": "sgd"})
    assert space["decay"].meta == {"mutable": True}
    assert_same_space(space, native.loads(native.dumps(space)))
    assert_same_space(space, configspace.from_dict(configspace.to_dict(space)))
    for cfg in space.sample(0, n=200):
        space.validate(cfg)


def test_error_does_not_repeat_parameter_prefix(tmp_path):
    msg = _assert_rejected(_native(tmp_path, lambda d: d["parameters"]["mom"].update(default=2.0)),
                  "'mom'")
    assert msg.count("parameter 'mom'") == 1


def test_duplicate_keys_rejected(tmp_path):
    p = _write(tmp_path, "dup.yaml",
               "parameters:\n  lr: {type: float, low: 0, high: 1}\n  opt: [a, b]\n  lr: [1, 2]\n")
    _assert_rejected(p, "duplicate key 'lr'", "line 4")
    p2 = _write(tmp_path, "dup.json", '{"x": {"_type": "choice", "_value": [1]}, '
                '"x": {"_type": "uniform", "_value": [0, 1]}}')
    _assert_rejected(p2, "duplicate keys ['x']")


# ------------------------------------------------------------------------------ property test
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_scalar = st.one_of(st.integers(-50, 50), st.text("abcxyz", min_size=1, max_size=4),
                    st.booleans(), st.floats(-10, 10, allow_nan=False).map(lambda x: round(x, 3)))


@st.composite
def random_spaces(draw):
    n = draw(st.integers(1, 7))
    params, conditions = [], []
    for i in range(n):
        name = f"p{i}"
        kind = draw(st.sampled_from(["float", "int", "cat", "ord", "const"]))
        if kind == "float":
            low = draw(st.floats(0.001, 100, allow_nan=False))
            high = low + draw(st.floats(0.0, 100, allow_nan=False))
            params.append(Float(name, low, high, log=draw(st.booleans())))
        elif kind == "int":
            low = draw(st.integers(-20, 20))
            step = draw(st.integers(1, 3))
            high = low + step * draw(st.integers(0, 10))
            params.append(Int(name, low, high, step=step))
        elif kind in ("cat", "ord"):
            values = draw(st.lists(_scalar, min_size=1, max_size=5,
                                   unique_by=lambda v: (type(v) is bool, v)))
            cls = Categorical if kind == "cat" else Ordinal
            params.append(cls(name, tuple(values)))
        else:
            params.append(Constant(name, draw(_scalar)))
        parents = [p for p in params[:-1] if isinstance(p, Categorical)]
        if parents and draw(st.booleans()):
            parent = draw(st.sampled_from(parents))
            conditions.append(Equals(name, parent.name, draw(st.sampled_from(parent.choices))))
    return SearchSpace(params, conditions, name="prop")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_spaces())
def test_property_round_trips(space):
    assert_same_space(space, native.loads(native.dumps(space)))
    assert_same_space(space, configspace.loads(configspace.dumps(space)))
    assert_same_space(space, configspace.loads(configspace.dumps(space, yaml=True)))
    back = nni.loads(nni.dumps(space))
    for cfg in space.sample(0, n=20):
        # NNI renames nested params; the unconditional ones keep their values
        plain = {k: v for k, v in cfg.items() if not space.conditions_for(k)}
        assert all(back[k].contains(v) for k, v in plain.items())
