"""One-shot NAS on digits (16 px, every training image, half of digits held out for
validation; CPU, one thread): ranking fidelity, ranking cost, outcome.

    python bench/oneshot.py [--out bench/oneshot_results.json] [--quick]

1. Train the MnasNet-style supernet (``supernet`` trainer; by default ops {conv, mbconv, skip},
   kernels {1, 3, 5}, widths {0.125 .. 1}, head 32; sandwich rule with in-place distillation,
   batch 16).
2. Ranking fidelity: ``--subnets`` random architectures scored with inherited weights
   (BatchNorm recalibrated, scored on ``--score-val-images`` fixed validation images) and
   trained stand-alone from scratch (``subnet`` trainer, ``--standalone-epochs``, ``--seeds``
   seeds averaged); Kendall tau between the two (scipy), and the stand-alone ranking's own
   seed-0-vs-seed-1 tau (its ceiling).
3. Ranking cost: seconds to score 1000 random subnets with inherited weights vs three times
   the mean stand-alone training time.
4. Outcome: the one-shot pipeline's steps (supernet + evolution over inherited weights +
   final training of the top 2, fine-tuned from inherited weights and, separately, trained
   from scratch; compute counted in seconds) against two multi-trial searches on the same
   space: (a) the stand-alone trainings of step 2 (a 20-trial random search) and (b) the same
   evolutionary search driver with stand-alone trainings as its evaluations
   (``--multi-method``; a configuration trained in step 2 with seed 0 is not trained again),
   run until its compute reaches 5x the one-shot pipeline's (at most ``--multi-trials``
   evaluations). For (b) the figure is the multi-trial best at that point. Both searches' picks are then trained again with fresh seeds
   (``--retrain-seeds``): a best-of-N score carries the winner's curse, the re-trained mean
   does not.

Everything runs in this process, sequentially, with ``torch.set_num_threads(1)``: the same
code the Ray pipeline stages run, without Ray's scheduling.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _ctx(root: Path, name: str, epochs: int, seed: int = 0):
    from trainers.api import LocalContext

    return LocalContext(root / name, seed=seed, max_epochs=epochs, num_cpus=1, echo=False,
                        tensorboard=False)


def _train(fn, config: dict, root: Path, name: str, epochs: int, seed: int = 0):
    ctx = _ctx(root, name, epochs, seed)
    t0 = time.perf_counter()
    fn(config, ctx)
    return ctx, time.perf_counter() - t0


def _val_subset(val_loader, n: int) -> list:
    """``[(x, y)]``: ``n`` validation images drawn without replacement (seed 0), or all of them
    when ``n`` is 0 or at least the split's size."""
    import torch

    xs, ys = zip(*((x, torch.as_tensor(y)) for x, y in val_loader))
    x, y = torch.cat(xs), torch.cat(ys)
    if 0 < n < len(y):
        idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:n]
        x, y = x[idx], y[idx]
    return [(x, y)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/oneshot_results.json")
    ap.add_argument("--supernet-epochs", type=int, default=30)
    ap.add_argument("--standalone-epochs", type=int, default=20)
    ap.add_argument("--finetune-epochs", type=int, default=5)
    ap.add_argument("--subnets", type=int, default=20)
    ap.add_argument("--rank", type=int, default=1000)
    ap.add_argument("--search-evals", type=int, default=200)
    ap.add_argument("--supernet-args", type=json.loads,
                    default={"ops": ["conv", "mbconv", "skip"], "kernels": [1, 3, 5],
                             "expansions": [3, 6], "widths": [0.125, 0.25, 0.5, 1.0],
                             "head_filters": 32},
                    help='JSON keyword arguments of the supernet factory, e.g. '
                         '\'{"widths": [0.25, 0.5, 1.0]}\'')
    ap.add_argument("--bn-recalib-batches", type=int, default=1,
                    help="training batches that recalibrate BatchNorm before each score")
    ap.add_argument("--val-fraction", type=float, default=0.5,
                    help="share of digits held out for validation")
    ap.add_argument("--data-fraction", type=float, default=1.0,
                    help="share of the training images kept (stratified, fixed by the seed)")
    ap.add_argument("--seeds", type=int, default=2,
                    help="stand-alone trainings per subnet (seeds 0..N-1); their mean accuracy "
                         "is the subnet's stand-alone score")
    ap.add_argument("--sampling", default="sandwich", choices=("uniform", "fair", "sandwich"),
                    help="supernet paths per step (trainers/oneshot/settings.py)")
    ap.add_argument("--supernet-batch-size", type=int, default=16,
                    help="batch size of the supernet training (0: --batch-size)")
    ap.add_argument("--batch-size", type=int, default=64,
                    help="batch size of the stand-alone and final trainings and of the "
                         "BatchNorm recalibration batches")
    ap.add_argument("--inplace-distill", action=argparse.BooleanOptionalAction, default=True,
                    help="smaller paths learn from the largest path's predictions (only with "
                         "--sampling sandwich; ignored otherwise)")
    ap.add_argument("--score-val-images", type=int, default=150,
                    help="inherited-weight scores (fidelity, ranking, search) on this many "
                         "validation images, a fixed random subset (0: all)")
    ap.add_argument("--multi-trials", type=int, default=150,
                    help="most evaluations of the multi-trial search (b), which stops once its "
                         "compute reaches 5x the one-shot pipeline's; 0 skips it")
    ap.add_argument("--multi-method", default="evolution", choices=("evolution", "random"))
    ap.add_argument("--retrain-seeds", type=int, default=2,
                    help="fresh seeds for re-training each search's pick (seeds 1..N)")
    ap.add_argument("--fidelity-only", action="store_true",
                    help="stop after the ranking-fidelity step")
    ap.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    a = ap.parse_args()
    if a.quick:
        a.supernet_epochs, a.standalone_epochs, a.finetune_epochs = 2, 2, 1
        a.subnets, a.rank, a.search_evals = 4, 20, 20
        a.multi_trials, a.retrain_seeds = 6, 1
    import numpy as np
    import torch
    from scipy.stats import kendalltau

    from orchestrator.oneshot import search_subnets
    from trainers.oneshot import RandomMutator, search_space
    from trainers.oneshot.evaluate import SubnetEvaluator, subnet_cost
    from trainers.oneshot.settings import OneShotConfig
    from trainers.oneshot.train import data_loaders, load_supernet, train_subnet, train_supernet

    torch.set_num_threads(1)
    settings = {"dataset": "digits", "image_size": 16, "batch_size": a.batch_size, "device": "cpu",
                "bn_recalib_batches": a.bn_recalib_batches, "val_fraction": a.val_fraction,
                "data_fraction": a.data_fraction, "sampling": a.sampling,
                "inplace_distill": a.inplace_distill and a.sampling == "sandwich",
                "supernet_args": dict(a.supernet_args)}
    root = Path(tempfile.mkdtemp(prefix="oneshot_bench_"))
    out: dict = {"settings": {**settings, **vars(a)}, "torch_threads": 1}

    def save() -> None:
        Path(a.out).write_text(json.dumps(out, indent=2, default=str))

    super_batch = a.supernet_batch_size or a.batch_size
    sctx, t_super = _train(train_supernet, {**settings, "eval_subnets": 1,
                                            "batch_size": super_batch},
                           root, "supernet", a.supernet_epochs)
    ckpt = sctx.last_checkpoint
    out["supernet"] = {"seconds": t_super, "val_acc_last": sctx.results[-1]["val_acc"]}
    print(f"supernet: {t_super:.1f}s, probe val_acc {sctx.results[-1]['val_acc']:.3f}", flush=True)
    save()

    net = load_supernet(ckpt)
    space = search_space(net)
    cfg = OneShotConfig.from_dict(settings)
    tl, vl = data_loaders(cfg, 0)
    ev = SubnetEvaluator(net, tl, _val_subset(vl, a.score_val_images), cfg.bn_recalib_batches,
                         "cpu")
    mut = RandomMutator(net, seed=1)
    archs, seen = [], set()
    while len(archs) < a.subnets:
        c = mut.sample()
        if space.config_id(c) not in seen:
            seen.add(space.config_id(c))
            archs.append(c)
    inherited = [ev(c)["val_acc"] for c in archs]
    alone, alone_s, alone_runs = [], [], []
    for i, c in enumerate(archs):
        runs = []
        for s in range(a.seeds):
            ctx, t = _train(train_subnet, {**settings, **c}, root, f"alone_{i}_{s}",
                            a.standalone_epochs, seed=s)
            runs.append(ctx.results[-1]["val_acc"])
            alone_s.append(t)
        alone_runs.append(runs)
        alone.append(float(np.mean(runs)))
        print(f"stand-alone {i}: {alone[-1]:.4f} {runs} (inherited {inherited[i]:.4f})",
              flush=True)
    tau, p = kendalltau(inherited, alone)
    out["fidelity"] = {"n": len(archs), "kendall_tau": float(tau), "p_value": float(p),
                       "inherited": inherited, "standalone": alone,
                       "standalone_runs": alone_runs,
                       "standalone_seconds": alone_s, "archs": archs}
    print(f"Kendall tau {tau:.3f} (p={p:.3g}) over {len(archs)} subnets", flush=True)
    if a.seeds >= 2:  # how well the stand-alone ranking reproduces itself: the ceiling
        seed_tau = float(kendalltau([r[0] for r in alone_runs], [r[1] for r in alone_runs])[0])
        out["fidelity"]["seed_vs_seed_tau"] = seed_tau
        print(f"stand-alone seed 0 vs seed 1 Kendall tau {seed_tau:.3f}", flush=True)
    save()
    if a.fidelity_only:
        return

    rank_cfgs = [mut.sample() for _ in range(a.rank)]
    t0 = time.perf_counter()
    scores = [ev(c)["val_acc"] for c in rank_cfgs]
    t_rank = time.perf_counter() - t0
    out["cost"] = {"rank_n": a.rank, "rank_seconds": t_rank,
                   "standalone_mean_seconds": float(np.mean(alone_s)),
                   "three_standalone_seconds": 3 * float(np.mean(alone_s)),
                   "rank_best_val_acc": max(scores)}
    print(f"ranking {a.rank} subnets: {t_rank:.1f}s vs 3 stand-alone "
          f"{3 * np.mean(alone_s):.1f}s", flush=True)
    save()

    def evaluate(configs):
        rows = []
        for c in configs:
            r = dict(ev(c))
            r.update(subnet_cost(net, c, 16))
            rows.append(r)
        return rows

    t0 = time.perf_counter()
    rows = search_subnets(space, evaluate, evaluations=a.search_evals, population_size=20,
                          sample_size=5, mutation_prob=0.3, batch_size=10, seed=0)
    t_search = time.perf_counter() - t0
    rows.sort(key=lambda r: -r["val_acc"])
    top, ids = [], set()
    for r in rows:
        if space.config_id(r["config"]) not in ids:
            ids.add(space.config_id(r["config"]))
            top.append(r["config"])
        if len(top) == 2:
            break
    finals = {}
    for init, epochs in (("inherit", a.finetune_epochs), ("scratch", a.standalone_epochs)):
        accs, secs = [], []
        for i, c in enumerate(top):
            extra = {"init": "inherit", "supernet_checkpoint": str(ckpt)} if init == "inherit" else {}
            ctx, t = _train(train_subnet, {**settings, **c, **extra}, root, f"final_{init}_{i}",
                            epochs)
            accs.append(ctx.results[-1]["val_acc"])
            secs.append(t)
        total = t_super + t_search + sum(secs)
        finals[init] = {"epochs": epochs, "val_acc": accs, "best": max(accs),
                        "final_seconds": secs, "pipeline_seconds": total}
        print(f"one-shot final ({init}, {epochs} ep): best {max(accs):.4f}, pipeline "
              f"{total:.1f}s", flush=True)
    # the multi-trial search is one training per subnet (seed 0), as a random search runs it
    multi_best = max(runs[0] for runs in alone_runs)
    multi_s = sum(alone_s[::a.seeds])
    out["outcome"] = {"search_seconds": t_search, "search_evals": a.search_evals,
                      "top2": top, "final": finals,
                      "multi_trial": {"trials": len(alone), "best": multi_best,
                                      "seconds": multi_s}}
    print(f"multi-trial random search: best {multi_best:.4f} in {multi_s:.1f}s "
          f"(1/5 = {multi_s / 5:.1f}s)", flush=True)
    save()
    if a.multi_trials > 0:
        out["outcome"]["multi_trial_search"] = _outcome_vs_search(
            space, settings, root, a, archs, alone_runs, alone_s, top, finals["scratch"])
        save()


def _outcome_vs_search(space, settings: dict, root: Path, a, archs: list, alone_runs: list,
                       alone_s: list, top: list, scratch: dict) -> dict:
    """Multi-trial search (b) against the one-shot pipeline (final from scratch): the
    multi-trial best once its compute reaches 5x the one-shot pipeline's, and both searches'
    picks re-trained with seeds 1..``retrain_seeds``."""
    import numpy as np

    from trainers.oneshot.train import train_subnet

    def train(c: dict, name: str, seed: int = 0):
        return _train(train_subnet, {**settings, **c}, root, name, a.standalone_epochs, seed)

    seed0 = {space.config_id(c): (runs[0], alone_s[i * a.seeds])
             for i, (c, runs) in enumerate(zip(archs, alone_runs))}
    budget = 5 * scratch["pipeline_seconds"]
    multi = _multi_trial_search(space, train, seed0, a, budget)
    at = next((i for i, s in enumerate(multi["cum_seconds"]) if s >= budget), None)
    picks = {"oneshot": top[int(np.argmax(scratch["val_acc"]))]}
    if at is not None:
        picks["multi_trial"] = max(multi["rows"][:at + 1], key=lambda r: r["val_acc"])["config"]
    retrained = {k: [train(c, f"retrain_{k}_{s}", s)[0].results[-1]["val_acc"]
                     for s in range(1, a.retrain_seeds + 1)] for k, c in picks.items()}
    res = {"method": a.multi_method, "evaluations": a.multi_trials,
           "best_so_far": multi["best_so_far"], "cum_seconds": multi["cum_seconds"],
           "oneshot_seconds": scratch["pipeline_seconds"], "budget_5x": budget,
           "index_at_5x": at, "best_at_5x": None if at is None else multi["best_so_far"][at],
           "picks": picks, "retrained": retrained,
           "retrained_mean": {k: float(np.mean(v)) for k, v in retrained.items()}}
    at_5x = "not reached" if at is None else f"{res['best_at_5x']:.4f} (trial {at + 1})"
    print(f"multi-trial {a.multi_method}: best {multi['best_so_far'][-1]:.4f} in "
          f"{multi['cum_seconds'][-1]:.1f}s; at 5x the one-shot compute ({budget:.1f}s): "
          f"{at_5x}; one-shot final {max(scratch['val_acc']):.4f}; re-trained means "
          f"{res['retrained_mean']}", flush=True)
    return res


class _BudgetSpent(Exception):
    """Raised inside the multi-trial search's evaluation once its compute budget is spent."""


def _multi_trial_search(space, train, seed0: dict, a, budget: float) -> dict:
    """The multi-trial search: ``search_subnets`` with one stand-alone training (seed 0) per
    distinct configuration as the evaluation, until its training seconds reach ``budget`` or
    ``a.multi_trials`` evaluations; ``seed0`` (config id -> (val_acc, seconds)) holds trainings
    already made. Returns the configurations with their scores in order (``rows``), the
    best-so-far curve and the cumulative training seconds (a configuration seen before costs
    nothing again)."""
    from orchestrator.oneshot import search_subnets

    done = dict(seed0)
    rows: list[dict] = []
    cum: list[float] = []

    def evaluate(configs):
        out = []
        for c in configs:
            if cum and cum[-1] >= budget:
                raise _BudgetSpent
            cid = space.config_id(c)
            seen = any(space.config_id(r["config"]) == cid for r in rows)
            if cid not in done:
                ctx, t = train(c, f"multi_{len(rows)}")
                done[cid] = (ctx.results[-1]["val_acc"], t)
            cum.append((cum[-1] if cum else 0.0) + (0.0 if seen else done[cid][1]))
            rows.append({"config": dict(c), "val_acc": done[cid][0]})
            out.append({"val_acc": done[cid][0]})
        return out

    try:
        search_subnets(space, evaluate, method=a.multi_method, evaluations=a.multi_trials,
                       population_size=20, sample_size=5, mutation_prob=0.3, batch_size=10,
                       seed=0)
    except _BudgetSpent:
        pass
    best: list[float] = []
    for r in rows:
        best.append(max(r["val_acc"], best[-1] if best else 0.0))
    return {"rows": rows, "best_so_far": best, "cum_seconds": cum}


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
