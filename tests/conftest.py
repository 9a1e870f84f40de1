"""Shared test setup (an isolated DCBENCH_HOME, offline Hub, few threads, quiet progress bars)
and the tiny built-in datasets and networks that tests across the layers share."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TQDM_DISABLE"] = "1"

import dcbench
import dcbench.cli.entry
from dcbench.data.synthetic import make_classification_set, make_voc_set
from dcbench.models import create_backbone


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own empty $DCBENCH_HOME (hub cache, features, results)."""
    home = tmp_path_factory.mktemp("dcbench_home")
    monkeypatch.setenv("DCBENCH_HOME", str(home))
    return home


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Callable[..., int]:
    """`cli("leaderboard", "list")` -> exit status, via the real entry point (home in tmp_path)."""
    monkeypatch.setenv("DCBENCH_HOME", str(tmp_path / "home"))
    return lambda *argv: dcbench.cli.entry.main([str(a) for a in argv])


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
    return create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)


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
