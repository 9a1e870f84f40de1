"""Paired tests of table cells: seeds kept apart, refusals named, Holm over the table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dcbench.core.outcomes import correct_outcomes, write_outcomes
from dcbench.leaderboards.identity import KEY_COLUMN
from dcbench.leaderboards.paired import holm, mcnemar_p
from dcbench.leaderboards.paired_table import (
    NO_DATA,
    OutcomeIndex,
    cell_test,
    paired_column,
    run_test,
)
from dcbench.leaderboards.store import OUTCOME_FIELDS

CELL = ("knn", "dc2018", "cls", "val", "conv5", "top1")


def _setup(tmp_path: Path, runs: dict[tuple[str, int], np.ndarray], listing: dict | None = None
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, refs = [], []
    for (model, seed), hits in runs.items():
        run_id = f"{model}-{seed}"
        path = write_outcomes(tmp_path / f"{run_id}.safetensors", [correct_outcomes(
            "val", "conv5", "top1", (listing or {}).get(model, "L"), hits, seed)])
        rows.append({KEY_COLUMN: model, **dict(zip(("protocol", "dialect", "dataset", "split",
                                                     "layer", "metric"), CELL, strict=True)),
                     "seed": seed, "run_id": run_id, "config_hash": "c",
                     "timestamp": "2026-12-01T00:00:00", "value": 100 * hits.mean()})
        refs.append({"run_id": run_id, "split": "val", "layer": "conv5", "metric": "top1",
                     "seed": seed, "kind": "correct", "listing": "L", "n_items": len(hits),
                     "path": str(path)})
    return pd.DataFrame(rows), pd.DataFrame(refs, columns=list(OUTCOME_FIELDS))


def test_seed_spread_is_reported_apart_from_the_item_interval(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    runs = {(m, s): rng.random(200) < (0.6 if m == "A" else 0.5) for m in "AB" for s in (0, 1, 2)}
    results, refs = _setup(tmp_path, runs)
    test = cell_test(results, OutcomeIndex(refs), "A", "B", CELL, resamples=500)
    per_seed = [100 * (runs[("A", s)].mean() - runs[("B", s)].mean()) for s in (0, 1, 2)]
    assert test.seeds.n_seeds == 3
    assert test.seeds.mean == pytest.approx(np.mean(per_seed))
    assert test.seeds.std == pytest.approx(np.std(per_seed, ddof=1))
    assert test.delta.delta == pytest.approx(per_seed[0])  # the item interval: seed 0's items
    assert test.delta.p == pytest.approx(mcnemar_p(runs[("A", 0)], runs[("B", 0)]))
    assert "seeds: " in test.text() and "(3 seeds)" in test.text()


def test_missing_or_unpairable_outcomes_say_why(tmp_path: Path) -> None:
    hits = np.ones(10, bool)
    results, refs = _setup(tmp_path, {("A", 0): hits, ("B", 0): hits},
                           listing={"A": "one", "B": "two"})
    assert cell_test(results, OutcomeIndex(refs), "A", "B", CELL).text() == \
        "evaluated on different item listings: no interval"
    assert cell_test(results, OutcomeIndex(refs.iloc[:1]), "A", "B", CELL).text() == NO_DATA


def test_holm_is_applied_across_every_test_of_the_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    runs = {(m, 0): rng.random(300) < p for m, p in (("A", 0.5), ("B", 0.55), ("C", 0.6))}
    results, refs = _setup(tmp_path, runs)
    frame = pd.DataFrame([dict(zip(("protocol", "dialect", "dataset", "split", "layer",
                                    "metric"), CELL, strict=True))])
    raw, note = paired_column(results, refs, ["A", "B", "C"], frame, resamples=200)
    adjusted, note_holm = paired_column(results, refs, ["A", "B", "C"], frame, use_holm=True,
                                        resamples=200)
    p = [mcnemar_p(runs[(m, 0)], runs[("A", 0)]) for m in "BC"]
    expected = holm(p)
    for key, value in zip("BC", expected, strict=True):
        assert adjusted[key][0].endswith(f"p={value:.2g}") or value < 1e-4
    assert "2 tests made: p unadjusted" in note and "Holm-adjusted" in note_holm


def test_one_run_with_an_entry_per_seed_dataset_and_model(tmp_path: Path) -> None:
    """Low-shot keeps one entry per draw (seed) and per model (its random-init baseline)
    in one run, retrieval one per dataset: each cell pairs the entries of its own seed,
    dataset and model, and the per-seed deltas make the seed spread."""
    rng = np.random.default_rng(3)
    sha = {"A": "a" * 64, "B": "b" * 64}
    hits = {(m, s, d): rng.random(150) < (0.7 if m == "A" else 0.5)
            for m in "AB" for s in (0, 1, 2) for d in ("x", "y")}
    entries = [correct_outcomes("val", "conv5", "top1", f"L{d}", h, s)
               for (m, s, d), h in hits.items()]
    entries = [dataclasses.replace(e, dataset=d, model_sha256=sha[m])
               for e, (m, _, d) in zip(entries, hits, strict=True)]
    path = write_outcomes(tmp_path / "one.safetensors", entries)
    rows = [{KEY_COLUMN: sha[m], "protocol": "low-shot", "dialect": "dc2018", "dataset": d,
             "split": "val", "layer": "conv5", "metric": "top1", "seed": s, "run_id": "r",
             "config_hash": "c", "timestamp": "t", "value": 100 * h.mean()}
            for (m, s, d), h in hits.items()]
    refs = pd.DataFrame([{"run_id": "r", "split": "val", "layer": "conv5", "metric": "top1",
                          "seed": s, "kind": "correct", "listing": "L", "n_items": 150,
                          "path": str(path)} for s in (0, 1, 2)], columns=list(OUTCOME_FIELDS))
    for d in ("x", "y"):
        cell = ("low-shot", "dc2018", d, "val", "conv5", "top1")
        test = cell_test(pd.DataFrame(rows), OutcomeIndex(refs), sha["A"], sha["B"], cell,
                         resamples=200)
        per_seed = [100 * (hits[("A", s, d)].mean() - hits[("B", s, d)].mean())
                    for s in (0, 1, 2)]
        assert test.delta.delta == pytest.approx(per_seed[0])
        assert test.delta.p == pytest.approx(mcnemar_p(hits[("A", 0, d)], hits[("B", 0, d)]))
        assert test.seeds.n_seeds == 3
        assert test.seeds.std == pytest.approx(np.std(per_seed, ddof=1))


def test_run_test_picks_each_models_entry_of_one_run(tmp_path: Path) -> None:
    """Two models in one run (low-shot's checkpoint and random init): `run_test` with the
    rows' sha256s pairs each model's own hits."""
    a, b = np.arange(40) % 2 == 0, np.arange(40) % 5 == 0
    entries = [dataclasses.replace(correct_outcomes("val", "all/2-shot", "top1", "L", hits, 0),
                                   model_sha256=sha) for hits, sha in ((a, "a" * 64),
                                                                       (b, "b" * 64))]
    path = write_outcomes(tmp_path / "one.safetensors", entries)
    refs = pd.DataFrame([{"run_id": "r", "split": "val", "layer": "all/2-shot",
                          "metric": "top1", "seed": 0, "kind": "correct", "listing": "L",
                          "n_items": 40, "path": str(path)}], columns=list(OUTCOME_FIELDS))
    test = run_test(OutcomeIndex(refs), "r", "r", "val", "all/2-shot", "top1", seeds=(0, 0),
                    models=("a" * 64, "b" * 64), resamples=100)
    assert test.delta.delta == pytest.approx(100 * (a.mean() - b.mean()))
    assert test.delta.p == pytest.approx(mcnemar_p(a, b))
