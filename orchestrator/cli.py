"""The ``archtune`` command.

    archtune run SPEC [--address ADDR] [--verbose]     run an experiment file (.yaml or .py)
    archtune resume DIR                                continue an interrupted experiment
    archtune pipeline SPEC [--address ADDR]            run (or continue) a staged NAS pipeline
    archtune submit SPEC --address http://HEAD:8265   run it as a Ray Job on a cluster
    archtune status|logs|stop JOB --address ...        follow / stop a submitted job
    archtune space show NAME|FILE|module:factory       describe a search space, a network, or
                                                       the mutables of a model (one-shot NAS)
    archtune train --config cfg.yaml [--epochs N]      train one configuration locally
    archtune report DIR                                table + plots of an experiment
    archtune report DIR --compare OTHER [...]          ... and every experiment's Pareto front
    archtune tensorboard DIR                           TensorBoard on the experiment (127.0.0.1)

Exit status: 0 ok, 2 invalid input (experiment file, space, trainer config), 1 other errors.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from spaces.errors import ArchtuneError

__all__ = ["build_parser", "main"]

_JOBS_ADDRESS_ENV = "RAY_API_SERVER_ADDRESS"


def _print_results(res) -> None:
    print(f"\nexperiment: {res.path}")
    print(f"trials: {len(res.dataframe)}", end="")
    if not res.dataframe.empty and "status" in res.dataframe:
        counts = res.dataframe["status"].value_counts().to_dict()
        print(" (" + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ")")
    else:
        print()
    if res.best_metric is not None:
        print(f"best {res.metric}: {res.best_metric:.4f} (trial {res.best_trial})")
        print("best config:")
        for k, v in res.best_config.items():
            print(f"  {k}: {v}")
    else:
        print(f"no trial reported {res.metric}")
    print(f"results: {Path(res.path) / 'results.csv'}")


def cmd_run(a) -> int:
    from .runner import run
    from .spec import Experiment

    if str(a.spec).endswith(".py"):
        from .pyfile import load_python_experiment

        exp = load_python_experiment(a.spec)
    else:
        exp = Experiment.from_yaml(Path(a.spec))
    if a.storage:
        exp = exp.replace(storage=a.storage)
    if a.name:
        exp = exp.replace(name=a.name)
    _print_results(run(exp, address=a.address, verbose=a.verbose))
    return 0


def _filesystem_arg(a) -> object:
    """The ``pyarrow.fs`` filesystem of ``--storage-filesystem`` (a YAML/JSON mapping of
    ``pyarrow.fs.S3FileSystem`` options), or ``None`` when not given."""
    if not a.storage_filesystem:
        return None
    import yaml

    from .errors import SpecError
    from .storage import check_filesystem_options, filesystem_from_options

    try:
        options = yaml.safe_load(a.storage_filesystem)
    except yaml.YAMLError as e:
        raise SpecError(f"--storage-filesystem: not a YAML/JSON mapping ({e})") from None
    problem = check_filesystem_options(options, a.dir)
    if problem:
        raise SpecError(f"--storage-filesystem: {problem}")
    return filesystem_from_options(options)


def cmd_resume(a) -> int:
    from .runner import resume

    _print_results(resume(a.dir, address=a.address, verbose=a.verbose,
                          storage_filesystem=_filesystem_arg(a)))
    return 0


def cmd_pipeline(a) -> int:
    import dataclasses

    from .pipeline import Pipeline, run_pipeline

    pipe = Pipeline.from_yaml(Path(a.spec))
    if a.storage:
        pipe = dataclasses.replace(pipe, storage=a.storage)
    summary = run_pipeline(pipe, address=a.address, verbose=a.verbose)
    print(f"\npipeline: {summary['path']}")
    for stage, st in summary["stages"].items():
        metric = st.get("best_metric")
        extra = f" best {pipe.metric}={metric:.4f}" if isinstance(metric, float) else ""
        if stage == "proxy":
            ch = st["choice"]
            extra = f" proxy {ch['settings']} for {ch['steps']} steps (tau {ch['tau']:.3f})"
        print(f"  {stage}: {st['status']}{extra}")
    best = summary.get("best") or {}
    if best:
        print("best architecture:")
        for k, v in best["architecture"].items():
            print(f"  {k}: {v}")
        if "augment" in best:
            print(f"best augmentation: {best['augment']}")
    print(f"summary: {Path(summary['path']) / 'pipeline.json'}")
    return 0


def _address(a) -> str:
    addr = a.address or os.environ.get(_JOBS_ADDRESS_ENV)
    if not addr:
        raise ArchtuneError("--address http://HEAD:8265 is required (or set "
                            f"{_JOBS_ADDRESS_ENV})")
    return addr


def cmd_submit(a) -> int:
    from . import jobs

    job = jobs.submit(a.spec, _address(a), insecure=a.insecure)
    print(job)
    return 0


def cmd_status(a) -> int:
    from . import jobs

    print(jobs.status(a.job, _address(a), insecure=a.insecure))
    return 0


def cmd_logs(a) -> int:
    from . import jobs

    if a.follow:
        for chunk in jobs.follow_logs(a.job, _address(a), insecure=a.insecure):
            print(chunk, end="", flush=True)
    else:
        print(jobs.logs(a.job, _address(a), insecure=a.insecure), end="")
    return 0


def cmd_stop(a) -> int:
    from . import jobs

    stopped = jobs.stop(a.job, _address(a), insecure=a.insecure)
    print("stopped" if stopped else "already finished")
    return 0


def cmd_space_show(a) -> int:
    from spaces.describe import describe_space
    from spaces.formats import load_space

    network = _network_in(a.space)
    if network is not None:
        from trainers.compose import describe_network

        print(describe_network(network))
        return 0
    if ":" in a.space and not Path(a.space).exists():
        from .oneshot import model_space

        print(describe_space(model_space(a.space)))
        return 0
    print(describe_space(load_space(a.space)))
    return 0


def _network_in(path: str):
    """The network description in a YAML file: the file itself (``modules:``), or the
    ``network:`` section of an experiment file; ``None`` for anything else."""
    p = Path(path)
    if p.suffix.lower() not in (".yaml", ".yml") or not p.is_file():
        return None
    from trainers.compose.description import is_description, read_yaml_file

    data = read_yaml_file(p)
    if is_description(data):
        return str(p)
    net = data.get("network") if isinstance(data, dict) else None
    if isinstance(net, str) and not Path(net).is_absolute():
        return str(p.parent / net)
    return net


def cmd_train(a) -> int:
    import yaml

    from trainers.local import run_local

    path = Path(a.config)
    if not path.is_file():
        raise ArchtuneError(f"{path}: config file not found")
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise ArchtuneError(f"{path}: must hold a mapping of config keys")
    out = Path(a.out) if a.out else Path("runs") / path.stem
    results = run_local(config, out, max_epochs=a.epochs, seed=a.seed, trainer=a.trainer)
    if results:
        last = results[-1]
        print(json.dumps({k: last[k] for k in ("epoch", "val_acc", "val_loss") if k in last}))
    print(f"run folder: {out}")
    return 0


def cmd_report(a) -> int:
    from .report import make_report, parse_objectives

    objectives = parse_objectives(a.pareto) if a.pareto else None
    rep = make_report(a.dir, plots=not a.no_plots, pareto=objectives,
                      filesystem=_filesystem_arg(a), compare=a.compare or ())
    print(rep["table"])
    b = rep["best"]
    if b["best_metric"] is not None:
        print(f"\nbest {b['metric']} ({b['mode']}): {b['best_metric']:.4f} (trial {b['trial']})")
        for k, v in b["config"].items():
            print(f"  {k}: {v}")
    if a.compare:
        for f in rep["fronts"]:
            print(f"\nPareto front of {f.label} ({len(f.front)} trials):")
            print(f.front.to_string(index=False, max_colwidth=24))
    elif rep["pareto"] is not None:
        print(f"\nPareto front ({len(rep['pareto'])} trials):")
        print(rep["pareto"].to_string(index=False, max_colwidth=24))
    for p in rep["plots"]:
        print(f"plot: {p}")
    return 0


def cmd_tensorboard(a) -> int:
    d = Path(a.dir)
    logdir = d / "tensorboard" if (d / "tensorboard").is_dir() else d
    if not logdir.is_dir():
        raise ArchtuneError(f"{d}: no such experiment folder")
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
           "--host", "127.0.0.1", "--port", str(a.port)]
    print(f"TensorBoard: http://127.0.0.1:{a.port}/  (logdir {logdir}; Ctrl-C to stop)",
          flush=True)
    if a.dry_run:
        print(" ".join(cmd))
        return 0
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="archtune", description="HPO/NAS on Ray Tune")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run an experiment file")
    r.add_argument("spec")
    r.add_argument("--address", default=None, help="Ray cluster address (default: local Ray)")
    r.add_argument("--verbose", action="store_true", help="show Ray's own output")
    r.add_argument("--storage", default=None, help="override the experiment's storage")
    r.add_argument("--name", default=None, help="override the experiment's name")
    r.set_defaults(fn=cmd_run)

    fs_help = ("pyarrow.fs.S3FileSystem options of an s3:// folder, as YAML/JSON, e.g. "
               "'{endpoint_override: \"http://minio:9000\", scheme: http}'")
    r = sub.add_parser("resume", help="continue an interrupted experiment")
    r.add_argument("dir")
    r.add_argument("--address", default=None)
    r.add_argument("--verbose", action="store_true")
    r.add_argument("--storage-filesystem", default=None, metavar="OPTIONS", help=fs_help)
    r.set_defaults(fn=cmd_resume)

    r = sub.add_parser("pipeline", help="run (or continue) a staged NAS pipeline file")
    r.add_argument("spec")
    r.add_argument("--address", default=None, help="Ray cluster address (default: local Ray)")
    r.add_argument("--verbose", action="store_true", help="show Ray's own output")
    r.add_argument("--storage", default=None, help="override the pipeline's storage")
    r.set_defaults(fn=cmd_pipeline)

    r = sub.add_parser("submit", help="submit an experiment as a Ray Job")
    r.add_argument("spec")
    r.add_argument("--address", default=None, help="dashboard address http://HEAD:8265")
    r.add_argument("--insecure", action="store_true",
                   help="send the cluster token over plain http:// to a non-loopback host")
    r.set_defaults(fn=cmd_submit)
    for name, fn in (("status", cmd_status), ("logs", cmd_logs), ("stop", cmd_stop)):
        r = sub.add_parser(name, help=f"{name} of a submitted job")
        r.add_argument("job")
        r.add_argument("--address", default=None)
        r.add_argument("--insecure", action="store_true",
                       help="send the cluster token over plain http:// to a non-loopback host")
        if name == "logs":
            r.add_argument("--follow", "-f", action="store_true")
        r.set_defaults(fn=fn)

    sp = sub.add_parser("space", help="search-space tools")
    ssub = sp.add_subparsers(dest="space_command", required=True)
    r = ssub.add_parser("show", help="describe a library space or a space file")
    r.add_argument("space")
    r.set_defaults(fn=cmd_space_show)

    from trainers.knobs import help_text

    r = sub.add_parser("train", help="train one configuration locally (no Ray)",
                       epilog=help_text(), formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--config", required=True, help="YAML with the trial config")
    r.add_argument("--epochs", type=int, default=1)
    r.add_argument("--out", default=None)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--trainer", default="finetune")
    r.set_defaults(fn=cmd_train)

    r = sub.add_parser("report", help="table and plots of an experiment")
    r.add_argument("dir")
    r.add_argument("--no-plots", action="store_true")
    r.add_argument("--pareto", default=None, metavar="OBJ:MODE,...",
                   help="Pareto front over these columns, e.g. val_acc:max,latency_ms:min "
                        "(default: the metric vs latency_ms or params when reported)")
    r.add_argument("--compare", nargs="+", default=None, metavar="OTHER_DIR",
                   help="other experiment folders: plot every experiment's trials and Pareto "
                        "front on one pareto.png (labelled by experiment name) and print "
                        "each front")
    r.add_argument("--storage-filesystem", default=None, metavar="OPTIONS", help=fs_help)
    r.set_defaults(fn=cmd_report)

    r = sub.add_parser("tensorboard", help="launch TensorBoard on an experiment")
    r.add_argument("dir")
    r.add_argument("--port", type=int, default=6006)
    r.add_argument("--dry-run", action="store_true", help="print the command only")
    r.set_defaults(fn=cmd_tensorboard)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except ArchtuneError as e:
        if getattr(e, "exit_code", None):  # ExperimentInterrupted: 130 (SIGINT) / 143 (SIGTERM)
            print(f"archtune: {e}", file=sys.stderr)
            return int(e.exit_code)
        print(f"archtune: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
