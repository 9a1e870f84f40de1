"""The demo's claim verdicts: holds, does not hold, or undecided at this size.

Where both runs kept per-item outcomes the paired interval decides (contains 0: undecided);
elsewhere the printed numbers do, and values equal at the printed precision (e.g. "graph
ratio 0.177 vs 0.177") are undecided, never a win and never a loss.
"""

from __future__ import annotations

import json

import pandas as pd

from dcbench.cli.demo_summary import digits_claim, evaluate_claims, verdict_line
from dcbench.leaderboards.paired import PairedDelta
from dcbench.leaderboards.paired_table import CellTest

MODELS = ["random-sobel", "tiny-sobel", "random-rgb", "tiny-rgb", "digits-sobel"]


def _table(cells: dict[tuple[str, str, str, str], dict[str, float]]) -> pd.DataFrame:
    index = pd.MultiIndex.from_tuples(list(cells), names=["dataset", "protocol", "layer",
                                                          "metric"])
    return pd.DataFrame([[cells[i].get(m, float("nan")) for m in MODELS] for i in cells],
                        index=index, columns=MODELS)


def _shapes(graph: tuple[float, float], nmi=(0.1, 0.2)) -> dict:
    cells = {("cls", "linear-conv", f"conv{i}", "top1"):
             {"random-sobel": 60.0, "tiny-sobel": 70.0, "random-rgb": 40.0, "tiny-rgb": 30.0}
             for i in (3, 4, 5)}
    cells[("cls", "knn-graph", "fc7", "ratio_edge_intra_class")] = {
        "random-sobel": graph[0], "tiny-sobel": graph[1], "random-rgb": 0.1, "tiny-rgb": 0.1}
    cells[("cls", "nmi", "fc7", "nmi")] = {"random-sobel": nmi[0], "tiny-sobel": nmi[1]}
    return cells


def _runs(tmp_path, first=0.5, last=0.5004):
    for name in ("sobel", "rgb"):
        (tmp_path / name).mkdir()
        records = [{"epoch": e, "nmi_prev": v} for e, v in
                   enumerate([None, first, first, last, last])]
        (tmp_path / name / "log.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in records))
    return tmp_path / "sobel", tmp_path / "rgb"


def test_a_tie_at_the_printed_precision_is_undecided_not_a_failure(tmp_path):
    # 0.1772 vs 0.1768: both print as 0.177; the other four comparisons are clear wins
    claims = evaluate_claims(_table(_shapes(graph=(0.1768, 0.1772))), *_runs(tmp_path))
    trained = claims[0]
    assert "graph ratio 0.177 vs 0.177" in trained.evidence
    assert not trained.holds and trained.verdict == "undecided at this size"
    line = verdict_line(trained)
    assert line.startswith("  [undecided at this size]") and "does NOT hold" not in line
    assert "cannot decide at this size: graph ratio" in line and "tie" in line
    # NMI rising from 0.500 to 0.500 (0.5004 prints as 0.500) is a tie too
    rises = [c for c in claims if c.text.startswith("NMI between")]
    assert rises and all(c.verdict == "undecided at this size" for c in rises)


def test_a_visible_loss_does_not_hold(tmp_path):
    claims = evaluate_claims(_table(_shapes(graph=(0.30, 0.20))), *_runs(tmp_path, 0.5, 0.6))
    assert claims[0].verdict == "does not hold"
    assert verdict_line(claims[0]).startswith("  [does not hold]")


def _test(low: float, high: float) -> CellTest:
    return CellTest(PairedDelta("top1", 240, 55.0, 50.0, (low + high) / 2, low, high, 0.03,
                                "McNemar exact", 10_000, 0))


def test_paired_intervals_decide_where_there_are_per_item_outcomes(tmp_path):
    """linear-conv differences that print as wins are undecided when the paired interval
    contains 0, wins when it is above 0, losses when below; the interval is named."""
    table = _table(_shapes(graph=(0.176, 0.178)))
    runs = _runs(tmp_path, 0.5, 0.6)
    calls = []

    def intervals(dataset, protocol, layer, metric, a, b):
        calls.append((dataset, protocol, layer, metric, a, b))
        if protocol != "linear-conv":
            return None  # graph ratio, NMI: no per-item data
        return _test(-1.0, 9.0) if layer == "conv5" else _test(2.0, 12.0)

    trained = evaluate_claims(table, *runs, intervals)[0]
    assert trained.verdict == "undecided at this size"
    assert "[-1.0, +9.0]" in trained.evidence and "[+2.0, +12.0]" in trained.evidence
    assert "graph ratio 0.178 vs 0.176 (no per-item data: no interval)" in trained.evidence
    assert ("cls", "linear-conv", "conv3", "top1", "tiny-sobel", "random-sobel") in calls
    line = verdict_line(trained)
    assert "cannot decide at this size: linear-conv conv5" in line
    assert "decided: linear-conv conv3, linear-conv conv4, graph ratio, k-means NMI" in line
    all_above = evaluate_claims(table, *runs, lambda *k: _test(1.0, 5.0)
                                if k[1] == "linear-conv" else None)[0]
    assert all_above.verdict == "holds"
    below = evaluate_claims(table, *runs, lambda *k: _test(-5.0, -1.0)
                            if k[1] == "linear-conv" else None)[0]
    assert below.verdict == "does not hold"


def test_a_win_visible_in_the_printed_digits_holds(tmp_path):
    claims = evaluate_claims(_table(_shapes(graph=(0.176, 0.178))), *_runs(tmp_path, 0.5, 0.6))
    assert claims[0].holds and "[holds]" in verdict_line(claims[0])
    assert all(c.holds for c in claims if c.text.startswith("NMI between"))


def test_sobel_vs_rgb_tie_in_linear_accuracy_is_undecided(tmp_path):
    cells = _shapes(graph=(0.1, 0.3))
    cells[("cls", "linear-conv", "conv5", "top1")].update({"tiny-sobel": 55.04, "tiny-rgb": 54.96})
    claims = evaluate_claims(_table(cells), *_runs(tmp_path, 0.5, 0.6))
    sobel = next(c for c in claims if c.text.startswith("Sobel beats RGB"))
    assert "linear conv5 55.0 vs 55.0" in sobel.evidence and not sobel.holds
    assert sobel.verdict == "undecided at this size"


def test_digits_claim_tie_is_undecided():
    cells = {("digits", "linear-conv", "conv5", "top1"): {"random-sobel": 94.86,
                                                          "digits-sobel": 94.94},
             ("digits", "knn", "conv5", "top1"): {"random-sobel": 90.0, "digits-sobel": 91.0},
             ("digits", "nmi", "fc7", "nmi"): {"random-sobel": 0.4, "digits-sobel": 0.5}}
    claim = digits_claim(_table(cells))
    assert claim is not None and not claim.holds
    assert claim.verdict == "undecided at this size"
    assert "linear-conv conv5 94.9 vs 94.9" in claim.evidence
    assert "tie" in verdict_line(claim)
