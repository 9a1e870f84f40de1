"""Paired intervals for the deltas a table prints: find both runs' per-item outcomes through
the store's `outcomes` references and compare them (`leaderboards.paired`).

A cell (protocol, dialect, dataset, split, layer, metric) of model A vs model B gets an
interval when both have current rows there whose runs kept per-item outcomes on the same
items (same listing and item count). With several probe seeds on both sides, the item
interval is that of the lowest common seed and the seed spread of the per-seed deltas is
reported apart. A run may hold one entry per seed (low-shot draws, low-shot SVM samples),
per dataset (retrieval) or per model (low-shot's random-init baseline): the entry of a cell
is the one of its seed (else the run's seedless one), its dataset and its model's sha256.
Anything else says why there is no interval instead of inventing one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dcbench.core.errors import UserError
from dcbench.core.outcomes import ItemOutcomes, read_outcomes
from dcbench.leaderboards.identity import KEY_COLUMN
from dcbench.leaderboards.paired import (
    RESAMPLES,
    SEED,
    PairedDelta,
    SeedSpread,
    holm,
    pairable,
    paired_delta,
    seed_spread,
)

CELL = ["protocol", "dialect", "dataset", "split", "layer", "metric"]
NO_DATA = "no per-item data: no interval"


@dataclasses.dataclass(frozen=True)
class CellTest:
    """The paired comparison of one cell (or why there is none)."""

    delta: PairedDelta | None
    seeds: SeedSpread | None = None
    reason: str = ""

    def text(self, p: float | None = None) -> str:
        """`+1.3 [+0.4, +2.2] p=0.004` (+ the seed spread), or the reason for no interval."""
        if self.delta is None:
            return self.reason
        shown = self.delta if p is None else dataclasses.replace(self.delta, p=p)
        return shown.text() + (f"; {self.seeds.text()}" if self.seeds else "")


class OutcomeIndex:
    """Per-item outcome entries of stored runs, read from their files on first use."""

    def __init__(self, refs: pd.DataFrame) -> None:
        self.refs = refs
        self._files: dict[str, list[ItemOutcomes]] = {}

    def entry(self, run_id: str, split: str, layer: str, metric: str, *,
              seed: int | None = None, dataset: str | None = None,
              model_sha256: str | None = None) -> ItemOutcomes | None:
        """The stored entry of this run and cell (None when missing or unreadable): of
        `seed` when the run kept one per seed (else its seedless one), of `dataset` and of
        `model_sha256` when the run's entries name them."""
        hit = self.refs[(self.refs.run_id == run_id) & (self.refs.split == split)
                        & (self.refs.layer == layer) & (self.refs.metric == metric)]
        if hit.empty:
            return None
        path = str(hit.iloc[0]["path"])
        if path not in self._files:
            try:
                self._files[path] = read_outcomes(path) if Path(path).is_file() else []
            except UserError:
                self._files[path] = []
        found = [e for e in self._files[path] if e.key() == (split, layer, metric)
                 and (dataset is None or e.dataset in (None, dataset))
                 and (model_sha256 is None or e.model_sha256 in (None, model_sha256))]
        if seed is not None:  # rows stored without a seed have seed -1
            wanted = None if seed < 0 else seed
            found = ([e for e in found if e.seed == wanted]
                     or [e for e in found if e.seed is None])
        return found[0] if found else None


def _current_runs(results: pd.DataFrame, key: str, cell: Sequence[str]) -> dict[int, str]:
    """seed -> run id of the model's current rows in `cell` (latest config hash; the latest
    run per seed)."""
    rows = results[results[KEY_COLUMN] == key]
    for column, value in zip(CELL, cell, strict=True):
        rows = rows[rows[column] == value]
    if rows.empty:
        return {}
    rows = rows.assign(timestamp=rows["timestamp"].astype(str)).sort_values("timestamp")
    rows = rows[rows["config_hash"] == rows["config_hash"].iloc[-1]]
    return {(-1 if pd.isna(s) else int(s)): str(r) for s, r in zip(rows.seed, rows.run_id,
                                                                    strict=True)}


def _sha(key: str) -> str | None:
    """The weights' sha256 a model key names (None for rows stored without one)."""
    return None if key.startswith("name:") else key


def run_test(index: OutcomeIndex, run_a: str, run_b: str, split: str, layer: str,
             metric: str, *, resamples: int = RESAMPLES, seed: int = SEED,
             dataset: str | None = None, seeds: tuple[int | None, int | None] = (None, None),
             models: tuple[str | None, str | None] = (None, None)) -> CellTest:
    """A - B between two stored runs in one (split, layer, metric), or why there is none
    (`dataset`, `seeds`, `models`: the rows' dataset, seeds and sha256s, which pick the
    entries of runs that keep several)."""
    a = index.entry(run_a, split, layer, metric, seed=seeds[0], dataset=dataset,
                    model_sha256=models[0])
    b = index.entry(run_b, split, layer, metric, seed=seeds[1], dataset=dataset,
                    model_sha256=models[1])
    if a is None or b is None:
        return CellTest(None, reason=NO_DATA)
    problem = pairable(a, b)
    if problem:
        return CellTest(None, reason=f"{problem}: no interval")
    return CellTest(paired_delta(a, b, resamples=resamples, seed=seed))


def cell_test(results: pd.DataFrame, index: OutcomeIndex, key_a: str, key_b: str,
              cell: Sequence[str], *, resamples: int = RESAMPLES, seed: int = SEED
              ) -> CellTest:
    """A - B in one cell with its paired interval, or the reason there is none."""
    runs_a = _current_runs(results, key_a, cell)
    runs_b = _current_runs(results, key_b, cell)
    dataset, split, layer, metric = cell[2], cell[3], cell[4], cell[5]
    pairs = []
    for s in sorted(set(runs_a) & set(runs_b)):
        a = index.entry(runs_a[s], split, layer, metric, seed=s, dataset=dataset,
                        model_sha256=_sha(key_a))
        b = index.entry(runs_b[s], split, layer, metric, seed=s, dataset=dataset,
                        model_sha256=_sha(key_b))
        if a is not None and b is not None:
            pairs.append((a, b))
    if not pairs:
        return CellTest(None, reason=NO_DATA)
    problem = pairable(*pairs[0])
    if problem:
        return CellTest(None, reason=f"{problem}: no interval")
    delta = paired_delta(*pairs[0], resamples=resamples, seed=seed)
    per_seed = [paired_delta(a, b, resamples=1, seed=seed).delta for a, b in pairs
                if pairable(a, b) is None]
    return CellTest(delta, seed_spread(per_seed))


def paired_column(results: pd.DataFrame, refs: pd.DataFrame, keys: Sequence[str],
                  frame: pd.DataFrame, *, use_holm: bool = False, resamples: int = RESAMPLES,
                  seed: int = SEED) -> tuple[dict[str, list[str]], str]:
    """For each model after the first, one text per row of `frame` (a `compare` frame):
    its delta vs the first model with the paired interval and p; and the note saying how
    many tests were made, how (resamples, seed) and whether p is Holm-adjusted."""
    index = OutcomeIndex(refs)
    tests = {key: [cell_test(results, index, key, keys[0], tuple(row[c] for c in CELL),
                             resamples=resamples, seed=seed)
                   for _, row in frame.iterrows()] for key in keys[1:]}
    made = [t for column in tests.values() for t in column if t.delta is not None]
    adjusted = iter(holm([t.delta.p for t in made])) if use_holm else None
    texts = {key: [t.text(next(adjusted) if adjusted is not None and t.delta is not None
                          else None) for t in column] for key, column in tests.items()}
    return texts, tests_note(len(made), use_holm, resamples, seed)


def tests_note(count: int, use_holm: bool, resamples: int = RESAMPLES, seed: int = SEED) -> str:
    """How many paired tests a table made and how (or that it made none)."""
    if count == 0:
        return ("no paired interval: no two runs here kept per-item outcomes on the same "
                "items (rows vs a published number never have them)")
    how = (f"95% paired bootstrap interval over test items ({resamples:,} resamples, seed "
           f"{seed}); p: McNemar exact for top-1, the bootstrap otherwise")
    many = f"{count} test{'s' if count != 1 else ''} made"
    if count == 1:
        return f"{how}; {many}"
    return f"{how}; {many}: " + ("p Holm-adjusted for all of them" if use_holm else
                                 "p unadjusted (--holm applies Holm's correction)")
