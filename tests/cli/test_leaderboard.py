"""`dcbench leaderboard list|show|compare|add|report` end to end through the CLI."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import pytest

from dcbench.leaderboards.store import ResultsStore


def result(**overrides: object) -> dict:
    base = dict(run_id="cluster-1", model="deepcluster-alexnet", model_sha256="ab" * 32,
                protocol="linear-conv", dialect="dc2018", dataset="imagenet", split="val",
                layer="conv3", metric="top1_best_epoch", value=41.3, seed=0,
                config_hash="c1", dcbench_version="0.1.0", code_revision="abc",
                device="cuda:H100", timestamp="2026-11-24T10:00:00+00:00")
    base.update(overrides)
    return base


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    rows = [result(seed=0, value=41.0), result(seed=1, value=42.0, run_id="cluster-2"),
            result(layer="conv1", value=13.0),
            result(model="random-alexnet-sobel", model_sha256="cd" * 32, value=18.0)]
    path.write_text(json.dumps({"run": {"run_id": "cluster-1", "kind": "eval",
                                        "config": {"lr": 0.01}, "device": "cuda:H100"},
                                "results": rows}))
    return path


def test_list(cli, capsys) -> None:
    assert cli("leaderboard", "list") == 0
    out = capsys.readouterr().out
    assert re.search(r"\| eccv-table2 +\| PASCAL VOC transfer", out)
    assert "thesis-5.5" in out and "rows" in out


def test_add_then_show_md(cli, capsys, results_file, tmp_path) -> None:
    store = tmp_path / "s.sqlite"
    assert cli("leaderboard", "add", results_file, "--store", store) == 0
    assert "imported 4 result row(s) and 1 run record(s)" in capsys.readouterr().out
    assert cli("leaderboard", "add", results_file, "--store", store) == 0  # idempotent
    assert len(ResultsStore(store).results()) == 4
    assert ResultsStore(store).runs().config.tolist() == [{"lr": 0.01}]

    assert cli("leaderboard", "show", "eccv-table1-imagenet", "--results",
               "--store", store) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "deepcluster-alexnet (ours)" in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert "41.5 ± 0.71" in cells  # mean and sample std of 41.0 and 42.0
    assert "+0.5" in cells  # 41.5 - 41.0
    assert "-0.4" in cells  # conv1: 13.0 - 13.4


def test_show_without_results_is_published_only(cli, capsys, results_file, tmp_path) -> None:
    store = tmp_path / "s.sqlite"
    cli("leaderboard", "add", results_file, "--store", store)
    capsys.readouterr()
    assert cli("leaderboard", "show", "eccv-table1-imagenet", "--store", store) == 0
    assert "(ours)" not in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["csv", "latex", "html", "md"])
def test_show_formats_to_file(cli, results_file, tmp_path, fmt) -> None:
    store, out = tmp_path / "s.sqlite", tmp_path / f"table.{fmt}"
    cli("leaderboard", "add", results_file, "--store", store)
    assert cli("leaderboard", "show", "eccv-table1-imagenet", "--results", "--format", fmt,
               "--output", out, "--store", store) == 0
    text = out.read_text(encoding="utf-8")
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        mine = next(r for r in rows if r["method"] == "deepcluster-alexnet (ours)")
        assert float(mine["conv3"]) == pytest.approx(41.5)
        assert float(mine["Δ conv3"]) == pytest.approx(0.5)
        assert mine["kind"] == "ours" and mine["seeds"] == "2"
    elif fmt == "latex":
        assert r"\begin{tabular}" in text and r"\toprule" in text
        assert r"41.5 $\pm$ 0.71" in text and r"$\Delta$ conv3" in text
        assert r"unit \%" in text
    elif fmt == "html":
        assert text.startswith("<!DOCTYPE html>")
        assert '<tr class="ours">' in text and "41.5 ± 0.71" in text
    else:
        assert text.startswith("**eccv-table1-imagenet**")


def test_compare(cli, capsys, results_file, tmp_path) -> None:
    store = tmp_path / "s.sqlite"
    cli("leaderboard", "add", results_file, "--store", store)
    capsys.readouterr()
    assert cli("leaderboard", "compare", "deepcluster-alexnet", "random-alexnet-sobel",
               "--store", store) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "41.5" in x)
    assert "layer conv3" in out  # one-valued label columns move into the heading
    # one precision per row: the values' own (1 decimal for percent), the delta too
    assert "41.5 ± 0.7" in line and "18.0" in line and "-23.5" in line
    assert "conv1" not in out  # not shared
    assert max(len(x) for x in out.splitlines()) <= 120
    assert cli("leaderboard", "compare", "deepcluster-alexnet", "random-alexnet-sobel",
               "--store", store, "--layer", "conv5") == 2  # filtered to nothing
    assert "matching the filters" in capsys.readouterr().err
    assert cli("leaderboard", "compare", "deepcluster-alexnet", "random-alexnet-sobel",
               "--store", store, "--wide", "--metric", "top1_best_epoch") == 0
    assert "n deepcluster-alexnet" in capsys.readouterr().out


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ("[]", "no result rows"),
    ('{"rows": []}', "expected a list of rows or an object"),
    (json.dumps([result(), {**result(), "value": "41"}]), "row 1: value must be a number"),
    (json.dumps([{k: v for k, v in result().items() if k != "dataset"}]),
     "missing required field(s) ['dataset']"),
    (json.dumps([{**result(), "acc": 1}]), "unknown field(s) ['acc']"),
    (json.dumps([{**result(), "timestamp": "yesterday"}]), "not ISO-8601"),
    (json.dumps({"run": {"kind": "eval"}, "results": [result()]}), "run_id must be"),
])
def test_add_malformed_exits_2_and_writes_nothing(cli, capsys, tmp_path, content,
                                                  message) -> None:
    bad, store = tmp_path / "bad.json", tmp_path / "s.sqlite"
    bad.write_text(content)
    assert cli("leaderboard", "add", bad, "--store", store) == 2
    err = capsys.readouterr().err
    assert err.startswith("dcbench: error: ") and message in err
    assert not store.exists()
    # and with an existing store: still nothing written
    ResultsStore(store).add_results([result(run_id="keep")])
    assert cli("leaderboard", "add", bad, "--store", store) == 2
    assert ResultsStore(store).results().run_id.tolist() == ["keep"]


def test_add_argument_errors(cli, capsys, tmp_path) -> None:
    assert cli("leaderboard", "add", "--store", tmp_path / "s.sqlite") == 2
    assert "exactly one" in capsys.readouterr().err
    assert cli("leaderboard", "add", tmp_path / "missing.json") == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli("leaderboard", "show", "tabel-5.3") == 2
    assert "unknown table 'tabel-5.3'" in capsys.readouterr().err
    assert cli("leaderboard", "show", "eccv-table2", "--match", "x") == 2
    assert "MODEL=METHOD" in capsys.readouterr().err


def test_add_from_run_dir(cli, capsys, tmp_path) -> None:
    run_dir, store = tmp_path / "eval-run", tmp_path / "s.sqlite"
    run_dir.mkdir()
    (run_dir / "results.jsonl").write_text(
        "\n".join(json.dumps(result(layer=f"conv{i}", value=30.0 + i)) for i in range(1, 6)))
    (run_dir / "config.yaml").write_text("protocol: linear-conv\nlr: 0.01\n")
    (run_dir / "versions.json").write_text(json.dumps({"torch": "2.14.1"}))
    assert cli("leaderboard", "add", "--from", run_dir, "--store", store) == 0
    runs = ResultsStore(store).runs()
    assert runs.run_id.tolist() == ["cluster-1"]
    assert runs.config.item() == {"protocol": "linear-conv", "lr": 0.01}
    assert runs.versions.item() == {"torch": "2.14.1"}
    assert len(ResultsStore(store).results()) == 5
    empty = tmp_path / "empty-run"
    empty.mkdir()
    assert cli("leaderboard", "add", "--from", empty, "--store", store) == 2
    assert "holds none of results.json" in capsys.readouterr().err


def test_report_with_curves(cli, capsys, results_file, tmp_path) -> None:
    store, out = tmp_path / "s.sqlite", tmp_path / "report.html"
    cli("leaderboard", "add", results_file, "--store", store)
    run_dir = tmp_path / "train-run"
    run_dir.mkdir()
    lines = [json.dumps({"epoch": e, "clustering_loss": 1.0 / (e + 1), "train_loss": 5.0 - e,
                         "nmi_prev": 0.5 + 0.05 * e, "nmi_labels": 0.1 * e})
             for e in range(4)]
    lines.insert(2, json.dumps({"epoch": 99, "note": "no curves here"}))
    (run_dir / "log.jsonl").write_text("\n".join(lines) + '\n{"epoch": 4, "train_lo')
    assert cli("leaderboard", "report", "--run", run_dir, "--output", out,
               "--store", store) == 0
    html = out.read_text(encoding="utf-8")
    assert "eccv-table1-imagenet" in html and "thesis-5.3" in html  # tables with results
    assert "thesis-5.5" not in html and "eccv-table2" not in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 1
    assert base64.b64decode(images[0]).startswith(b"\x89PNG\r\n\x1a\n")
    assert cli("leaderboard", "report", "--run", tmp_path, "--output", out,
               "--store", store) == 2
    assert "no log.jsonl" in capsys.readouterr().err
    assert cli("leaderboard", "report", "--table", "eccv-tabel2", "--output", out,
               "--store", store) == 2
    assert "unknown table 'eccv-tabel2'" in capsys.readouterr().err
    assert cli("leaderboard", "report", "--table", "eccv-table2", "--output", out,
               "--store", store) == 0
    page = out.read_text()
    assert '<h2 id="published-eccv-table2">Published: ' in page and "base64" not in page
    # named, but nothing of ours is measured like it: said so, no delta promised
    assert '<p class="note">No result of yours is comparable' in page
    assert "comparable rows and deltas" not in page
    assert out.stat().st_mode & 0o777 == 0o644  # reports are for sharing


def test_show_results_says_when_nothing_is_comparable(cli, capsys, results_file, tmp_path):
    store = tmp_path / "s.sqlite"
    cli("leaderboard", "add", results_file, "--store", store)
    capsys.readouterr()
    assert cli("leaderboard", "show", "eccv-table2", "--results", "--store", store) == 0
    captured = capsys.readouterr()
    assert "note: eccv-table2: No result of yours is comparable" in captured.err
    assert cli("leaderboard", "show", "thesis-5.3", "--results", "--store", store) == 0
    err = capsys.readouterr().err
    assert "note:" not in err  # linear-conv on imagenet: comparable
    # a delta against a published number has no per-item data: no interval is invented
    assert "deltas are against published numbers: no per-item data: no interval" in err


def test_compare_by_short_name_path_or_sha_prefix(cli, capsys, tmp_path) -> None:
    """Rows an older dcbench stored under absolute and relative paths: one model each."""
    demo = tmp_path / "demo" / "models"
    rows = [result(model=str(demo / "tiny-sobel"), model_sha256="aa" * 32, value=40.0),
            result(model="demo/models/tiny-sobel", model_sha256="aa" * 32, value=42.0,
                   seed=1, run_id="cluster-2"),
            result(model=str(demo / "random-sobel"), model_sha256="bb" * 32, value=20.0)]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(rows))
    store = tmp_path / "s.sqlite"
    cli("leaderboard", "add", path, "--store", store)
    capsys.readouterr()
    for specs in (["tiny-sobel", "random-sobel"], [str(demo / "tiny-sobel"), "bbbbbb"]):
        assert cli("leaderboard", "compare", *specs, "--store", store) == 0
        out = capsys.readouterr().out
        line = next(x for x in out.splitlines() if "41.0" in x)
        assert "41.0 ± 1.4" in line and "20.0" in line and "-21.0" in line
        assert str(tmp_path) not in out and "tiny-sobel" in out
    assert cli("leaderboard", "compare", "tiny-sobel", "aaaaaaaa", "--store", store) == 2
    assert "names the same model" in capsys.readouterr().err


def test_report_of_one_model_by_name(cli, capsys, tmp_path) -> None:
    rows = [result(model=str(tmp_path / "m" / "tiny-sobel"), model_sha256="aa" * 32),
            result(model="random-alexnet-sobel", model_sha256="cd" * 32, value=18.0,
                   run_id="r"),
            result(model="someone-else", model_sha256="ef" * 32, dataset="places205",
                   run_id="s")]
    path, store, out = tmp_path / "r.json", tmp_path / "s.sqlite", tmp_path / "r.html"
    path.write_text(json.dumps(rows))
    cli("leaderboard", "add", path, "--store", store)
    assert cli("leaderboard", "report", "--model", "tiny-sobel", "--output", out,
               "--store", store) == 0
    page = out.read_text()
    assert "tiny-sobel" in page and "random-alexnet-sobel" in page
    assert "someone-else" not in page and str(tmp_path) not in page
    assert cli("leaderboard", "report", "--model", "ghost", "--output", out,
               "--store", store) == 2
    assert "no results for model 'ghost'" in capsys.readouterr().err
