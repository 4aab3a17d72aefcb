"""The layer rule of ARCHITECTURE.md, read from the source with ``ast`` (nothing is imported):

    spaces/  ->  nothing of trainers/ or orchestrator/, never torch, timm, torchvision or ray
    trainers/ -> nothing of orchestrator/, never ray
    orchestrator/ -> anything

Every ``import`` counts, at module level and inside functions; relative imports are resolved.
The import graph of the three packages has no cycle (package ``__init__`` modules included).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spaces", "trainers", "orchestrator")
FORBIDDEN = {
    "spaces": {"trainers", "orchestrator", "torch", "timm", "torchvision", "ray"},
    "trainers": {"orchestrator", "ray"},
    "orchestrator": set(),
}
# spaces.compile.tune builds Ray Tune param_spaces (ARCHITECTURE.md: compile/tune.py); it may
# import ray inside its functions, never at module level, so `import spaces` stays Ray-free.
LAZY_ALLOWED = {("spaces.compile.tune", "ray")}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _base(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if MODULES[module].name != "__init__.py":
        package = package[:-1]
    package = package[:len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _targets(module: str, node: ast.AST) -> list[str]:
    """Modules an import statement loads: ``from pkg import sub`` loads ``pkg.sub`` when that
    is a module of the project, ``pkg`` itself for any other name."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
        return []
    base = _base(module, node)
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return subs + ([base] if len(subs) < len(node.names) else [])


def _imports(module: str) -> list[tuple[str, bool]]:
    """``(target, at_module_level)`` for every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    top = {id(n) for n in tree.body}
    top |= {id(c) for n in tree.body if isinstance(n, (ast.If, ast.Try))
            for c in ast.walk(n)}
    return [(target, id(node) in top) for node in ast.walk(tree)
            for target in _targets(module, node)]


def _graph() -> dict[str, set[str]]:
    graph = {m: set() for m in MODULES}
    for m in MODULES:
        for target, _ in _imports(m):
            # the longest prefix that is a project module (`from a.b import c` for a
            # function c in a/b.py is an edge to a.b)
            parts = target.split(".")
            names = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
            name = next((n for n in names if n in MODULES), None)
            if name is not None and name != m:
                graph[m].add(name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_every_package_is_parsed():
    for pkg in PACKAGES:
        assert pkg in MODULES and sum(m.startswith(pkg + ".") for m in MODULES) >= 5


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_upward_imports():
    bad = []
    for m in MODULES:
        layer = m.split(".")[0]
        for target, module_level in _imports(m):
            top = target.split(".")[0]
            if top not in FORBIDDEN[layer]:
                continue
            if not module_level and (m, top) in LAZY_ALLOWED:
                continue
            bad.append(f"{m} -> {target}")
    assert not bad, "upward imports:\n" + "\n".join(sorted(set(bad)))


def _is_in_repo_import(node: ast.AST) -> bool:
    return isinstance(node, (ast.Import, ast.ImportFrom)) and any(
        t.split(".")[0] in PACKAGES or (isinstance(node, ast.ImportFrom) and node.level)
        for t in ([a.name for a in node.names] if isinstance(node, ast.Import)
                  else [node.module or "."]))


def test_no_import_error_fallbacks_for_project_modules():
    """``try: import <own module> except ImportError`` hides a broken install."""
    bad = []
    for m, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Try):
                continue
            caught = {ast.unparse(h.type) if h.type else "" for h in node.handlers}
            if not caught & {"ImportError", "ModuleNotFoundError", "Exception", ""}:
                continue
            if any(_is_in_repo_import(n) for stmt in node.body for n in ast.walk(stmt)):
                bad.append(f"{m}:{node.lineno}")
    assert not bad, "ImportError fallbacks around project imports: " + ", ".join(bad)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("orchestrator")
                                          and not m.rsplit(".", 1)[-1].startswith("_")))
def test_public_orchestrator_modules_declare_all(module):
    tree = ast.parse(MODULES[module].read_text())
    names = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
             for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
             if isinstance(t, ast.Name)}
    assert "__all__" in names, f"{module} has no __all__"


def test_the_rule_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    """The checks above would catch what they look for: a lazy relative import is an edge."""
    pkg = tmp_path / "spaces"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n    import torch\n")
    (pkg / "b.py").write_text("from spaces.a import f\ndef g():\n    pass\n")
    fake = {"spaces": pkg / "__init__.py", "spaces.a": pkg / "a.py", "spaces.b": pkg / "b.py"}
    monkeypatch.setattr(__import__(__name__), "MODULES", fake)
    assert _imports("spaces.a") == [("spaces.b", False), ("torch", False)]
    assert _cycles(_graph()) == [["spaces.a", "spaces.b"]]
