"""Shared fixtures: a tiny built-in image folder and the small 64-px networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dcbench
from dcbench.data.synthetic import make_classification_set


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 shape classes x 6 train / 3 val images of 64 px, plus one undecodable train file."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("viz") / "cls"
    return make_classification_set(out, train_per_class=6, val_per_class=3, corrupt=1, seed=0)


@pytest.fixture(scope="session")
def small_sobel():
    """Random-init alexnet_small with the Sobel front-end (seed 0)."""
    return dcbench.load_model("random-alexnet_small-sobel")


@pytest.fixture(scope="session")
def small_rgb():
    """Random-init alexnet_small on RGB (seed 1)."""
    return dcbench.load_model("arch:alexnet_small?sobel=0&seed=1")
