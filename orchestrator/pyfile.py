"""Experiments written in Python: ``archtune run my_experiment.py``.

The file is executed as a module named after it; it must define ``experiment`` (an
:class:`~orchestrator.spec.Experiment`, e.g. with ``trainer=ModelSpace(...)``). The module is
registered with Ray's cloudpickle *by value*, so trial workers need not import the file.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from orchestrator.errors import SpecError

__all__ = ["load_python_experiment"]


def load_python_experiment(path: str | Path):
    """The ``experiment`` defined by the Python file at ``path``.

    Raises:
        SpecError: the file is missing, fails to import, or defines no ``experiment``.
    """
    from orchestrator.spec import Experiment

    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise SpecError(f"{p}: experiment file not found")
    name = p.stem.replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, p)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any error in user code is reported as such
        sys.modules.pop(name, None)
        raise SpecError(f"{p}: cannot run the experiment file: {type(exc).__name__}: {exc}"
                        ) from exc
    exp = getattr(module, "experiment", None)
    if not isinstance(exp, Experiment):
        raise SpecError(f"{p}: must define 'experiment = Experiment(...)', got {exp!r}")
    try:
        import ray.cloudpickle as cloudpickle

        cloudpickle.register_pickle_by_value(module)
    except (ImportError, AttributeError, ValueError):  # pragma: no cover - older cloudpickle
        pass
    return exp if exp.source else exp.replace(source=str(p))
