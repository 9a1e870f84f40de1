"""Fixtures for the protocol tests: a tiny synthetic ImageFolder and a small random network."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcbench.data.synthetic import make_classification_set


@pytest.fixture(scope="session")
def cls_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`root/{train,val}/CLASS/*.png`: 4 classes, 16 train + 6 val images each, 64 px."""
    root = tmp_path_factory.mktemp("cls") / "set"
    make_classification_set(root, n_classes=4, train_per_class=16, val_per_class=6, size=64,
                            seed=0)
    return root


@pytest.fixture()
def small_net():
    """A random-init 64-px AlexNet-Sobel (the built-in data's architecture), seed 0."""
    from dcbench.models import create_backbone

    return create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
