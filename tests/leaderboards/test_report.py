"""The HTML report is about the user's runs: their rows per protocol, baselines, curves."""

from __future__ import annotations

import json

import pandas as pd

from dcbench.leaderboards.report import build_report, select_results
from dcbench.leaderboards.run_tables import protocol_tables
from dcbench.leaderboards.tables import Leaderboard
from dcbench.viz.curves import curves_figure

RUN_SHA, RANDOM_SHA, OTHER_SHA = "a" * 64, "b" * 64, "c" * 64


def row(model: str, sha: str, value: float, **extra: object) -> dict:
    base = dict(run_id=f"eval-{model}", model=model, model_sha256=sha, protocol="knn",
                dialect="dc2018", dataset="digits", split="val", layer="conv5",
                metric="top1", value=value, seed=0, config_hash="h", dcbench_version="0",
                code_revision="", device="cpu", timestamp="2026-11-30T10:00:00+00:00")
    base.update(extra)
    return base


def make_run(tmp_path):
    run = tmp_path / "runs" / "tiny"
    (run / "final").mkdir(parents=True)
    (run / "final" / "config.json").write_text(json.dumps({"weights_sha256": RUN_SHA}))
    records = [{"epoch": e, "clustering_loss": 300.0 - 10 * e, "train_loss": 3.5 - 0.1 * e,
                "nmi_prev": 0.5 + 0.05 * e} for e in range(4)]
    (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return run


def results() -> pd.DataFrame:
    return pd.DataFrame([
        row(f"{'runs/tiny/final'}", RUN_SHA, 71.0, seed=0),
        row("runs/tiny/final", RUN_SHA, 73.0, seed=1),
        row("models/random-sobel", RANDOM_SHA, 60.0),
        row("models/random-sobel", RANDOM_SHA, 0.20, protocol="nmi", metric="nmi",
            layer="fc7"),
        row("someone-else", OTHER_SHA, 99.0, dataset="imagenet"),
    ])


def test_run_selection_keeps_its_rows_and_random_baselines(tmp_path):
    run = make_run(tmp_path)
    picked = select_results(results(), [run])
    assert set(picked.model) == {"runs/tiny/final", "models/random-sobel"}
    assert "nmi" not in set(picked.protocol)  # no random baseline without our row there


def test_protocol_table_mean_std_and_delta_to_random(tmp_path):
    (protocol, table), = protocol_tables(select_results(results(), [make_run(tmp_path)]))
    assert protocol == "knn on digits"
    line = table.iloc[0]
    # independent arithmetic: mean 72.0, sample std of (71, 73) = 1.414, delta 72 - 60
    assert line["tiny"] == "72.0 ± 1.4" and line["random-sobel"] == "60.0"
    assert line["Δ tiny"] == "+12.0"
    assert table.attrs["baselines"] == {"tiny": "random-sobel"}


def test_report_html_holds_the_run_results_and_no_unrelated_table(tmp_path):
    html = build_report(Leaderboard(results()), run_dirs=[make_run(tmp_path)])
    assert 'id="results-knn-digits"' in html and "+12.0" in html
    assert "someone-else" not in html
    assert "thesis-5.3" not in html  # nothing comparable: no published tables by default
    assert html.count("data:image/png;base64,") == 1


def test_losses_get_their_own_axes(tmp_path):
    log = pd.DataFrame([{"epoch": e, "clustering_loss": 300.0 - e, "train_loss": 3.5 - e / 10,
                         "nmi_prev": 0.5} for e in range(3)])
    figure = curves_figure({"run": log})
    titles = [axes.get_title() for axes in figure.axes]
    loss_axes = [a for a in figure.axes if "loss" in a.get_title()]
    assert len(loss_axes) == 2, titles  # clustering loss and train loss: one axis each
    assert all(len(a.get_lines()) == 1 for a in loss_axes)
