"""ConfigSpace itself as the oracle for archtune's ConfigSpace writer and semantics.

archtune writes a space with ``spaces.formats.configspace``; the ConfigSpace library reads it
back; both then must agree on which configurations are valid and which parameters are active.
"""
from __future__ import annotations

import itertools
import random

import numpy as np
import optuna
import pytest
from ConfigSpace import Configuration, ConfigurationSpace
from ConfigSpace.read_and_write import json as cs_json
from ConfigSpace.exceptions import ForbiddenValueError
from ConfigSpace.util import deactivate_inactive_hyperparameters

from spaces.core import (
    And, Categorical, Constant, Equals, Float, ForbiddenAnd, ForbiddenEquals, ForbiddenIn,
    ForbiddenRelation, GreaterThan, In, Int, LessThan, NotEquals, Or, Ordinal, Param,
    SearchSpace,
)
from spaces.formats import configspace, load_space


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
    compared = 0
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
        compared += 1
    assert compared >= 100, f"only {compared} of 300 active sets were compared"


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
    from spaces.compile.tune import sample_configs, to_tune

    space, cs, _ = pair
    for cfg in sample_configs(to_tune(space), 150, seed=5):
        Configuration(cs, values=cfg).check_valid_configuration()
    for cfg in optuna_configs(space, 150, seed=5):
        Configuration(cs, values=cfg).check_valid_configuration()


def optuna_configs(space: SearchSpace, n: int, seed: int):
    """Up to ``n`` configurations of ``space`` as Optuna's RandomSampler draws them through
    ``to_optuna`` (asks that the compiled function prunes are skipped)."""
    from spaces.compile.optuna import to_optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fn = to_optuna(space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(n):
        trial = study.ask()
        try:
            cfg = fn(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        yield cfg
        study.tell(trial, 0.0)


# ------------------------------------------------------------------------------------------
# Random spaces: ORs over conditional parents, nested AND/OR, chains of conditions, hundreds
# of parameters, many forbidden clauses. ConfigSpace's own validity check
# (``Configuration(...).check_valid_configuration``) is the oracle; each test counts the
# comparisons it actually made and asserts a minimum, so a test that silently skips its
# comparisons fails.
# ------------------------------------------------------------------------------------------


def _random_param(r: random.Random, name: str, discrete: bool) -> Param:
    kinds = ["cat", "cat", "ord", "int"] + ([] if discrete else ["float", "float_log", "int_log"])
    kind = r.choice(kinds)
    if kind == "cat":
        n = r.randint(2, 4)
        values = tuple(f"v{i}" for i in range(n)) if r.random() < 0.7 else tuple(range(10, 10 + n))
        return Categorical(name, values)
    if kind == "ord":
        return Ordinal(name, tuple(f"o{i}" for i in range(r.randint(2, 4))))
    if kind == "int":
        return Int(name, 0, r.randint(1, 3) if discrete else r.randint(1, 20))
    if kind == "int_log":
        return Int(name, 1, 64, log=True)
    if kind == "float":
        return Float(name, -1.0, 1.0)
    return Float(name, 1e-3, 1.0, log=True)


def _random_simple(r: random.Random, child: str, p: Param):
    if isinstance(p, Float):
        v = r.uniform(p.low, p.high) if not p.log else 10 ** r.uniform(-3, 0)
        return (GreaterThan if r.random() < 0.5 else LessThan)(child, p.name, v)
    kinds = ["eq", "neq", "in"] + ([] if isinstance(p, Categorical) else ["gt", "lt"])
    kind = r.choice(kinds)
    if kind == "in":
        return In(child, p.name, tuple(r.sample(p.values, r.randint(1, max(1, p.cardinality - 1)))))
    cls = {"eq": Equals, "neq": NotEquals, "gt": GreaterThan, "lt": LessThan}[kind]
    return cls(child, p.name, r.choice(p.values))


def _random_condition(r: random.Random, child: str, pick, depth: int = 0):
    x = r.random()
    if depth < 2 and x < 0.35:
        return Or(*[_random_condition(r, child, pick, depth + 1) for _ in range(r.randint(2, 3))])
    if depth < 2 and x < 0.5:
        return And(*[_random_condition(r, child, pick, depth + 1) for _ in range(2)])
    return _random_simple(r, child, pick())


def _random_forbidden(r: random.Random, params: list):
    if r.random() < 0.1:
        nums = [p for p in params if isinstance(p, (Int, Float))]
        if len(nums) < 2:
            return None
        a, b = r.sample(nums, 2)
        return ForbiddenRelation(a.name, r.choice(["<", "<=", ">", ">=", "==", "!="]), b.name)
    atoms = []
    for p in r.sample(params, min(len(params), r.randint(1, 3) if len(params) < 50 else 3)):
        if isinstance(p, Float):
            continue
        if r.random() < 0.5:
            atoms.append(ForbiddenEquals(p.name, r.choice(p.values)))
        else:
            atoms.append(ForbiddenIn(p.name, tuple(
                r.sample(p.values, r.randint(1, max(1, p.cardinality - 1))))))
    if not atoms:
        return None
    return atoms[0] if len(atoms) == 1 else ForbiddenAnd(*atoms)


def random_space(seed: int, n_params: int = 12, discrete: bool = False, n_forbidden: int = 4,
                 p_cond: float = 0.7, block: int = 0) -> SearchSpace:
    """A random space: each parameter conditional with probability ``p_cond`` on a random
    AND/OR tree over earlier parameters, preferring conditional parents (so ORs sit over
    parents that can be inactive and conditions chain); forbidden clauses that the default
    configuration does not violate. With ``block``, parents come from the same block of
    ``block`` parameters (ConfigSpace's depth bookkeeping grows with the number of condition
    paths, so large spaces are built as many deep blocks)."""
    r = random.Random(seed)
    params: list = []
    conditions: list = []
    conditional: set[str] = set()
    for i in range(n_params):
        p = _random_param(r, f"p{i}", discrete)
        first = (i // block) * block if block else 0
        if len(params) > first and r.random() < p_cond:
            def pick():
                local = params[first:]
                pool = [q for q in local if q.name in conditional]
                if not pool or r.random() < 0.4:
                    pool = local
                return r.choice(pool[-8:])
            conditions.append(_random_condition(r, p.name, pick))
            conditional.add(p.name)
        params.append(p)
    default = SearchSpace(params, conditions).default()
    forbiddens: list = []
    for _ in range(50 * n_forbidden):
        if len(forbiddens) == n_forbidden:
            break
        f = _random_forbidden(r, params)
        if f is not None and not f.is_forbidden(default):
            forbiddens.append(f)
    return SearchSpace(params, conditions, forbiddens, name=f"random{seed}")


def cs_of(space: SearchSpace, seed: int = 0) -> ConfigurationSpace:
    cs = ConfigurationSpace.from_serialized_dict(configspace.to_dict(space))
    cs.seed(seed)
    return cs


def cs_accepts(cs: ConfigurationSpace, cfg: dict) -> bool:
    """ConfigSpace's verdict: exactly the active parameters set, legal values, not forbidden."""
    try:
        Configuration(cs, values=cfg).check_valid_configuration()
    except ValueError:
        return False
    return True


def cs_active(cs: ConfigurationSpace, full: dict) -> set[str]:
    """ConfigSpace's activity for a value of every parameter: its hyperparameters in its own
    (topological) order, each active iff ConfigSpace's conditions on it hold on the vector of
    the values decided so far (inactive = NaN, as ConfigSpace stores them)."""
    vec = np.full(len(cs), np.nan)
    active = set()
    for i, name in enumerate(cs.keys()):
        conds = cs.parent_conditions_of[name]
        if all(c.satisfied_by_vector(vec) for c in conds):
            vec[i] = cs[name].to_vector(full[name])
            active.add(name)
    return active


def perturbed(space: SearchSpace, cfg: dict, rng: np.random.Generator, k: int = 4):
    """Variants of a valid ``cfg``: one value redrawn (children not updated), one key dropped,
    or one inactive parameter added."""
    names = list(space.params)
    for _ in range(k):
        v = dict(cfg)
        name = names[int(rng.integers(len(names)))]
        p = space.params[name]
        if name not in v:
            v[name] = p.default
        elif rng.random() < 0.6:
            v[name] = p.sample(rng)
        else:
            del v[name]
        yield v


def agreement(space: SearchSpace, n: int, seed: int) -> dict[str, int]:
    """Compare archtune with ConfigSpace on ``space``; return the number of comparisons made
    per kind (every comparison asserts agreement)."""
    cs = cs_of(space, seed)
    cs_free = cs_of(SearchSpace(list(space.params.values()), space.conditions, name="free"))
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(("ours_sampled", "theirs_sampled", "theirs_self_invalid", "activity",
                            "verdict_valid", "verdict_invalid"), 0)
    ours = space.sample(rng, n=n)
    for cfg in ours:
        assert cs_accepts(cs, cfg), (space.name, cfg)
        counts["ours_sampled"] += 1
    for conf in cs.sample_configuration(n):
        cfg = {k: py(v) for k, v in dict(conf).items()}
        if not cs_accepts(cs, cfg):  # ConfigSpace's sampler can contradict its own check
            counts["theirs_self_invalid"] += 1
            continue
        assert space.violations(cfg) == [], (space.name, cfg)
        assert set(space.active_names(cfg)) == set(cfg)
        counts["theirs_sampled"] += 1
    for _ in range(n):
        full = {k: p.sample(rng) for k, p in space.params.items()}
        assert set(space.active_names(full)) == cs_active(cs_free, full), (space.name, full)
        counts["activity"] += 1
    for cfg in ours[: max(1, n // 4)]:
        for v in perturbed(space, cfg, rng):
            verdict = space.is_valid(v)
            assert verdict == cs_accepts(cs, v), (space.name, v, space.violations(v))
            assert verdict == (not space.violations(v))
            counts["verdict_valid" if verdict else "verdict_invalid"] += 1
    return counts


def test_random_or_spaces_agree_with_configspace():
    total = dict.fromkeys(("ours_sampled", "theirs_sampled", "theirs_self_invalid", "activity",
                           "verdict_valid", "verdict_invalid"), 0)
    n_or = 0
    for seed in range(30):
        space = random_space(seed, n_params=12, n_forbidden=5)
        n_or += sum(isinstance(c, Or) for c in space.conditions)
        for k, v in agreement(space, 40, seed).items():
            total[k] += v
    assert n_or >= 30
    assert total["ours_sampled"] == 30 * 40
    assert total["activity"] == 30 * 40
    assert total["theirs_sampled"] >= 600
    assert total["verdict_valid"] >= 100 and total["verdict_invalid"] >= 100, total


def test_large_random_spaces_agree_with_configspace():
    for seed, n_params, n_forbidden in ((100, 300, 60), (101, 200, 80)):
        space = random_space(seed, n_params=n_params, n_forbidden=n_forbidden, p_cond=0.85,
                             block=12)
        assert len(space.params) == n_params and len(space.forbiddens) == n_forbidden
        counts = agreement(space, 60, seed)
        assert counts["ours_sampled"] == 60 and counts["activity"] == 60
        # ConfigSpace 1.2's sampler emits configurations its own check rejects on spaces like
        # these (almost every one at this size), so its samples are only counted here
        assert counts["theirs_sampled"] + counts["theirs_self_invalid"] == 60
        assert counts["verdict_valid"] + counts["verdict_invalid"] == 60


def _cs_size(space: SearchSpace, cs: ConfigurationSpace) -> int:
    """Distinct configurations ConfigSpace accepts, by enumerating every full assignment
    (ConfigSpace decides activity and validity)."""
    names = list(space.params)
    seen = set()
    for combo in itertools.product(*(space.params[n].values for n in names)):
        full = dict(zip(names, combo))
        cfg = tuple(sorted((n, full[n]) for n in cs_active(cs, full)))
        if cfg not in seen and cs_accepts(cs, dict(cfg)):
            seen.add(cfg)
    return len(seen)


def test_sizes_agree_with_configspace_enumeration():
    compared = 0
    for seed in range(40):
        space = random_space(seed, n_params=7, discrete=True, n_forbidden=3)
        if space.size_upper_bound() > 2500:
            continue
        expected = _cs_size(space, cs_of(space))
        assert space.size() == expected, space.name
        assert sum(1 for _ in space.iter_configs()) == expected
        compared += 1
    assert compared >= 15


def test_random_or_spaces_compilers_agree_with_configspace():
    from spaces.compile.tune import sample_configs, to_tune

    tune_checked = optuna_checked = 0
    for seed in (3, 7, 11, 19):
        space = random_space(seed, n_params=14, n_forbidden=4)
        cs = cs_of(space)
        for cfg in sample_configs(to_tune(space), 40, seed=seed):
            assert cs_accepts(cs, cfg), (space.name, cfg)
            tune_checked += 1
        for cfg in optuna_configs(space, 40, seed=seed):
            assert cs_accepts(cs, cfg), (space.name, cfg)
            optuna_checked += 1
    assert tune_checked == 160 and optuna_checked >= 100


def _rounded(x):
    if isinstance(x, float):
        return float(f"{x:.10g}")
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return sorted((_rounded(v) for v in x), key=repr)
    return x


def test_random_or_spaces_round_trip_through_configspace_files(tmp_path):
    checked = 0
    for seed in range(12):
        space = random_space(seed, n_params=12, n_forbidden=5)
        ours = configspace.write(space, tmp_path / f"ours{seed}.json")
        back = configspace.read(ours)
        # the same space (a NotEquals over a conditional parent comes back as the equivalent IN)
        assert list(back.params) == list(space.params) and back.forbiddens == space.forbiddens
        rng = np.random.default_rng(seed)
        for a, b in ((space, back), (back, space)):
            for cfg in a.sample(rng, n=100):
                assert b.is_valid(cfg), cfg
                checked += 1
        cs = ConfigurationSpace.from_json(ours)
        assert set(cs.keys()) == set(space.params)
        cs.to_json(tmp_path / f"cs{seed}.json")
        cs.to_yaml(tmp_path / f"cs{seed}.yaml")
        for p in (tmp_path / f"cs{seed}.json", tmp_path / f"cs{seed}.yaml"):
            # ConfigSpace writes float defaults with 13 significant digits
            assert _rounded(configspace.read(p).to_dict()) == _rounded(back.to_dict()), p
            checked += 1
    assert checked == 12 * 202


def test_benchmark_spaces_agree_with_configspace():
    """The auto-sklearn-shaped spaces of bench/space_speed.py mean the same in both libraries,
    so the speed comparison there compares like with like."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "space_speed.py"
    spec = importlib.util.spec_from_file_location("space_speed", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for name in ("autosklearn", "or_chains"):
        space = bench.SPACES[name]()
        assert len(space.params) >= 100 and len(space.forbiddens) >= 50
        counts = agreement(space, 40, 0)
        assert counts["ours_sampled"] == 40 and counts["activity"] == 40
        assert counts["theirs_sampled"] >= 20, counts
