"""Model cards: YAML front matter with model-index from the store, readable sections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import dcbench
from dcbench.core.errors import UserError
from dcbench.leaderboards.cards import build_model_card, card_for, write_card
from dcbench.leaderboards.store import ResultsStore
from dcbench.models.model_card import hub_license

CONFIG = {"arch": "alexnet_small", "sobel": True, "num_classes": 0, "input_size": 64,
          "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
          "taps": ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]}


def row(**overrides: object) -> dict:
    base = dict(run_id="r", model="tiny", model_sha256="ab" * 32, protocol="linear-conv",
                dialect="dc2018", dataset="synth", split="val", layer="conv3", metric="top1",
                value=50.0, seed=0, config_hash="c", timestamp="2026-11-24T10:00:00+00:00")
    base.update(overrides)
    return base


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_card_front_matter_and_sections() -> None:
    rows = [row(value=50.0), row(seed=1, run_id="r2", value=54.0),
            row(protocol="voc07-det", dataset="voc2007", split="test", layer="all",
                metric="map", value=12.5),
            row(value=1.0, config_hash="old", run_id="old", timestamp="2025-01-01T00:00:00")]
    card = build_model_card(CONFIG, name="tiny", provenance={"weights_sha256": "ab" * 32,
                                                              "license": "CC BY-NC 4.0"},
                            eval_rows=rows, training={"epochs": 3, "optim": {"lr": 0.05}})
    meta = front_matter(card)
    assert meta["library_name"] == "dcbench" and meta["license"] == "cc-by-nc-4.0"
    assert {"dcbench", "alexnet_small", "sobel"} <= set(meta["tags"])
    (entry,) = meta["model-index"]
    assert entry["name"] == "tiny"
    found = {(r["task"]["name"], r["dataset"]["type"], m["config"]): m["value"]
             for r in entry["results"] for m in r["metrics"]}
    # mean of the current config's seeds (50, 54); the stale 1.0 is left out
    assert found == {("linear-conv (dc2018)", "synth", "conv3"): 52.0,
                     ("voc07-det (dc2018)", "voc2007", "all"): 12.5}
    det = next(r for r in entry["results"] if r["task"]["name"].startswith("voc07-det"))
    assert det["task"]["type"] == "object-detection"
    for section in ("## Architecture", "## Sobel", "## Training recipe", "## Data",
                    "## Provenance", "## Results", "## Usage"):
        assert section in card
    assert "| optim.lr | 0.05 |" in card
    assert "52.0 ± 2.83" in card  # sample std of 50 and 54


def test_card_without_results_or_training() -> None:
    card = build_model_card({**CONFIG, "sobel": False}, name="bare", provenance={},
                            eval_rows=[], training=None)
    meta = front_matter(card)
    assert "model-index" not in meta and "rgb" in meta["tags"] and meta["license"] == "other"
    assert "No results in the store" in card and "Not recorded" in card
    with pytest.raises(UserError, match="arch"):
        build_model_card({}, name="x", provenance={}, eval_rows=[], training=None)


def test_hub_license() -> None:
    assert hub_license("MIT") == "mit"
    assert hub_license("CC BY-NC 4.0") == "cc-by-nc-4.0"
    assert hub_license(None) == "other"


@pytest.fixture
def run_dir(tmp_path: Path) -> tuple[Path, str]:
    from dcbench.models.checkpoints import save_hub_dir

    model = dcbench.load_model("random-alexnet_small-sobel")
    run = tmp_path / "tiny-run"
    save_hub_dir(model, run / "final")
    (run / "config.yaml").write_text("epochs: 2\nclustering:\n  k: 16\ndata: synth/train\n")
    (run / "versions.json").write_text(json.dumps({"torch": "2.14.1"}))
    (run / "log.jsonl").write_text("\n".join(
        json.dumps({"epoch": e, "nmi_prev": 0.5 + e / 10, "train_loss": 3.0 - e})
        for e in range(2)) + "\n")
    return run, model.weights_sha256()


def test_card_for_run_dir_reads_store(run_dir, tmp_path) -> None:
    run, sha = run_dir
    store = ResultsStore(tmp_path / "s.sqlite")
    store.add_results([row(model="runs/tiny-run/final", model_sha256=sha, value=61.0),
                       row(model="someone-else", model_sha256="ff" * 32, value=1.0)])
    card = card_for(run, store)
    meta = front_matter(card)
    values = [m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]]
    assert values == [61.0]
    assert meta["model-index"][0]["name"] == "tiny-run"
    assert "| clustering.k | 16 |" in card and "| epochs_completed | 2 |" in card
    assert "| final_nmi_prev | 0.6 |" in card and sha in card
    assert "`synth/train`" in card and "versions.torch" in card


def test_write_card_and_hub_card_cli(run_dir, tmp_path) -> None:
    run, sha = run_dir
    store_path = tmp_path / "s.sqlite"
    ResultsStore(store_path).add_results([row(model_sha256=sha, value=44.0)])
    path = write_card(run, store_path=store_path)
    assert path == run / "final" / "README.md"
    assert front_matter(path.read_text())["model-index"][0]["results"][0]["metrics"][0][
        "value"] == 44.0
    path.unlink()
    assert dcbench.cli.entry.main(["hub", "card", str(run), "--store", str(store_path)]) == 0
    assert "model-index" in path.read_text()
    with pytest.raises(UserError, match="neither a hub folder"):
        write_card(tmp_path, store_path=store_path)


def test_card_for_catalog_name(tmp_path) -> None:
    model = dcbench.load_model("random-alexnet_small-sobel")
    store = ResultsStore(tmp_path / "s.sqlite")
    store.add_results([row(model="random-alexnet_small-sobel", model_sha256="00" * 32,
                           value=20.0)])
    card = card_for("random-alexnet_small-sobel", store)
    assert model.weights_sha256() in card
    assert front_matter(card)["model-index"][0]["results"][0]["metrics"][0]["value"] == 20.0
    assert "Random-init" in card  # catalog description in the provenance
