"""One `Registry` for every named thing: protocols, architectures, transform pipelines,
catalog entries and recipes. Each entry is registered beside its definition.

`register` refuses duplicates (a second definition of a name is a programming error:
ValueError); `get` of an unknown name is a user error that lists the valid names with a
"did you mean"; `names(pattern)` is a sorted glob listing.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from dcbench.core.errors import UserError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object, for one `kind` of thing (the kind names it in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        """Add `obj` under `name`; a name registered twice raises ValueError."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def decorator(self, name: str) -> Callable[[T], T]:
        """`@registry.decorator("name")`: register the decorated object under `name`."""
        return lambda obj: self.register(name, obj)

    def get(self, name: str) -> T:
        """The object called `name`; unknown names raise a UserError listing the valid ones."""
        if name not in self._items:
            raise UserError(f"unknown {self.kind} {name!r}; "
                            + did_you_mean(str(name), list(self._items)))
        return self._items[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a glob, sorted."""
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def values(self, pattern: str = "*") -> list[T]:
        """Registered objects whose name matches a glob, in registration order."""
        return [v for n, v in self._items.items() if fnmatch.fnmatch(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
