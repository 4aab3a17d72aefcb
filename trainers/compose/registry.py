"""The block registry of composed networks and the spec objects that nested descriptions become.

``BLOCKS`` is one :class:`spaces.registry.Registry` (names lower-cased, so ``BottleneckBlock`` and
``bottleneckblock`` are the same entry). A block is any ``nn.Module`` class or factory taking
keyword arguments::

    from trainers.compose import register_block

    @register_block("MyBlock")
    class MyBlock(nn.Module):
        def __init__(self, inchannel: int, outchannel: int, stride: int = 1): ...

A nested block reference in a description (``block: {type: BottleneckBlock}``) reaches the block
as a :class:`BlockSpec`; the block calls ``spec.build(**extra)`` for each copy it needs.
"""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from spaces.registry import Registry
from trainers.errors import TrainerError

__all__ = ["BLOCKS", "BlockSpec", "accepted_kwargs", "register_block"]

BLOCKS: Registry = Registry("block", error=TrainerError, cutoff=0.5,
                            modules=("trainers.compose.blocks",))


def register_block(name: str | None = None, obj: Any = None, **meta: Any):
    """Register a block class or factory under ``name`` (decorator or direct call)."""
    return BLOCKS.register(name, obj, replace=True, **meta)


def accepted_kwargs(target: Callable) -> tuple[set[str], set[str], bool]:
    """``(all keyword names, required names, accepts **kwargs)`` of a block's constructor."""
    fn = target.__init__ if inspect.isclass(target) else target
    sig = inspect.signature(fn)
    names, required, var_kw = set(), set(), False
    for i, (n, p) in enumerate(sig.parameters.items()):
        if inspect.isclass(target) and i == 0:
            continue  # self
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(n)
            if p.default is p.empty:
                required.add(n)
    return names, required, var_kw


def _close(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


@dataclass
class BlockSpec:
    """One ``{type: Block, **kwargs}`` entry of a description, located at ``path`` in ``source``.

    ``kwargs`` values may themselves be :class:`BlockSpec` objects (nested references) or lists
    of them (combinator children).
    """

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    source: str = "<description>"

    def where(self) -> str:
        return f"{self.source}: {self.path or '<root>'} ({self.type})"

    def target(self) -> Callable:
        if self.type not in BLOCKS:
            close = BLOCKS.close_matches(self.type)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise TrainerError(f"{self.source}: {self.path}.type: unknown block type "
                               f"{self.type!r}{hint} (registered: {', '.join(BLOCKS.list())})")
        return BLOCKS.get(self.type)

    def check(self, extra: Mapping[str, Any] = (), complete: bool = False) -> None:
        """Raise TrainerError for a keyword the block does not take (or, with ``complete``, a
        required one missing), naming the path and the accepted keywords."""
        names, required, var_kw = accepted_kwargs(self.target())
        given = set(self.kwargs) | set(extra)
        if not var_kw:
            for k in sorted(given - names):
                raise TrainerError(f"{self.source}: {self.path}.{k}: block {self.type} has no "
                                   f"argument {k!r}{_close(k, sorted(names))} (accepted: "
                                   f"{', '.join(sorted(names)) or 'none'})")
        if complete:
            missing = sorted(required - given)
            if missing:
                raise TrainerError(f"{self.where()}: missing required argument(s) "
                                   f"{', '.join(missing)}")

    def build(self, **extra: Any):
        """Instantiate the block with its keyword arguments updated by ``extra``."""
        self.check(extra, complete=True)
        kwargs = {**self.kwargs, **extra}
        try:
            module = self.target()(**kwargs)
        except TrainerError as exc:
            if str(exc).startswith(self.source):
                raise
            raise TrainerError(f"{self.where()}: {exc}") from None
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TrainerError(f"{self.where()}: cannot build: {exc}") from None
        return module
