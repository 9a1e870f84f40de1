"""Paired intervals for low-shot, the VOC07 SVMs and retrieval: `dcbench eval` keeps the
per-item outcomes, `leaderboard compare` (and `leaderboard add --from`) pairs them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dcbench.data.synthetic_retrieval import write_retrieval_set

MODELS = {"a": "random-alexnet_small-sobel", "b": "arch:alexnet_small?sobel=1&seed=7"}
INTERVAL = r"[-+][\d.]+ \[[-+][\d.]+, [-+][\d.]+\] p="


def _line(out: str, start: str) -> str:
    return next(ln for ln in out.splitlines() if ln.startswith(start))


def _rows(out: str) -> list[str]:
    """The table rows of a compare output (after the header and its rule)."""
    return [ln for ln in out.splitlines() if ln.startswith("|")][2:]


def _two_models(cli, tmp_path: Path, protocol: str, data: Path, *options: str) -> Path:
    store = tmp_path / "s.sqlite"
    for name, spec in MODELS.items():
        assert cli("eval", "--protocol", protocol, "--model", spec, "--name", f"model-{name}",
                   "--data", data, "--schedule", "smoke", "--no-progress", *options,
                   "--out", tmp_path / f"run_{name}", "--store", store) == 0
    return store


def test_low_shot_checkpoint_vs_random_init_in_one_run(cli, capsys, cls_set, tmp_path):
    """One low-shot run holds both inits: each pairs with its own entries (by sha256), the
    per-draw top1 gives the item interval of draw 0 and the spread over draws apart, and
    top1_mean the interval over images with the draws held fixed."""
    store = tmp_path / "s.sqlite"
    assert cli("eval", "--protocol", "low-shot", "--model", MODELS["b"], "--name", "mine",
               "--data", cls_set, "--schedule", "smoke", "--set", "shots=[2]", "--set",
               "draws=2", "--set", "iterations=2", "--set", "eval_every=2", "--no-progress",
               "--out", tmp_path / "run", "--store", store) == 0
    capsys.readouterr()
    assert cli("leaderboard", "compare", "mine", "random-alexnet_small", "--store", store) == 0
    out = capsys.readouterr().out
    assert "2 tests made" in out
    assert re.search(INTERVAL + r"[\d.e<-]+; seeds: [-+][\d.]+ \+- [\d.]+ \(2 seeds\)",
                     _line(out, "| top1 "))
    assert re.search(INTERVAL, _line(out, "| top1_mean "))
    assert "no per-item data" in _line(out, "| top1_std ")
    other = tmp_path / "other.sqlite"
    assert cli("leaderboard", "add", "--from", tmp_path / "run", "--store", other) == 0
    capsys.readouterr()
    assert cli("leaderboard", "compare", "mine", "random-alexnet_small", "--store", other) == 0
    assert capsys.readouterr().out == out


def test_voc07_svm_and_lowshot_svm_map_intervals(cli, capsys, voc_set, tmp_path):
    store = _two_models(cli, tmp_path / "svm", "voc07-svm", voc_set, "--layers", "conv5")
    capsys.readouterr()
    assert cli("leaderboard", "compare", "model-a", "model-b", "--store", store,
               "--metric", "map") == 0
    out = capsys.readouterr().out
    assert "1 test made" in out and re.search(INTERVAL, _rows(out)[-1])
    store = _two_models(cli, tmp_path / "low", "voc07-lowshot-svm", voc_set, "--layers",
                        "conv5", "--set", "shots=[1]")
    capsys.readouterr()
    assert cli("leaderboard", "compare", "model-a", "model-b", "--store", store,
               "--metric", "map") == 0
    out = capsys.readouterr().out
    assert "layer conv5/k1" in out
    assert re.search(INTERVAL + r"[\d.e<-]+; seeds: .* \(2 seeds\)", _rows(out)[-1])


@pytest.fixture(scope="module")
def ret_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_retrieval_set(tmp_path_factory.mktemp("ret") / "set", landmarks=3,
                               per_landmark=4, distractors=4, size=96)


def test_retrieval_map_intervals_per_dataset(cli, capsys, ret_set, tmp_path):
    store = _two_models(cli, tmp_path, "retrieval", ret_set)
    capsys.readouterr()
    assert cli("leaderboard", "compare", "model-a", "model-b", "--store", store,
               "--metric", "map") == 0
    out = capsys.readouterr().out
    assert "2 tests made" in out
    for dataset in ("oxford5k", "paris6k"):
        assert re.search(INTERVAL, _line(out, f"| {dataset} ")), out
