"""Smoke test: `dcbench bench --quick` on this package's benchmarks produces the table.

Only structure and sanity are checked (expected rows, finite positive figures and ratios,
exact neighbour agreement); timings are never asserted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from dcbench.cli.entry import main


def run_quick(names: str, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    assert main(["bench", "--quick", "--only", names, "--output", str(out)]) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def check_rows(rows: list[dict]) -> None:
    for row in rows:
        assert math.isfinite(row["dcbench"]) and row["dcbench"] >= 0, row
        if row["baseline"] is not None:
            assert math.isfinite(row["baseline"]) and row["baseline"] >= 0, row
            assert math.isfinite(row["ratio"]) and row["ratio"] > 0, row


def test_quick_compute_benchmarks(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data, table = run_quick("knn_graph,features,train_epoch", tmp_path / "r.json", capsys)
    rows = data["rows"]
    assert data["quick"] is True and data["failures"] == {}
    assert [r["benchmark"] for r in rows] == ["knn_graph"] + ["features"] * 5 + ["train_epoch"] * 2
    check_rows(rows)
    knn = rows[0]
    assert knn["notes"].endswith("neighbour agreement 1.0000")  # both searches are exact
    peak_rows = [r for r in rows if r["baseline_name"] == "matmul-peak bound"]
    # a fraction of the measured matmul peak: far above 1 would mean a wrong FLOP count (a
    # FLOP-count slip is off by the spatial size or the batch: 100x and more). The peak is
    # timed once, so a busy core during it lowers the bound: 1.51 was seen at load 15 and
    # the suite failed once at < 3 with 5 other jobs running, so the bound is 10
    assert len(peak_rows) == 2 and all(0 < r["ratio"] < 10 for r in peak_rows)
    assert 0 < rows[-1]["dcbench"] < 100  # clustering share, percent
    assert table.startswith("Machine: ") and table.count("\n| knn_graph |") == 1


def test_markdown_output_is_the_printed_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "r.md"
    assert main(["bench", "--quick", "--only", "knn_graph", "--output", str(out)]) == 0
    assert out.read_text() == capsys.readouterr().out


def test_quick_paired_bootstrap_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data, table = run_quick("paired_bootstrap", tmp_path / "r.json", capsys)
    rows = data["rows"]
    assert data["failures"] == {} and [r["benchmark"] for r in rows] == ["paired_bootstrap"] * 4
    check_rows(rows)
    assert "McNemar exact" in rows[0]["notes"] and "true delta -2.0" in rows[0]["notes"]
    assert rows[1]["what"].startswith("mAP paired bootstrap")
    assert rows[2]["what"].startswith("VOC-interpolated mAP (SVM) paired bootstrap")
    assert rows[3]["what"].startswith("detection mAP paired bootstrap")
