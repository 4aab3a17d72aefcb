"""ConfigSpace itself as the oracle for archtune's ConfigSpace writer and semantics.

archtune writes a space with ``spaces.formats.configspace``; the ConfigSpace library reads it
back; both then must agree on which configurations are valid and which parameters are active.
"""
from __future__ import annotations

import numpy as np
import pytest

ConfigSpace = pytest.importorskip("ConfigSpace")

from ConfigSpace import Configuration, ConfigurationSpace  # noqa: E402
from ConfigSpace.read_and_write import json as cs_json  # noqa: E402
from ConfigSpace.exceptions import ForbiddenValueError  # noqa: E402
from ConfigSpace.util import deactivate_inactive_hyperparameters  # noqa: E402

from spaces.core import (  # noqa: E402
    And, Categorical, Constant, Equals, Float, ForbiddenAnd, ForbiddenEquals, ForbiddenIn,
    ForbiddenRelation, GreaterThan, In, Int, LessThan, NotEquals, Or, Ordinal, SearchSpace,
)
from spaces.formats import configspace, load_space  # noqa: E402


def py(v):
    return v.item() if isinstance(v, np.generic) else v


def mixed_space() -> SearchSpace:
    params = [
        Float("lr", 1e-5, 1e-1, log=True),
        Float("dropout", 0.0, 0.5, step=0.1),
        Int("epochs", 1, 50),
        Int("width", 8, 512, log=True),
        Categorical("opt", ("sgd", "momentum", "adam", "adamw"), weights=(1, 1, 2, 2)),
        Ordinal("momentum", (0.8, 0.9, 0.99)),
        Ordinal("size", ("small", "medium", "large")),
        Int("heads", 1, 8),
        Float("gamma", 0.1, 0.9),
        Categorical("flag", (False, True)),
        Constant("model", "resnet18"),
        Int("warm", 0, 5),
    ]
    conditions = [
        Equals("momentum", "opt", "momentum"),
        GreaterThan("heads", "size", "small"),
        LessThan("gamma", "epochs", 30),
        And(NotEquals("warm", "opt", "sgd"), GreaterThan("warm", "epochs", 5)),
        Or(Equals("flag", "opt", "adam"), In("flag", "size", ("medium", "large"))),
    ]
    forbiddens = [
        ForbiddenAnd(ForbiddenEquals("opt", "adamw"), ForbiddenIn("size", ("large",))),
        ForbiddenRelation("dropout", ">", "gamma"),
    ]
    return SearchSpace(params, conditions, forbiddens, name="mixed")


@pytest.fixture(scope="module", params=["quicktune", "mixed"])
def pair(request, tmp_path_factory):
    space = load_space("quicktune") if request.param == "quicktune" else mixed_space()
    path = configspace.write(space, tmp_path_factory.mktemp("cs") / f"{request.param}.json")
    cs = ConfigurationSpace.from_json(path)
    return space, cs, path


def test_configspace_reads_our_json(pair):
    space, cs, path = pair
    assert set(cs.keys()) == set(space.params)
    # the older string API reads it too
    with pytest.warns(DeprecationWarning):
        cs2 = cs_json.read(path.read_text())
    assert set(cs2.keys()) == set(space.params)
    # ConfigSpace's own default equals ours
    assert {k: py(v) for k, v in dict(cs.get_default_configuration()).items()} == space.default()


def test_configspace_accepts_every_archtune_sample(pair):
    space, cs, _ = pair
    for cfg in space.sample(np.random.default_rng(0), n=400):
        conf = Configuration(cs, values=cfg)  # raises if ConfigSpace disagrees
        conf.check_valid_configuration()


def test_active_sets_agree(pair):
    space, cs, _ = pair
    rng = np.random.default_rng(1)
    for _ in range(300):
        # a value for EVERY parameter; both libraries decide which are active
        full = {n: space.params[n].sample(rng) for n in space.params}
        ours = set(space.active_names(full))
        stripped = {n: full[n] for n in ours}
        if space.is_valid(stripped):
            # ConfigSpace checks that exactly the active parameters are set
            Configuration(cs, values=stripped).check_valid_configuration()
        else:
            with pytest.raises(ForbiddenValueError):
                Configuration(cs, values=stripped)
        try:
            theirs = set(dict(deactivate_inactive_hyperparameters(full, cs)).keys())
        except ForbiddenValueError:
            # ConfigSpace checks forbiddens before dropping inactive values; covered above
            continue
        assert ours == theirs, full


def test_archtune_accepts_configspace_samples(pair):
    space, cs, _ = pair
    cs.seed(3)
    for conf in cs.sample_configuration(400):
        cfg = {k: py(v) for k, v in dict(conf).items()}
        assert space.violations(cfg) == [], cfg


def test_configspace_written_yaml_and_json_read_by_archtune(pair, tmp_path):
    space, cs, _ = pair
    # ConfigSpace writes its own files (its YAML uses !!python/tuple for IN values)
    cs.to_json(tmp_path / "cs.json")
    cs.to_yaml(tmp_path / "cs.yaml")
    for p in (tmp_path / "cs.json", tmp_path / "cs.yaml"):
        back = configspace.read(p)
        assert back == space, p
        rng = np.random.default_rng(4)
        for cfg in space.sample(rng, n=100):
            assert back.is_valid(cfg)


def test_configspace_accepts_tune_and_optuna_configs(pair):
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("ray.tune")
    from spaces.compile.optuna import to_optuna
    from spaces.compile.tune import sample_configs, to_tune

    space, cs, _ = pair
    for cfg in sample_configs(to_tune(space), 150, seed=5):
        Configuration(cs, values=cfg).check_valid_configuration()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fn = to_optuna(space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    for _ in range(150):
        trial = study.ask()
        try:
            cfg = fn(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        Configuration(cs, values=cfg).check_valid_configuration()
        study.tell(trial, 0.0)
