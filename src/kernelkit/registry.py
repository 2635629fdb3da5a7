"""One registry pattern for models, datasets, experiments, benchmarks, tasks, backends and metrics.

Registration happens only through the decorator. A lookup first imports the modules where entries of
this kind live (found by naming convention, see ``discover``), so there is no second list of names
that could drift from the code.

Example::

    MODELS = Registry("model", discover=("kernelkit.models",))

    @MODELS.register("unireplknet_a")
    def unireplknet_a(**kwargs): ...

    MODELS.get("unireplknet_a")        # -> the function
    MODELS.get("unireplknet-a")        # KeyError: unknown model 'unireplknet-a'; did you mean ...
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.util
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """Unknown or duplicate registry name. ``str()`` gives the readable message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with the metadata given at registration."""

    name: str
    obj: T
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named collection of objects registered with a decorator.

    Args:
        kind: what the entries are ("model", "experiment", ...), used in messages.
        discover: dotted module or package names imported before any lookup. A package is walked
            recursively, so every module inside it gets the chance to register its entries;
            ``"kernelkit.apps.recipes"`` means that module in every subpackage that has one.
            A name that cannot be imported because an optional dependency is missing is skipped.
    """

    def __init__(self, kind: str, discover: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._discover = discover
        self._entries: dict[str, Entry[T]] = {}
        self._discovered = False
        self.skipped: dict[str, str] = {}

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str | None = None, **meta: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (default: its ``__name__``)."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "__name__", None)
            if not key:
                raise ValueError(f"{self.kind} registration needs a name")
            if key in self._entries and self._entries[key].obj is not obj:
                prev = self._entries[key].obj
                where = getattr(prev, "__module__", "?")
                raise RegistryError(
                    f"duplicate {self.kind} name {key!r} (already registered from {where})"
                )
            self._entries[key] = Entry(key, obj, dict(meta))
            return obj

        return deco

    # -- discovery ----------------------------------------------------------------------------
    def _ensure_discovered(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for target in self._discover:
            self._import_tree(target)

    def _import_tree(self, dotted: str) -> None:
        if "*" in dotted:  # "kernelkit.apps.recipes": that module in every subpackage that has one
            head, tail = dotted.split(".*.", 1)
            parent = importlib.import_module(head)
            for info in pkgutil.iter_modules(parent.__path__, prefix=head + "."):
                if info.ispkg and importlib.util.find_spec(f"{info.name}.{tail}") is not None:
                    self._import_tree(f"{info.name}.{tail}")
            return
        try:
            module = importlib.import_module(dotted)
        except ModuleNotFoundError as exc:
            # A missing optional dependency (or a subsystem not installed) is recorded, not fatal.
            if exc.name and (exc.name == dotted or not exc.name.startswith("kernelkit")):
                self.skipped[dotted] = f"missing module {exc.name!r}"
                return
            raise
        path = getattr(module, "__path__", None)
        if path is None:
            return
        for info in pkgutil.iter_modules(path, prefix=dotted + "."):
            if info.name.rsplit(".", 1)[-1].startswith("_"):
                continue
            self._import_tree(info.name)

    # -- lookup -------------------------------------------------------------------------------
    def entry(self, name: str) -> Entry[T]:
        self._ensure_discovered()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def get(self, name: str) -> T:
        """The object registered as ``name``; unknown names raise with close matches."""
        return self.entry(name).obj

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = f" (known: {', '.join(sorted(self._entries))})" if len(self._entries) <= 20 else ""
        return f"unknown {self.kind} {name!r}{hint}{known if not close else ''}"

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted names, optionally filtered by a shell-style pattern (``"unireplknet_*"``)."""
        self._ensure_discovered()
        names = sorted(self._entries)
        if pattern:
            names = [n for n in names if fnmatch.fnmatch(n, pattern)]
        return names

    def entries(self) -> list[Entry[T]]:
        self._ensure_discovered()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        self._ensure_discovered()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure_discovered()
        return len(self._entries)
