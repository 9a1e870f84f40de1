"""Recipes and TrainConfig resolution."""

from __future__ import annotations

import pytest

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.training.config import TrainConfig, list_recipes, resolve_config

TABLE_5_1 = {  # thesis Table 5.1: clustering, k, Sobel, LR, WD
    "pic-imnet-sob": ("pic", None, True, 0.05, 1e-5),
    "km-imnet-sob": ("kmeans", 10000, True, 0.02, 1e-5),
    "km-imnet-rgb": ("kmeans", 1000, False, 0.02, 1e-6),
    "km-fl1m-sob": ("kmeans", 10000, True, 0.02, 1e-5),
    "km-fl2m-sob": ("kmeans", 10000, True, 0.02, 1e-5),
}


def test_all_recipes_ship_and_resolve() -> None:
    names = list_recipes()
    assert set(TABLE_5_1) | {"deepcluster-alexnet", "deepcluster-vgg16", "tiny"} <= set(names)
    for name in names:
        assert isinstance(resolve_config(name), TrainConfig)


@pytest.mark.parametrize("name", sorted(TABLE_5_1))
def test_table_5_1_settings(name: str) -> None:
    clustering, k, sobel, lr, wd = TABLE_5_1[name]
    c = resolve_config(name)
    assert (c.clustering, c.sobel, c.lr, c.weight_decay) == (clustering, sobel, lr, wd)
    if k is not None:
        assert c.k == k
    assert c.arch == "alexnet" and c.batch_size == 256 and c.momentum == 0.9


def test_flickr_2m_uses_a_fresh_subset_each_epoch() -> None:
    assert resolve_config("km-fl2m-sob").subset_size == 1_200_000
    assert resolve_config("km-fl1m-sob").subset_size == 0


def test_official_release_settings() -> None:
    c = resolve_config("deepcluster-alexnet")
    assert (c.k, c.lr, c.weight_decay, c.seed, c.pca_dim, c.kmeans_iters) == (
        10000, 0.05, 1e-5, 31, 256, 20)
    assert resolve_config("deepcluster-vgg16").arch == "vgg16"


def test_overrides_and_refusals() -> None:
    c = resolve_config("tiny", ["k=20", "crop_scale=[0.3,1.0]"], epochs=3)
    assert (c.k, c.crop_scale, c.epochs) == (20, (0.3, 1.0), 3)
    with pytest.raises(UserError, match="unknown config key"):
        resolve_config("tiny", ["kk=3"])
    with pytest.raises(UserError, match="Did you mean tiny"):
        resolve_config("tiyn")
    with pytest.raises(UserError, match="batch_size"):
        resolve_config("tiny", ["batch_size=0"])
    with pytest.raises(UserError, match="one of"):
        resolve_config("tiny", ["clustering=spectral"])


def test_cli_lists_recipes_and_reports_missing_args(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--list-recipes"]) == 0
    assert "km-imnet-rgb" in capsys.readouterr().out
    assert main(["train", "--recipe", "tiny"]) == 2
    assert "--data, --out" in capsys.readouterr().err
