"""A malformed low-shot samples file is one clear error (issue 19), never a KeyError or
TypeError deep in the SVM loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcbench.core.errors import UserError
from dcbench.protocols.svm.lowshot import load_draws, save_draws

CLASSES = ["cat", "dog"]
GOOD = [{2: {"cat": {"pos": ["a"], "neg": ["b"]}, "dog": {"pos": ["b"], "neg": ["a"]}}}]


def _file(tmp_path: Path, payload: object) -> Path:
    path = tmp_path / "samples.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


def _with_samples(samples: object) -> dict:
    return {"format": 1, "seed": 0, "classes": CLASSES, "samples": samples}


@pytest.mark.parametrize("payload", [
    "[1, 2, 3]", "null", '"text"', "[" * 100_000,
    {"format": 1, "classes": CLASSES},
    _with_samples([]), _with_samples({"0": 1}), _with_samples([1]),
    _with_samples([{"x": GOOD[0][2]}]), _with_samples([{"0": GOOD[0][2]}]),
    _with_samples([{"2": {"cat": {"pos": ["a"], "neg": ["b"]}}}]),
    _with_samples([{"2": {"cat": {"pos": ["a"]}, "dog": {"pos": ["b"], "neg": ["a"]}}}]),
    _with_samples([{"2": {"cat": {"pos": "a", "neg": ["b"]},
                          "dog": {"pos": ["b"], "neg": ["a"]}}}]),
    _with_samples([{"2": {"cat": {"pos": [1], "neg": ["b"]},
                          "dog": {"pos": ["b"], "neg": ["a"]}}}]),
    _with_samples([{"2": ["cat", "dog"]}]),
], ids=lambda p: str(p)[:40])
def test_malformed_samples_files_are_user_errors(tmp_path: Path, payload: object) -> None:
    with pytest.raises(UserError) as err:
        load_draws(_file(tmp_path, payload), CLASSES)
    assert "\n" not in str(err.value)


def test_a_well_formed_file_round_trips(tmp_path: Path) -> None:
    save_draws(tmp_path / "d.json", GOOD, CLASSES, 0)
    assert load_draws(tmp_path / "d.json", CLASSES) == GOOD
