"""Range-checked argparse types: a number flag out of range is one line and exit 2.

`type=int_in(0, 2**32 - 1)` makes argparse refuse `--seed -1` through `OneLineParser.error`
(one `dcbench: error:` line) before the subcommand runs, instead of a traceback from numpy
or an allocation of 100000 x 100000 pixels later.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

SEED_MAX = 2**32 - 1  # numpy RandomState / sklearn random_state accept [0, 2**32 - 1]


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r:.40}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got "
                                             f"{text:.40}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(low: float, high: float, *, open_low: bool = False,
             open_high: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (ends excluded when open)."""
    span = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r:.40}") from None
        inside = math.isfinite(value) and (low < value if open_low else low <= value) and \
            (value < high if open_high else value <= high)
        if not inside:
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {text:.40}")
        return value

    parse.__name__ = "number"
    return parse


seed = int_in(0, SEED_MAX)
