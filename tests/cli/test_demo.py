"""`dcbench demo --quick`: the whole suite end to end on built-in data, offline."""

from __future__ import annotations

from dcbench.cli.entry import main
from dcbench.leaderboards.store import ResultsStore


def test_quick_demo_runs_every_step_and_stores_every_protocol(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "The thesis's claims on these measurements:" in printed
    assert "Sobel beats RGB" in printed and "NMI between consecutive assignments" in printed
    assert (out / "report.html").stat().st_size > 10_000
    assert "data:image/png;base64" in (out / "report.html").read_text()
    rows = ResultsStore(out / "results.sqlite").results()
    models = {m.rsplit("/", 1)[-1] for m in rows.model}
    assert {"random-sobel", "tiny-sobel", "random-rgb", "tiny-rgb"} <= models
    assert set(rows.protocol) == {"linear-conv", "knn", "knn-graph", "nmi", "voc07-cls",
                                  "low-shot"}
    for run in ("tiny-sobel", "tiny-rgb"):
        assert (out / "runs" / run / "final" / "model.safetensors").is_file()
    # a second run refuses to overwrite a finished demo without --force
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert (out / "report.html").is_file()
