"""The demo's verdicts: a claim "holds", "does not hold" or is "undecided at this size".

Each claim is a set of comparisons (trained vs random on one protocol and layer, ...). A
comparison with per-item outcomes on both sides is decided by its 95% paired interval
(`leaderboards.paired`): above 0 a win, below 0 a loss, containing 0 undecided. One without
per-item data (graph ratio, NMI: whole-set statistics) has no interval: it is decided by the
printed numbers, and equal printed numbers are undecided (a tie is no win). A claim holds
when every comparison is a win, does not hold when one is a loss, else it is undecided at
this size (more test items, or a longer run, could decide it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import pandas as pd

from dcbench.leaderboards.paired_table import CellTest

HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "undecided at this size"
FRACTION_METRICS = ("ratio_edge_intra_class", "nmi")
# (dataset, protocol, layer, metric, model A, model B) -> the paired test of A - B, if any
Intervals = Callable[[str, str, str, str, str, str], CellTest | None]


def format_value(metric: str, value: float) -> str:
    """One precision per kind of number: percent with 1 decimal, [0, 1] scores with 3."""
    if pd.isna(value):
        return ""
    return f"{value:.3f}" if metric in FRACTION_METRICS else f"{value:.1f}"


def shown(metric: str, value: float) -> float:
    """`value` rounded to the digits the demo prints for `metric`."""
    return round(float(value), 3 if metric in FRACTION_METRICS else 1)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One comparison of a claim: `win`, `loss` or `undecided`, with its evidence text."""

    label: str
    outcome: str
    evidence: str
    decided_by_interval: bool = False


def compare(label: str, metric: str, a: float, b: float, test: CellTest | None = None
            ) -> Comparison:
    """A vs B: by the paired interval when there is one, else by the printed numbers."""
    values = f"{label} {format_value(metric, a)} vs {format_value(metric, b)}"
    if test is not None and test.delta is not None:
        outcome = {"A better": "win", "B better": "loss"}.get(test.delta.verdict(), "undecided")
        return Comparison(label, outcome, f"{values} (Δ {test.delta.text()})", True)
    if pd.isna(a) or pd.isna(b):
        return Comparison(label, "undecided", f"{values} (not measured)")
    sa, sb = shown(metric, a), shown(metric, b)
    outcome = "win" if sa > sb else "loss" if sa < sb else "undecided"
    why = "no per-item data: no interval" + ("; a tie at the printed precision"
                                             if outcome == "undecided" else "")
    return Comparison(label, outcome, f"{values} ({why})")


@dataclasses.dataclass(frozen=True)
class Claim:
    """One thesis claim evaluated on the demo's own measurements."""

    text: str
    verdict: str
    evidence: str
    comparisons: tuple[Comparison, ...] = ()

    @property
    def holds(self) -> bool:
        """True only for a claim that holds (undecided is not holding)."""
        return self.verdict == HOLDS

    @property
    def ties(self) -> tuple[str, ...]:
        """The comparisons that are undecided (interval containing 0, or a printed tie)."""
        return tuple(c.label for c in self.comparisons if c.outcome == "undecided")


def make_claim(text: str, comparisons: Sequence[Comparison]) -> Claim:
    """The claim's verdict from its comparisons (any loss: fails; any undecided: undecided)."""
    outcomes = {c.outcome for c in comparisons}
    verdict = FAILS if "loss" in outcomes else UNDECIDED if "undecided" in outcomes or \
        not comparisons else HOLDS
    return Claim(text, verdict, "; ".join(c.evidence for c in comparisons), tuple(comparisons))


def verdict_line(claim: Claim) -> str:
    """`  [holds] text: evidence`, then what this run could and could not decide."""
    line = f"  [{claim.verdict}] {claim.text}: {claim.evidence}"
    decided = [c.label for c in claim.comparisons if c.outcome != "undecided"]
    if claim.ties:
        line += (f"\n      cannot decide at this size: {', '.join(claim.ties)}"
                 + (f"; decided: {', '.join(decided)}" if decided else ""))
    return line
