"""Shared tiny synthetic datasets for the data tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcbench.data.synthetic import make_classification_set, make_voc_set


@pytest.fixture(scope="session")
def cls_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes x (6 train + 2 val) images of 32 px, plus 4 corrupt train files."""
    out = tmp_path_factory.mktemp("synth") / "cls"
    return make_classification_set(
        out, n_classes=4, train_per_class=6, val_per_class=2, size=32, seed=3, corrupt=4
    )


@pytest.fixture(scope="session")
def voc_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic VOCdevkit (VOC2007 + VOC2012)."""
    out = tmp_path_factory.mktemp("synth") / "voc"
    return make_voc_set(out, n_train=20, n_val=20, n_test=20, size=64, seed=5)
