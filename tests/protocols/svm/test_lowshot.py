"""Low-shot draws: counts, pools, determinism, save/load, targets."""

from __future__ import annotations

import numpy as np
import pytest

from dcbench.core.errors import UserError
from dcbench.protocols.svm.lowshot import draw_lowshot, draw_targets, load_draws, save_draws

CLASSES = ["a", "b", "c"]


def _labels(seed=0, n=60):
    rng = np.random.default_rng(seed)
    return rng.choice([1, -1, -1, 0], size=(n, 3)).astype(np.int8)


def test_counts_pools_and_determinism():
    labels = _labels()
    ids = [f"{i:06d}" for i in range(len(labels))]
    draws, skipped = draw_lowshot(labels, ids, CLASSES, [1, 2, 4, 50], 3, seed=0)
    assert skipped == [50] and len(draws) == 3
    row = {i: r for r, i in enumerate(ids)}
    for draw in draws:
        for k in (1, 2, 4):
            for c, name in enumerate(CLASSES):
                pos, neg = draw[k][name]["pos"], draw[k][name]["neg"]
                assert len(set(pos)) == k and len(set(neg)) == (len(CLASSES) - 1) * k
                assert all(labels[row[i], c] == 1 for i in pos)
                assert all(labels[row[i], c] == -1 for i in neg)  # never a difficult one
    again, _ = draw_lowshot(labels, ids, CLASSES, [1, 2, 4], 3, seed=0)
    assert again == draws
    other, _ = draw_lowshot(labels, ids, CLASSES, [4], 1, seed=1)
    assert other[0][4] != draws[0][4]


def test_save_load_and_targets(tmp_path):
    labels = _labels(1)
    ids = [f"id{i}" for i in range(len(labels))]
    draws, _ = draw_lowshot(labels, ids, CLASSES, [2], 2, seed=0)
    save_draws(tmp_path / "d.json", draws, CLASSES, 0)
    assert load_draws(tmp_path / "d.json", CLASSES) == draws
    targets = draw_targets(draws[0][2], ids, CLASSES)
    assert ((targets == 1).sum(0) == 2).all() and ((targets == -1).sum(0) == 4).all()
    with pytest.raises(UserError, match="not available"):
        draw_targets(draws[0][2], ids[:5], CLASSES)
    with pytest.raises(UserError):
        load_draws(tmp_path / "d.json", ["x"])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError):
        load_draws(tmp_path / "bad.json", CLASSES)
