"""Smoke test: the quick memory benchmark (fresh processes per N) gives rows and a growth row.

Figures are never asserted beyond sanity: positive, finite, one row per N plus the growth.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.test_quick_suite import check_rows, run_quick


def test_quick_memory_benchmark_shows_growth(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "m.json"
    data, table = run_quick("memory", out, capsys)
    rows = data["rows"]
    assert len(rows) == 3 and rows[-1]["what"].startswith("growth")
    check_rows(rows)
    assert rows[0]["dcbench"] > 0 and rows[0]["baseline"] > 0
    assert "| memory |" in table
