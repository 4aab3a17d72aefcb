"""Human-readable summary of a search space (used by ``archtune space show``)."""
from __future__ import annotations

import math

from spaces.core import Categorical, Constant, Float, Int, Ordinal, SearchSpace


def _domain(p) -> str:
    if isinstance(p, Categorical):
        s = "{" + ", ".join(repr(c) for c in p.choices) + "}"
        if p.weights is not None:
            s += f" weights={list(p.weights)}"
        return s
    if isinstance(p, Ordinal):
        return "<" + ", ".join(repr(c) for c in p.sequence) + ">"
    if isinstance(p, Constant):
        return f"= {p.value!r}"
    if isinstance(p, (Int, Float)):
        s = f"[{p.low}, {p.high}]"
        if p.log:
            s += " log"
        if p.step not in (None, 1):
            s += f" step={p.step}"
        return s
    return "?"


def _fmt_size(n) -> str:
    if n == math.inf:
        return "inf (continuous parameters)"
    if isinstance(n, int) and n >= 10**7:
        return f"{n} (~{float(n):.4g})"
    return str(n)


def describe_space(space: SearchSpace) -> str:
    """Parameters (type, domain, default, meta flags), conditions, forbidden clauses, size."""
    lines = [f"space {space.name or '<unnamed>'}: {len(space)} parameters, "
             f"{len(space.conditions)} conditions, {len(space.forbiddens)} forbidden clauses"]
    w = max((len(n) for n in space.names), default=4)
    lines.append("parameters:")
    for n in space.names:
        p = space.params[n]
        flags = ",".join(k for k, v in sorted((p.meta or {}).items()) if v is True)
        extra = f"  [{flags}]" if flags else ""
        default = "" if isinstance(p, Constant) else f"  default={p.default!r}"
        lines.append(f"  {n:<{w}}  {p.type_name:<11} {_domain(p)}{default}{extra}")
    if space.conditions:
        lines.append("conditions:")
        for c in space.conditions:
            lines.append(f"  {c}")
    if space.forbiddens:
        lines.append("forbidden:")
        for f in space.forbiddens:
            lines.append(f"  {f}")
    lines.append(f"size (distinct valid configurations): {_fmt_size(space.size())}")
    lines.append(f"size upper bound (product of domains): {_fmt_size(space.size_upper_bound())}")
    return "\n".join(lines)


__all__ = ["describe_space"]
