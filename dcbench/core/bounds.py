"""Declared ranges of config keys: one mechanism for every protocol and training config.

A config dataclass declares each key's range next to its default, as field metadata:

    k: int = bounded(20, ge=1, le=MAX_COUNT)
    pooling: str = bounded("dc2018", choices=POOLING_TABLES)
    shots: list[int] = bounded(default_factory=lambda: [1, 2], ge=1, le=MAX_COUNT, min_len=1)

`dcbench.core.config.from_dict` checks every declared range after type coercion, so a value
out of range is one line naming the key, the range and the value, before anything runs or
is written (a NaN weight, a zero shard size, an absurd level count). For a list the number
and choice checks apply to each item, `min_len`/`max_len` to its length. Numbers must be
finite. Cross-key rules (a <= b) stay in the config's own `validate`.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Iterable
from typing import Any

MAX_COUNT = 2**31 - 1  # above this a size or count is a typo (and overflows torch/faiss/C)
MAX_SEED = 2**63 - 1
MAX_IMAGE_SIDE = 4096  # a resize target above this is a typo and a multi-GB allocation
MAX_WORKERS = 1024  # loader processes / joblib workers
METADATA_KEY = "dcbench_bounds"


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The range of one config key: numbers in [ge|gt, le|lt], one of `choices`, a length."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    min_len: int = 0
    max_len: int | None = None
    exclude: tuple[Any, ...] = ()  # values refused inside the range (jobs=0)
    integer: bool = False  # whole numbers; set for int-annotated fields when checked

    @property
    def numeric(self) -> bool:
        """Whether this range constrains numbers (else it is about choices or length only)."""
        return any(v is not None for v in (self.ge, self.gt, self.le, self.lt)) or self.integer

    def describe(self) -> str:
        """The accepted values, in words ("an integer in [1, 2147483647]", "one of [...]")."""
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        kind = "an integer" if self.integer else "a finite number"
        low = f"[{_fmt(self.ge)}" if self.ge is not None else \
            f"({_fmt(self.gt)}" if self.gt is not None else None
        high = f"{_fmt(self.le)}]" if self.le is not None else \
            f"{_fmt(self.lt)})" if self.lt is not None else None
        if self.exclude:
            kind += f" other than {', '.join(map(str, self.exclude))}"
        if low and high:
            return f"{kind} in {low}, {high}"
        if low:
            return f"{kind} {'>=' if self.ge is not None else '>'} {low[1:]}"
        if high:
            return f"{kind} {'<=' if self.le is not None else '<'} {high[:-1]}"
        return kind

    def item_ok(self, value: Any) -> bool:
        """Whether one scalar value is inside the range."""
        if self.choices is not None:
            return _hashable(value) and value in self.choices
        if isinstance(value, str) and not self.numeric:
            return True  # a free string (a length rule may still apply)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value) or (self.integer and not float(value).is_integer()):
            return False
        if value in self.exclude:
            return False
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def problem(self, value: Any) -> str | None:
        """Why `value` is out of range (None when it fits; None is 'unset' and always fits)."""
        if value is None:
            return None
        if isinstance(value, list | tuple):
            if len(value) < self.min_len:
                return f"must hold at least {self.min_len} item(s)"
            if self.max_len is not None and len(value) > self.max_len:
                return f"must hold at most {self.max_len} items"
            bad = [v for v in value if not self.item_ok(v)]
            return f"items must each be {self.describe()}" if bad else None
        if isinstance(value, str) and self.choices is None and not self.numeric:
            return "must not be empty" if len(value) < self.min_len else None
        return None if self.item_ok(value) else f"must be {self.describe()}"


def _fmt(number: float) -> str:
    if isinstance(number, int) and number >= 2**20 and (number + 1) & number == 0:
        return f"2**{number.bit_length()}-1"
    return f"{number:g}" if isinstance(number, float) else str(number)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _whole(hint: Any) -> bool:
    """Whether an annotation holds integers: int, int | None, list[int], tuple[int, ...]."""
    if hint is int:
        return True
    args = [a for a in typing.get_args(hint) if a not in (type(None), Ellipsis)]
    return bool(args) and all(_whole(a) for a in args)


def bounded(default: Any = dataclasses.MISSING, *,
            default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
            **bounds: Any) -> Any:
    """A dataclass field whose value must satisfy `Bounds(**bounds)` (see the module doc)."""
    if "choices" in bounds and bounds["choices"] is not None:
        bounds["choices"] = tuple(bounds["choices"])
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={METADATA_KEY: Bounds(**bounds)})


def field_bounds(field: dataclasses.Field) -> Bounds | None:
    """The declared `Bounds` of a dataclass field (None when it declares none)."""
    return field.metadata.get(METADATA_KEY)


def bounds_problems(config: Any, prefix: str = "") -> Iterable[tuple[str, str, Any]]:
    """(key, problem, value) for each field of dataclass `config` outside its declared range."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        bounds = field_bounds(field)
        value = getattr(config, field.name)
        if bounds is not None:
            if _whole(hints.get(field.name)):
                bounds = dataclasses.replace(bounds, integer=True)
            problem = bounds.problem(value)
            if problem:
                yield prefix + field.name, problem, value
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            yield from bounds_problems(value, f"{prefix}{field.name}.")
