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


def _detection(**arrays: np.ndarray) -> ItemOutcomes:
    base = {"npos": np.array([[1, 0], [0, 2], [0, 0]], np.int32),
            "det_image": np.array([0, 2, 1], np.int32),
            "det_class": np.array([0, 0, 1], np.int16),
            "det_score": np.array([0.9, 0.5, 0.7], np.float32),
            "det_tp": np.array([1, 0, 1], np.int8)}
    return ItemOutcomes("test", "fc6-8", "map", "detection", "L", {**base, **arrays}, 0,
                        {"ap_method": "11point", "ap_thresholds": "devkit"})


def test_detection_records_round_trip_with_their_rule(tmp_path: Path) -> None:
    """Records have their own length (not one per image); the AP rule travels along."""
    entries = [_detection(), correct_outcomes("val", "conv5", "top1", "abc", np.ones(2, bool))]
    path = write_outcomes(tmp_path / "outcomes.safetensors", entries)
    back = read_outcomes(path)
    assert back[0].n_items == 3 and back[0].options == entries[0].options
    assert back[1].options == {}  # kinds without a rule write none (older bytes unchanged)
    for name, array in entries[0].arrays.items():
        np.testing.assert_array_equal(back[0].arrays[name], array)
        assert back[0].arrays[name].dtype == array.dtype
    assert to_bytes(entries) == to_bytes(read_outcomes(path)) == path.read_bytes()


def test_bad_detection_records_are_refused() -> None:
    with pytest.raises(ValueError, match="one row per record"):
        _detection(det_tp=np.array([1, 0], np.int8))
    with pytest.raises(ValueError, match=r"item rows must be in \[0, 3\)"):
        _detection(det_image=np.array([0, 3, 1], np.int32))
    with pytest.raises(ValueError, match=r"classes must be in \[0, 2\)"):
        _detection(det_class=np.array([0, 2, 1], np.int16))
    with pytest.raises(ValueError, match="0 \\(FP\\) or 1"):
        _detection(det_tp=np.array([1, 2, 0], np.int8))
    with pytest.raises(ValueError, match="one row per item"):
        ItemOutcomes("test", "x", "map", "multilabel", "L",
                     {"scores": np.ones((2, 2)), "targets": np.ones((3, 2), np.int8)})
    with pytest.raises(ValueError, match="options"):
        ItemOutcomes("val", "x", "top1", "correct", "L", {"correct": np.ones(2)}, None,
                     {"ap_method": 11})
