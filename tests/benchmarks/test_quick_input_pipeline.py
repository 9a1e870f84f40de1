"""`dcbench bench --quick --only input_pipeline`: the three input pipelines side by side on
generated JPEGs (structure and sanity only; timings are never asserted)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from dcbench.cli.entry import main


def test_quick_input_pipeline_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["bench", "--quick", "--only", "input_pipeline", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["failures"] == {}
    rows = data["rows"]
    dali = importlib.util.find_spec("nvidia.dali") is not None
    assert len(rows) == (4 if dali else 2)
    for row in rows:
        assert row["benchmark"] == "input_pipeline" and row["unit"] == "img/s"
        assert row["baseline_name"].startswith("PIL workers")
        assert math.isfinite(row["dcbench"]) and row["dcbench"] > 0
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0
    assert sum(": DALI (" in r["what"] for r in rows) == (2 if dali else 0)
    assert "| input_pipeline |" in capsys.readouterr().out
