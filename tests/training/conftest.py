"""Shared fixtures: a micro image folder and the micro training settings used by the loop tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcbench.data.synthetic import make_classification_set

# 8 classes x 5 images at 32 px: a whole epoch takes well under a second on one core
MICRO_OVERRIDES = [
    "arch=alexnet_small", "k=6", "pca_dim=12", "batch_size=8", "input_size=32",
    "resize=32", "crop_scale=[0.5,1.0]", "workers=0", "device=cpu", "knn_ratio_k=3",
]


@pytest.fixture(scope="session")
def micro_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`root/train/CLASS/*.png` with 40 good images and 2 corrupt files."""
    root = tmp_path_factory.mktemp("micro")
    make_classification_set(root / "set", train_per_class=5, val_per_class=1, size=32, seed=3,
                            corrupt=2)
    return root / "set" / "train"
