"""The per-item outcomes file: round trip, reproducible bytes, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dcbench.core.errors import UserError
from dcbench.core.outcomes import (
    ItemOutcomes,
    correct_outcomes,
    read_outcomes,
    to_bytes,
    write_outcomes,
)


def test_round_trip_and_same_bytes(tmp_path: Path) -> None:
    entries = [
        correct_outcomes("val", "conv5", "top1", "abc", np.array([1, 0, 1], bool), seed=3),
        ItemOutcomes("test", "all", "map", "multilabel", "def",
                     {"scores": np.zeros((2, 3), np.float32),
                      "targets": np.array([[1, 0, -1], [0, 1, 1]], np.int8)}),
    ]
    path = write_outcomes(tmp_path / "outcomes.safetensors", entries)
    back = read_outcomes(path)
    assert [e.key() for e in back] == [e.key() for e in entries]
    assert back[0].seed == 3 and back[0].listing == "abc" and back[0].n_items == 3
    np.testing.assert_array_equal(back[0].arrays["correct"], [1, 0, 1])
    np.testing.assert_array_equal(back[1].arrays["targets"], entries[1].arrays["targets"])
    assert to_bytes(entries) == path.read_bytes()


def test_bad_entries_and_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind"):
        ItemOutcomes("val", "x", "top1", "nope", "L", {"correct": np.ones(2)})
    with pytest.raises(ValueError, match="need arrays"):
        ItemOutcomes("val", "x", "map", "multilabel", "L", {"scores": np.ones((2, 2))})
    bad = tmp_path / "outcomes.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="not a dcbench per-item outcomes file"):
        read_outcomes(bad)


def test_dataset_and_model_are_kept_only_when_set(tmp_path: Path) -> None:
    """Entries of runs with several datasets or models name theirs; a file of entries that
    name neither has the bytes it had before those fields existed (no null keys)."""
    plain = correct_outcomes("val", "conv5", "top1", "abc", np.array([1, 0], bool), seed=3)
    named = ItemOutcomes("test", "rmac", "map", "mean", "L", {"values": np.array([0.5, 1.0])},
                         dataset="paris6k", model_sha256="f" * 64)
    back = read_outcomes(write_outcomes(tmp_path / "o.safetensors", [plain, named]))
    assert (back[0].dataset, back[0].model_sha256) == (None, None)
    assert (back[1].dataset, back[1].model_sha256) == ("paris6k", "f" * 64)
    assert b"dataset" not in to_bytes([plain]) and b"model_sha256" not in to_bytes([plain])
