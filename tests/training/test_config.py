"""Recipes and TrainConfig resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.metrics import normalized_mutual_info_score

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.data.samplers import DistributedUniformLabelSampler
from dcbench.training import deepcluster
from dcbench.training.config import (
    PRESETS,
    TrainConfig,
    list_recipes,
    recipe_description,
    resolve_config,
    shipped_recipes,
)
from dcbench.training.rundir import RunDir

from .conftest import MICRO_OVERRIDES

TABLE_5_1 = {  # thesis Table 5.1: clustering, k, Sobel, LR, WD
    "pic-imnet-sob": ("pic", None, True, 0.05, 1e-5),
    "km-imnet-sob": ("kmeans", 10000, True, 0.02, 1e-5),
    "km-imnet-rgb": ("kmeans", 1000, False, 0.02, 1e-6),
    "km-fl1m-sob": ("kmeans", 10000, True, 0.02, 1e-5),
    "km-fl2m-sob": ("kmeans", 10000, True, 0.02, 1e-5),
}
# epochs, written from the sources: ECCV section 3.4 and deepcluster issue #32 (the released
# AlexNet: 500), thesis chapter 5 (500 on ImageNet, 167 x 3 updates on YFCC100M), and the
# main.py default (200) for VGG16, whose epoch count no paper gives
EPOCHS = {"deepcluster-alexnet": 500, "deepcluster-vgg16": 200, "pic-imnet-sob": 500,
          "km-imnet-sob": 500, "km-imnet-rgb": 500, "km-fl1m-sob": 167, "km-fl2m-sob": 167}
MAIN_SH = {"sobel": True, "clustering": "kmeans", "k": 10000, "lr": 0.05, "weight_decay": 1e-5,
           "momentum": 0.9, "batch_size": 256, "reassign": 1.0, "seed": 31, "pca_dim": 256,
           "kmeans_iters": 20}


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


@pytest.mark.parametrize("name", sorted(EPOCHS))
def test_recipe_epochs_and_release_settings_match_the_sources(name: str) -> None:
    c = resolve_config(name)
    assert c.epochs == EPOCHS[name]
    if name.startswith("deepcluster-"):
        assert {key: getattr(c, key) for key in MAIN_SH} == MAIN_SH
        assert c.arch == name.removeprefix("deepcluster-")
    if name in ("pic-imnet-sob",):  # official PIC settings (clustering.py)
        assert (c.pic_nnn, c.pic_sigma, c.pic_alpha, c.pic_iters, c.pic_singletons) == (
            5, 0.2, 0.001, 200, "redistribute")
    assert str(EPOCHS[name]) in recipe_description(name)


def test_defaults_are_ours_and_the_preset_turns_every_switch() -> None:
    plain = resolve_config("deepcluster-alexnet")
    assert (plain.sampler, plain.pic_dtype, plain.nmi_average, plain.diagnostics_max) == (
        "uniform", "float64", "arithmetic", 20000)
    faithful = resolve_config("deepcluster-alexnet+faithful-2018")
    assert (faithful.sampler, faithful.nmi_average, faithful.diagnostics_max) == (
        "official-2018", "geometric", 0)
    # the 2018 code ran PIC under NumPy 1.x, where its W and iteration were float64
    assert faithful.pic_dtype == "float64"
    # everything else is the recipe's, and --set still wins over the preset
    assert {k: v for k, v in vars(faithful).items() if k not in PRESETS["faithful-2018"]} == {
        k: v for k, v in vars(plain).items() if k not in PRESETS["faithful-2018"]}
    assert resolve_config("pic-imnet-sob+faithful-2018", ["sampler=uniform"]).sampler == "uniform"
    names = list_recipes()
    assert all(f"{n}+faithful-2018" in names for n in shipped_recipes())
    with pytest.raises(UserError, match="unknown preset"):
        resolve_config("tiny+faithful-2019")
    with pytest.raises(UserError, match="one of"):
        resolve_config("tiny", ["sampler=official"])


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
    listed = capsys.readouterr().out
    assert "km-imnet-rgb" in listed and "deepcluster-alexnet+faithful-2018" in listed
    assert main(["train", "--recipe", "tiny"]) == 2
    assert "--data, --out" in capsys.readouterr().err


def test_faithful_preset_reaches_the_training_loop(
    micro_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules: list[str] = []

    class Recording(DistributedUniformLabelSampler):
        def __init__(self, *args, **kwargs) -> None:
            rules.append(kwargs.get("rule", "uniform"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(deepcluster, "DistributedUniformLabelSampler", Recording)
    config = resolve_config("tiny+faithful-2018", MICRO_OVERRIDES, epochs=2)
    deepcluster.train(config, micro_data, tmp_path / "run")
    assert rules == ["official-2018", "official-2018"]
    run = RunDir(tmp_path / "run")
    a, b = run.load_assignment(1), run.load_assignment(0)
    both = (a >= 0) & (b >= 0)
    expected = normalized_mutual_info_score(a[both], b[both], average_method="geometric")
    assert run.read_log()[1]["nmi_prev"] == pytest.approx(expected, abs=1e-12)


def test_runs_saved_before_the_fidelity_keys_still_resume(micro_data: Path, tmp_path: Path
                                                          ) -> None:
    out = tmp_path / "run"
    deepcluster.train(resolve_config("tiny", MICRO_OVERRIDES, epochs=1), micro_data, out)
    saved = RunDir(out).config
    new_keys = ("sampler:", "pic_dtype:", "nmi_average:")
    saved.write_text("".join(line for line in saved.read_text().splitlines(keepends=True)
                             if not line.startswith(new_keys)))
    deepcluster.train(resolve_config("tiny", MICRO_OVERRIDES, epochs=2), micro_data, out,
                      resume=True)
    assert [r["epoch"] for r in RunDir(out).read_log()] == [0, 1]
    with pytest.raises(UserError, match="different settings: .*sampler"):
        deepcluster.train(resolve_config("tiny+faithful-2018", MICRO_OVERRIDES, epochs=3),
                          micro_data, out, resume=True)
