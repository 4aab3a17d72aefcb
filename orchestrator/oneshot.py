"""The one-shot pipeline stages on Ray: ``supernet`` -> ``subnet_search`` -> ``final``
(the file format: :mod:`orchestrator.oneshot_spec`).

- ``supernet``: one Tune trial (one GPU when present) of the ``supernet`` trainer; its last
  checkpoint, in the experiment's storage, is what later stages read.
- ``subnet_search``: :func:`search_subnets` drives the ``evolution`` searcher
  (:class:`orchestrator.evolution.EvolutionSearcher`; constraints on params / FLOPs /
  latency) or random search; every evaluation scores a subnet with inherited weights and
  recalibrated BatchNorm. Evaluations run as Ray tasks (:func:`_evaluate_task`), each loading
  the supernet checkpoint from storage and scoring a batch of configurations.
- ``final``: the top ``final.top_n`` subnets trained as ordinary Tune trials by the ``subnet``
  trainer, from scratch (``final.init: scratch``) or fine-tuned from their inherited weights
  (``final.init: inherit``), for the pipeline's ``max_epochs``.

Each stage function takes the pipeline runner (:class:`orchestrator.pipeline._Runner`: its
``pipe``, ``summary`` and ``execute``) and returns the stage's summary entry.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from spaces.errors import ArchtuneError

from .oneshot_spec import load_supernet_space, trainer_settings

__all__ = ["run_supernet", "run_subnet_search", "run_final", "search_subnets",
           "evaluate_subnets", "train_listed", "latest_checkpoint", "model_space"]

MODELS_KEY = "_oneshot_models"
INDEX_KEY = "model"


# ---------------------------------------------------------------------------------- helpers
def model_space(factory: str, **kwargs: Any):
    """The search space of the mutables of the model ``"module:factory"(**kwargs)`` returns
    (what ``archtune space show module:factory`` prints)."""
    from trainers.oneshot import search_space
    from trainers.oneshot.train import build_supernet

    return search_space(build_supernet(factory, kwargs), name=factory)


def latest_checkpoint(experiment_dir: str | Path) -> Path:
    """The newest checkpoint folder (holding ``state.pt``) under an experiment's trials."""
    found = sorted(Path(experiment_dir).glob("trial_*/checkpoint_*/state.pt"),
                   key=lambda p: (p.stat().st_mtime, str(p)))
    if not found:
        raise ArchtuneError(f"{experiment_dir}: no supernet checkpoint (trial_*/checkpoint_*/"
                            f"state.pt); did the supernet trial report one?")
    return found[-1].parent


def evaluate_subnets(checkpoint_dir: str, configs: Sequence[Mapping[str, Any]],
                     settings: Mapping[str, Any], latency: bool = False,
                     seed: int = 0) -> list[dict[str, Any]]:
    """Score ``configs`` with the inherited weights of a supernet checkpoint: per config
    ``val_acc``, ``val_loss`` (BatchNorm recalibrated on ``bn_recalib_batches`` training
    batches), ``params``, ``flops`` (and ``latency_ms`` when ``latency``)."""
    import torch

    from trainers.oneshot.evaluate import SubnetEvaluator, subnet_cost
    from trainers.oneshot.settings import OneShotConfig
    from trainers.oneshot.train import data_loaders, load_supernet

    cfg = OneShotConfig.from_dict(dict(settings))
    net = load_supernet(checkpoint_dir)
    train_loader, val_loader = data_loaders(cfg, seed)
    ev = SubnetEvaluator(net, train_loader, val_loader, cfg.bn_recalib_batches, "cpu")
    out = []
    with torch.no_grad():
        for c in configs:
            row = dict(ev(c))
            row.update(subnet_cost(net, c, cfg.image_size, latency=latency))
            out.append(row)
    return out


def _evaluate_task():
    import ray

    return ray.remote(num_cpus=1)(evaluate_subnets)


def search_subnets(space: Any, evaluate: Callable[[list[dict]], list[dict]], *,
                   method: str = "evolution", evaluations: int = 200,
                   population_size: int = 20, sample_size: int = 5,
                   mutation_prob: float = 0.3, crossover_prob: float = 0.0,
                   constraints: Sequence[str] = (), batch_size: int = 25, seed: int = 0,
                   metric: str = "val_acc") -> list[dict[str, Any]]:
    """Search ``space`` with ``evaluate`` (a list of configs -> their result dicts, e.g.
    :func:`evaluate_subnets` in Ray tasks); returns every evaluation ``{config, **result}``
    in order. ``evolution`` asks the ``evolution`` searcher for ``batch_size`` children at a
    time (asynchronous regularized evolution; NSGA-II ranking under constraints); ``random``
    samples distinct configurations."""
    from .evolution import EvolutionSearcher

    pop = population_size if method == "evolution" else max(evaluations, 2)
    searcher = EvolutionSearcher(space, objectives=[(metric, "max")],
                                 population_size=pop, sample_size=min(sample_size, pop),
                                 mutation_prob=mutation_prob, crossover_prob=crossover_prob,
                                 constraints=list(constraints), seed=seed)
    done: list[dict[str, Any]] = []
    while len(done) < evaluations:
        n = min(batch_size, evaluations - len(done))
        ids = [f"s{len(done) + i}" for i in range(n)]
        configs = [searcher.suggest(t) for t in ids]
        for t, c, r in zip(ids, configs, evaluate(configs)):
            searcher.on_trial_complete(t, r)
            done.append({"config": dict(c), **r})
    return done


def _feasible(row: Mapping[str, Any], constraints: Sequence[str]) -> bool:
    from .constraints import parse_constraint, violation

    return violation(dict(row), [parse_constraint(c) for c in constraints]) == 0


def _top(rows: list[dict], k: int, constraints: Sequence[str], space: Any) -> list[dict]:
    ok = [r for r in rows if _feasible(r, constraints)]
    ok.sort(key=lambda r: -float(r["val_acc"]))
    out, seen = [], set()
    for r in ok:
        cid = space.config_id(r["config"])
        if cid not in seen:
            seen.add(cid)
            out.append(r)
        if len(out) == k:
            break
    return out


# ---------------------------------------------------------------------------------- stages
def run_supernet(runner: Any) -> dict[str, Any]:
    """Stage ``supernet``: one trial of the ``supernet`` trainer."""
    pipe, s = runner.pipe, runner.pipe.supernet
    gpu = s.gpu
    if gpu is None:
        import torch

        gpu = 1.0 if torch.cuda.is_available() else 0.0
    res = dict(pipe.resources) or {"cpu": 1.0}
    res["gpu"] = float(gpu)
    space = {"name": "supernet", "parameters": {
        "strategy": {"type": "categorical", "choices": [s.strategy]}}}
    data = trainer_settings(pipe, **dict(s.settings))
    data.pop("strategy", None)
    exp = pipe.experiment("supernet", space=space, fixed={}, trainer="supernet", data=data,
                          searcher={"type": "grid"}, scheduler={"type": "fifo"}, num_samples=1,
                          max_epochs=s.epochs, resources=res)
    result = runner.execute(exp)
    ckpt = latest_checkpoint(result.path)
    return {"path": result.path, "checkpoint": str(ckpt), "val_acc": result.best_metric,
            "epochs": s.epochs, "strategy": s.strategy}


def run_subnet_search(runner: Any) -> dict[str, Any]:
    """Stage ``subnet_search``: inherited-weight evaluations as Ray tasks."""
    import ray

    pipe, q = runner.pipe, runner.pipe.subnet_search
    ckpt = runner.summary["stages"]["supernet"]["checkpoint"]
    space = load_supernet_space(pipe, pipe.source or "pipeline")
    settings = trainer_settings(pipe)
    latency = any(c.replace(" ", "").startswith("latency_ms") for c in q.constraints)
    task = _evaluate_task()

    def evaluate(configs: list[dict]) -> list[dict]:
        per = max(1, math.ceil(len(configs) / q.workers))
        chunks = [configs[i:i + per] for i in range(0, len(configs), per)]
        refs = [task.remote(ckpt, c, settings, latency, pipe.seed) for c in chunks]
        return [r for part in ray.get(refs) for r in part]

    t0 = time.time()
    rows = search_subnets(space, evaluate, method=q.method, evaluations=q.evaluations,
                          population_size=q.population_size, sample_size=q.sample_size,
                          mutation_prob=q.mutation_prob, crossover_prob=q.crossover_prob,
                          constraints=q.constraints, batch_size=q.batch_size, seed=q.seed)
    top = _top(rows, max(pipe.final.top_n, 1), q.constraints, space)
    if not top:
        raise ArchtuneError(f"subnet_search: none of {len(rows)} evaluated subnets meets the "
                            f"constraints {list(q.constraints)}; relax them")
    path = Path(runner.dir) / "subnet_search.jsonl"
    import json

    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    return {"path": str(path), "evaluations": len(rows), "search_seconds": time.time() - t0,
            "top": [{"config": r["config"], "score": r["val_acc"],
                     **{k: r[k] for k in ("params", "flops", "latency_ms") if k in r}}
                    for r in top],
            "best_config": top[0]["config"], "best_metric": top[0]["val_acc"]}


def train_listed(config: dict, ctx: Any) -> None:
    """Trainer of the ``final`` stage: trains ``config[MODELS_KEY][config["model"]]`` (an
    architecture) with the ``subnet`` trainer and the remaining settings."""
    from trainers.oneshot.train import train_subnet

    cfg = dict(config)
    models = cfg.pop(MODELS_KEY)
    arch = models[int(cfg.pop(INDEX_KEY))]
    train_subnet({**cfg, **arch}, ctx)


train_listed.checkpoints = True


def run_final(runner: Any) -> dict[str, Any]:
    """Stage ``final``: the top subnets as Tune trials (from scratch or inherited)."""
    pipe = runner.pipe
    top = runner.summary["stages"]["subnet_search"]["top"][:pipe.final.top_n]
    models = [t["config"] for t in top]
    data = trainer_settings(pipe, init=pipe.final.init)
    data[MODELS_KEY] = models
    if pipe.final.init == "inherit":
        data["supernet_checkpoint"] = runner.summary["stages"]["supernet"]["checkpoint"]
    space = {"name": "final_models", "parameters": {
        INDEX_KEY: {"type": "ordinal", "sequence": list(range(len(models)))}}}
    exp = pipe.experiment("final", space=space, fixed={}, trainer=f"{__name__}:train_listed",
                          data=data, searcher={"type": "grid"}, scheduler={"type": "fifo"},
                          num_samples=len(models), max_epochs=pipe.max_epochs)
    res = runner.execute(exp)
    rows = []
    df = res.dataframe
    for i, (m, t) in enumerate(zip(models, top)):
        hit = df[df.get(f"config/{INDEX_KEY}") == i] if f"config/{INDEX_KEY}" in df else df[:0]
        score = float(hit[pipe.metric].iloc[0]) if len(hit) and pipe.metric in hit else None
        rows.append({"config": m, "score": score, "search_score": t["score"]})
    ok = [r for r in rows if r["score"] is not None and not math.isnan(r["score"])]
    if not ok:
        raise ArchtuneError(f"final stage ({res.path}): no subnet reported {pipe.metric!r}")
    best = max(ok, key=lambda r: r["score"])
    return {"path": res.path, "init": pipe.final.init, "models": rows,
            "best_config": best["config"], "best_metric": best["score"]}
