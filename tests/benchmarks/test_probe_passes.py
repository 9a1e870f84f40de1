"""benchmarks/probe_passes at the quick size: the rows it prints, with the trunk forwards of
both forms written out from the rule (timings are never asserted)."""

from __future__ import annotations

import math

from benchmarks.probe_passes import run


def test_quick_probe_passes_rows():
    rows = run(quick=True)
    assert [r.unit for r in rows] == ["s", "image passes", "points", "points"]
    n_train, n_val, epochs = 8 * 6, 8 * 2, 1
    held = round(n_train * 0.2)  # the plan's estimate of the smoke schedule's 20% hold-out
    one = epochs * (n_train + (held + n_val) * 10)
    two = epochs * ((n_train - held) + held * 10 + n_train + n_val * 10)
    forwards = rows[1]
    assert (forwards.dcbench, forwards.baseline) == (one, two)
    assert forwards.ratio == two / one
    assert all(math.isfinite(r.dcbench) and r.dcbench >= 0 for r in rows)
    assert "process CPU time" in rows[0].notes and rows[0].baseline > 0
