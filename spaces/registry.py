"""One registry implementation for every kind of named, pluggable thing in archtune.

Spaces, trainers, model builders, network blocks, searchers and schedulers each keep one
:class:`Registry` instance. It behaves like timm's model registry::

    SPACES = Registry("space", error=SpaceError, modules=("spaces.library.quicktune",))

    @SPACES.register("quicktune", tags=("finetune",))
    def quicktune(**kw) -> SearchSpace: ...

    SPACES.get("quicktune")         # the registered object
    SPACES.entry("quicktune").meta  # declared metadata (capability flags)
    SPACES.list("quick*")           # fnmatch filter, sorted
    "quicktune" in SPACES
    SPACES.create("quicktune", seed=0)   # get(name)(**kw)

Names are lower-cased. An entry may be registered lazily as ``"module:attribute"`` so that a
registry can list heavy objects (torch models, Ray schedulers) without importing them. Modules
named in ``modules`` are imported on the first lookup; an import error in them propagates (a
broken built-in is a bug, never a silently missing entry). Unknown names raise the registry's
error class (an :class:`~spaces.errors.ArchtuneError`) naming the entry and the closest valid
names. This module imports neither torch nor ray.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
from types import MappingProxyType
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from spaces.errors import ArchtuneError

__all__ = ["Entry", "Registry", "import_object"]

T = TypeVar("T")


def import_object(target: str, *, error: type[ArchtuneError] = ArchtuneError,
                  what: str = "object") -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute.

    Raises:
        error: the reference is malformed, the module cannot be imported or lacks the attribute.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise error(f"{what} reference must look like 'module:attribute', got {target!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"cannot import {what} module {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise error(f"module {module_name!r} has no attribute {attr!r} ({what} {target!r})"
                        ) from None
    return obj


@dataclasses.dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its declared metadata (capability flags, tags, docs)."""

    name: str
    target: Any
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    @property
    def lazy(self) -> bool:
        """True while the entry is still a ``"module:attribute"`` string."""
        return isinstance(self.target, str)


class Registry(Generic[T]):
    """Named objects of one ``kind`` with declared metadata; see the module docstring.

    Args:
        kind: what the entries are, used in error messages ("space", "trainer", ...).
        error: the :class:`ArchtuneError` subclass raised for unknown or invalid names.
        modules: modules imported on first lookup; importing them registers the built-ins.
        cutoff: similarity (0..1) a name needs to be suggested as a close match.
    """

    def __init__(self, kind: str, *, error: type[ArchtuneError] = ArchtuneError,
                 modules: tuple[str, ...] = (), cutoff: float = 0.5) -> None:
        self.kind = kind
        self.error = error
        self._modules = tuple(modules)
        self._cutoff = cutoff
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = not self._modules

    # registration --------------------------------------------------------------------------
    def register(self, name: str | None = None, obj: T | str | None = None, *,
                 aliases: tuple[str, ...] = (), replace: bool = False, **meta: Any):
        """Register ``obj`` under ``name`` (default: ``obj.__name__``), or act as a decorator.

        ``obj`` may be a ``"module:attribute"`` string, imported on first ``get``. Keyword
        arguments are the entry's declared metadata. Registering a different object under a
        taken name raises unless ``replace=True``.
        """
        def decorator(target: T | str) -> T | str:
            key = self._key(name if name is not None else getattr(target, "__name__", None))
            old = self._entries.get(key)
            if old is not None and not replace and old.target is not target:
                raise self.error(f"{self.kind} {key!r} is already registered")
            self._entries[key] = Entry(key, target, meta)
            for alias in aliases:
                self._aliases[self._key(alias)] = key
            return target

        return decorator(obj) if obj is not None else decorator

    def _key(self, name: Any) -> str:
        if not isinstance(name, str) or not name.strip() or ":" in name:
            raise self.error(f"{self.kind} name must be a non-empty string without ':', "
                             f"got {name!r}")
        return name.strip().lower()

    # lookup --------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._modules:
            importlib.import_module(module)

    def _resolve(self, name: str) -> str | None:
        self._load()
        key = str(name).strip().lower()
        key = self._aliases.get(key, key)
        return key if key in self._entries else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._resolve(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def list(self, filter: str = "*") -> list[str]:
        """Registered names (aliases excluded) matching the fnmatch ``filter``, sorted."""
        self._load()
        pattern = filter.lower()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def close_matches(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` registered names or aliases closest to ``name``."""
        self._load()
        pool = list(self._entries) + list(self._aliases)
        return difflib.get_close_matches(str(name).lower(), pool, n=n, cutoff=self._cutoff)

    def unknown(self, name: Any) -> ArchtuneError:
        """The error for an unknown ``name``: the name, the closest valid names, all names."""
        close = self.close_matches(str(name))
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return self.error(f"unknown {self.kind} {name!r}{hint} "
                          f"(valid: {', '.join(self.list())})")

    def entry(self, name: str) -> Entry[T]:
        """The :class:`Entry` of ``name`` (imported if lazy); the registry's error if unknown."""
        key = self._resolve(name) if isinstance(name, str) else None
        if key is None:
            raise self.unknown(name)
        found = self._entries[key]
        if found.lazy:
            target = import_object(found.target, error=self.error, what=self.kind)
            found = Entry(key, target, found.meta)
            self._entries[key] = found
        return found

    def get(self, name: str) -> T:
        """The object registered under ``name`` (or one of its aliases)."""
        return self.entry(name).target

    def meta(self, name: str) -> Mapping[str, Any]:
        """The declared metadata of ``name``, without importing a lazy entry."""
        key = self._resolve(name) if isinstance(name, str) else None
        if key is None:
            raise self.unknown(name)
        return self._entries[key].meta

    def create(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the object registered under ``name`` with the given arguments."""
        factory: Callable[..., Any] = self.get(name)  # type: ignore[assignment]
        return factory(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"
