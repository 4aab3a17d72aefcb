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


def _args() -> argparse.Namespace:
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
    return a


def main() -> None:
    import torch

    a = _args()
    torch.set_num_threads(1)
    b = _Bench(a)
    b.train_supernet()
    b.fidelity()
    if a.fidelity_only:
        return
    b.ranking_cost()
    top, scratch = b.oneshot_pipeline()
    if a.multi_trials > 0:
        b.out["outcome"]["multi_trial_search"] = _outcome_vs_search(
            b.space, b.settings, b.root, a, b.archs, b.alone_runs, b.alone_s, top, scratch)
        b.save()


class _Bench:
    """The bench's steps in order, sharing the supernet, its evaluator and the results dict
    (``out``, written to ``a.out`` after every step)."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.settings = {
            "dataset": "digits", "image_size": 16, "batch_size": a.batch_size, "device": "cpu",
            "bn_recalib_batches": a.bn_recalib_batches, "val_fraction": a.val_fraction,
            "data_fraction": a.data_fraction, "sampling": a.sampling,
            "inplace_distill": a.inplace_distill and a.sampling == "sandwich",
            "supernet_args": dict(a.supernet_args)}
        self.root = Path(tempfile.mkdtemp(prefix="oneshot_bench_"))
        self.out: dict = {"settings": {**self.settings, **vars(a)}, "torch_threads": 1}

    def save(self) -> None:
        Path(self.a.out).write_text(json.dumps(self.out, indent=2, default=str))

    def train_supernet(self) -> None:
        """Step 1; then the evaluator of inherited-weight scores and a mutator (seed 1)."""
        from trainers.oneshot import RandomMutator, search_space
        from trainers.oneshot.evaluate import SubnetEvaluator
        from trainers.oneshot.settings import OneShotConfig
        from trainers.oneshot.train import data_loaders, load_supernet, train_supernet

        a = self.a
        sctx, self.t_super = _train(train_supernet, {
            **self.settings, "eval_subnets": 1,
            "batch_size": a.supernet_batch_size or a.batch_size}, self.root, "supernet",
            a.supernet_epochs)
        self.ckpt = sctx.last_checkpoint
        probe = sctx.results[-1]["val_acc"]
        self.out["supernet"] = {"seconds": self.t_super, "val_acc_last": probe}
        print(f"supernet: {self.t_super:.1f}s, probe val_acc {probe:.3f}", flush=True)
        self.save()
        self.net = load_supernet(self.ckpt)
        self.space = search_space(self.net)
        cfg = OneShotConfig.from_dict(self.settings)
        tl, vl = data_loaders(cfg, 0)
        self.ev = SubnetEvaluator(self.net, tl, _val_subset(vl, a.score_val_images),
                                  cfg.bn_recalib_batches, "cpu")
        self.mut = RandomMutator(self.net, seed=1)

    def fidelity(self) -> None:
        """Step 2: inherited vs stand-alone scores of ``a.subnets`` distinct random subnets."""
        import numpy as np
        from scipy.stats import kendalltau

        from trainers.oneshot.train import train_subnet

        a, space = self.a, self.space
        archs: list[dict] = []
        while len(archs) < a.subnets:
            c = self.mut.sample()
            if all(space.config_id(c) != space.config_id(x) for x in archs):
                archs.append(c)
        inherited = [self.ev(c)["val_acc"] for c in archs]
        alone, self.alone_s, self.alone_runs = [], [], []
        for i, c in enumerate(archs):
            runs = []
            for s in range(a.seeds):
                ctx, t = _train(train_subnet, {**self.settings, **c}, self.root,
                                f"alone_{i}_{s}", a.standalone_epochs, seed=s)
                runs.append(ctx.results[-1]["val_acc"])
                self.alone_s.append(t)
            self.alone_runs.append(runs)
            alone.append(float(np.mean(runs)))
            print(f"stand-alone {i}: {alone[-1]:.4f} {runs} (inherited {inherited[i]:.4f})",
                  flush=True)
        self.archs = archs
        tau, p = kendalltau(inherited, alone)
        fid = {"n": len(archs), "kendall_tau": float(tau), "p_value": float(p),
               "inherited": inherited, "standalone": alone, "standalone_runs": self.alone_runs,
               "standalone_seconds": self.alone_s, "archs": archs}
        print(f"Kendall tau {tau:.3f} (p={p:.3g}) over {len(archs)} subnets", flush=True)
        if a.seeds >= 2:  # how well the stand-alone ranking reproduces itself: the ceiling
            runs0, runs1 = zip(*((r[0], r[1]) for r in self.alone_runs))
            fid["seed_vs_seed_tau"] = float(kendalltau(runs0, runs1)[0])
            print(f"stand-alone seed 0 vs seed 1 Kendall tau {fid['seed_vs_seed_tau']:.3f}",
                  flush=True)
        self.out["fidelity"] = fid
        self.save()

    def ranking_cost(self) -> None:
        """Step 3: ``a.rank`` inherited-weight scores against three stand-alone trainings."""
        import numpy as np

        cfgs = [self.mut.sample() for _ in range(self.a.rank)]
        t0 = time.perf_counter()
        scores = [self.ev(c)["val_acc"] for c in cfgs]
        t_rank = time.perf_counter() - t0
        mean_alone = float(np.mean(self.alone_s))
        self.out["cost"] = {"rank_n": self.a.rank, "rank_seconds": t_rank,
                            "standalone_mean_seconds": mean_alone,
                            "three_standalone_seconds": 3 * mean_alone,
                            "rank_best_val_acc": max(scores)}
        print(f"ranking {self.a.rank} subnets: {t_rank:.1f}s vs 3 stand-alone "
              f"{3 * mean_alone:.1f}s", flush=True)
        self.save()

    def oneshot_pipeline(self) -> tuple[list[dict], dict]:
        """Step 4, one-shot side: evolution over inherited scores, then the top 2 fine-tuned
        and trained from scratch; against the 20-trial random search of step 2. Returns the
        top 2 and the from-scratch final's figures."""
        from orchestrator.oneshot import search_subnets
        from trainers.oneshot.evaluate import subnet_cost

        a, space = self.a, self.space

        def evaluate(configs):
            return [{**self.ev(c), **subnet_cost(self.net, c, 16)} for c in configs]

        t0 = time.perf_counter()
        rows = search_subnets(space, evaluate, evaluations=a.search_evals, population_size=20,
                              sample_size=5, mutation_prob=0.3, batch_size=10, seed=0)
        t_search = time.perf_counter() - t0
        top: list[dict] = []
        for r in sorted(rows, key=lambda r: -r["val_acc"]):
            if all(space.config_id(r["config"]) != space.config_id(c) for c in top):
                top.append(r["config"])
            if len(top) == 2:
                break
        finals = {init: self._finals(top, init, epochs, t_search)
                  for init, epochs in (("inherit", a.finetune_epochs),
                                       ("scratch", a.standalone_epochs))}
        # the 20-trial random search: one training per subnet of step 2 (seed 0)
        multi_best = max(runs[0] for runs in self.alone_runs)
        multi_s = sum(self.alone_s[::a.seeds])
        self.out["outcome"] = {"search_seconds": t_search, "search_evals": a.search_evals,
                               "top2": top, "final": finals,
                               "multi_trial": {"trials": len(self.archs), "best": multi_best,
                                               "seconds": multi_s}}
        print(f"multi-trial random search: best {multi_best:.4f} in {multi_s:.1f}s "
              f"(1/5 = {multi_s / 5:.1f}s)", flush=True)
        self.save()
        return top, finals["scratch"]

    def _finals(self, top: list[dict], init: str, epochs: int, t_search: float) -> dict:
        from trainers.oneshot.train import train_subnet

        extra = {"init": "inherit", "supernet_checkpoint": str(self.ckpt)} \
            if init == "inherit" else {}
        accs, secs = [], []
        for i, c in enumerate(top):
            ctx, t = _train(train_subnet, {**self.settings, **c, **extra}, self.root,
                            f"final_{init}_{i}", epochs)
            accs.append(ctx.results[-1]["val_acc"])
            secs.append(t)
        total = self.t_super + t_search + sum(secs)
        print(f"one-shot final ({init}, {epochs} ep): best {max(accs):.4f}, pipeline "
              f"{total:.1f}s", flush=True)
        return {"epochs": epochs, "val_acc": accs, "best": max(accs), "final_seconds": secs,
                "pipeline_seconds": total}


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
