"""The HTML report is about the user's runs: their rows per protocol, baselines, curves."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from dcbench.core.outcomes import correct_outcomes, write_outcomes
from dcbench.leaderboards.identity import identify, with_architectures
from dcbench.leaderboards.paired import paired_delta
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


def runs(*archs: tuple[str, str, bool]) -> pd.DataFrame:
    """Run records as `dcbench eval` stores them: (run_id, arch, sobel) in `extra`."""
    return pd.DataFrame([{"run_id": run_id, "extra": {"arch": arch, "sobel": sobel}}
                         for run_id, arch, sobel in archs])


ARCHS = runs(("eval-runs/tiny/final", "alexnet_small", True),
             ("eval-models/random-sobel", "alexnet_small", True))


def test_run_selection_keeps_its_rows_and_random_baselines(tmp_path):
    run = make_run(tmp_path)
    picked = select_results(results(), [run])
    assert set(picked.model) == {"tiny", "random-sobel"}
    assert "nmi" not in set(picked.protocol)  # no random baseline without our row there


def test_protocol_table_mean_std_and_delta_to_random(tmp_path):
    picked = select_results(with_architectures(identify(results()), ARCHS),
                            [make_run(tmp_path)])
    (protocol, table), = protocol_tables(picked)
    assert protocol == "knn on digits"
    line = table.iloc[0]
    # independent arithmetic: mean 72.0, sample std of (71, 73) = 1.414, delta 72 - 60
    assert line["tiny"] == "72.0 ± 1.4" and line["random-sobel"] == "60.0"
    assert line["Δ tiny"] == "+12.0"
    assert table.attrs["baselines"] == {"tiny": "random-sobel"}


def test_report_html_holds_the_run_results_and_no_unrelated_table(tmp_path):
    html = build_report(Leaderboard(results(), ARCHS), run_dirs=[make_run(tmp_path)])
    assert 'id="results-knn-on-digits"' in html and "+12.0" in html
    assert ">Weighted k-NN classification on digits</h2>" in html  # a title, not a slug
    assert "someone-else" not in html
    assert "thesis-5.3" not in html  # nothing comparable: no published tables by default
    assert html.count("data:image/png;base64,") == 1


def test_trained_model_pairs_only_with_the_random_init_of_its_architecture():
    """The issue's case: `torchvision:resnet18@random` and an RGB random init in the table."""
    rows = pd.DataFrame([
        row("/abs/models/tiny-sobel", RUN_SHA, 70.0),
        row("/abs/models/random-rgb", OTHER_SHA, 50.0),
        row("torchvision:resnet18@random", "d" * 64, 40.0),
        row("/abs/models/random-sobel", RANDOM_SHA, 60.0),
        row("/abs/models/mystery", "e" * 64, 65.0)])
    archs = runs(*[(f"eval-{m}", a, sb) for m, a, sb in (
        ("/abs/models/tiny-sobel", "alexnet_small", True),
        ("/abs/models/random-rgb", "alexnet_small", False),
        ("/abs/models/random-sobel", "alexnet_small", True))])
    html = build_report(Leaderboard(rows, archs))
    (_, table), = protocol_tables(Leaderboard(rows, archs).results)
    assert table.attrs["baselines"] == {"tiny-sobel": "random-sobel"}
    assert [c for c in table.columns if c.startswith("Δ")] == ["Δ tiny-sobel"]
    assert table.iloc[0]["Δ tiny-sobel"] == "+10.0"  # 70 - 60, not 70 - 50 or 70 - 40
    assert "random init of the same architecture, alexnet_small (Sobel)" in html
    assert "mystery: no Δ, its architecture is unknown" in html
    assert "/abs/" not in html  # short names only, no absolute paths in headers


def test_voc_summary_first_per_class_folded_and_honest_captions():
    classes = ["aeroplane", "bicycle", "bird"]
    rows = []
    for model, sha, base in (("models/tiny-sobel", RUN_SHA, 50.0),
                             ("models/random-sobel", RANDOM_SHA, 30.0)):
        for split in ("train", "test"):
            rows.append(row(model, sha, base + (split == "train") * 20, protocol="voc07-cls",
                            dataset="voc", split=split, layer="fc6-8", metric="map"))
            rows += [row(model, sha, base + i, protocol="voc07-cls", dataset="voc",
                         split=split, layer="fc6-8", metric=f"ap_{c}")
                     for i, c in enumerate(classes)]
    archs = runs(("eval-models/tiny-sobel", "alexnet_small", True),
                 ("eval-models/random-sobel", "alexnet_small", True))
    html = build_report(Leaderboard(pd.DataFrame(rows), archs))
    summary, section = html.index('id="summary"'), html.index('id="results-voc07-cls')
    details = html.index("<details>")
    assert summary < section < details
    head = html[summary:section]
    assert "map" in head and "ap_bird" not in head and "+20.0" in head  # test split: 50 - 30
    assert ">70.0<" not in head  # the train split is not the headline
    assert html[details:].count("ap_") == 2 * len(classes)  # both splits, folded
    assert "per-class detail (6 rows)" in html
    assert "one seed per cell (no std)" in html and "over seeds" not in html


def test_several_seeds_are_said_so():
    rows = pd.DataFrame([row("a", RUN_SHA, 1.0, seed=0), row("a", RUN_SHA, 3.0, seed=1)])
    assert "mean ± std over up to 2 seeds" in build_report(Leaderboard(rows))


def test_demo_claims_are_shown_first(tmp_path):
    run = make_run(tmp_path)  # tmp_path/runs/tiny: tmp_path is the demo folder
    claims = [{"text": "trained beats random init (Sobel)", "holds": False,
               "evidence": "linear-conv conv5 85.3 vs 94.9"},
              {"text": "NMI rises (Sobel)", "holds": True, "evidence": "0.3 -> 0.5"}]
    (tmp_path / "claims.json").write_text(json.dumps(claims))
    html = build_report(Leaderboard(results(), ARCHS), run_dirs=[run])
    assert html.index('id="claims"') < html.index('id="summary"')
    assert "1 of 2 hold" in html
    assert 'class="fails">does NOT hold</span>] trained beats random init (Sobel)' in html
    assert "85.3 vs 94.9" in html


def test_losses_get_their_own_axes(tmp_path):
    log = pd.DataFrame([{"epoch": e, "clustering_loss": 300.0 - e, "train_loss": 3.5 - e / 10,
                         "nmi_prev": 0.5} for e in range(3)])
    figure = curves_figure({"run": log})
    titles = [axes.get_title() for axes in figure.axes]
    loss_axes = [a for a in figure.axes if "loss" in a.get_title()]
    assert len(loss_axes) == 2, titles  # clustering loss and train loss: one axis each
    assert all(len(a.get_lines()) == 1 for a in loss_axes)


def test_a_random_init_given_another_name_is_still_a_baseline():
    """`eval --model torchvision:resnet18@random --name r18`: the run record says random."""
    rows = pd.DataFrame([row("r18", "d" * 64, 40.0), row("tiny", RUN_SHA, 70.0)])
    records = pd.DataFrame([
        {"run_id": "eval-r18", "extra": {"model": "torchvision:resnet18@random",
                                         "arch": "torchvision:resnet18", "sobel": False}},
        {"run_id": "eval-tiny", "extra": {"model": "runs/tiny/final", "arch": "alexnet_small",
                                          "sobel": True}}])
    (_, table), = protocol_tables(Leaderboard(rows, records).results)
    assert table.attrs["randoms"] == ["r18"] and table.attrs["baselines"] == {}
    html = build_report(Leaderboard(rows, records))
    assert "tiny: no Δ, no random init of alexnet_small (Sobel) here" in html
    assert "r18: no Δ" not in html


def test_trained_vs_random_delta_gets_its_paired_interval(tmp_path):
    """Where both runs kept per-item outcomes the report's Δ has its paired interval (the
    same text as `leaderboard compare`); the caption counts the tests made."""
    rng = np.random.default_rng(0)
    hits = {"tiny-sobel": rng.random(200) < 0.7, "random-sobel": rng.random(200) < 0.5}
    rows, refs = [], []
    for name, sha in (("tiny-sobel", RUN_SHA), ("random-sobel", RANDOM_SHA)):
        path = write_outcomes(tmp_path / f"{name}.safetensors", [correct_outcomes(
            "val", "conv5", "top1", "L", hits[name], 0)])
        rows.append(row(f"/abs/models/{name}", sha, 100 * hits[name].mean()))
        refs.append({"run_id": f"eval-/abs/models/{name}", "split": "val", "layer": "conv5",
                     "metric": "top1", "seed": 0, "kind": "correct", "listing": "L",
                     "n_items": 200, "path": str(path)})
    archs = runs(*[(f"eval-/abs/models/{m}", "alexnet_small", True) for m in hits])
    board = Leaderboard(pd.DataFrame(rows), archs)
    board.outcome_refs = pd.DataFrame(refs)
    (_, table), = protocol_tables(board.results, board.outcome_refs)
    expected = paired_delta(*(correct_outcomes("val", "conv5", "top1", "L", hits[m], 0)
                              for m in ("tiny-sobel", "random-sobel")))
    assert table.iloc[0]["Δ 95% CI, p tiny-sobel"] == expected.text()
    assert table.attrs["tests"] == 1
    html = build_report(board)
    assert expected.text() in html and "1 test made" in html
    (_, plain), = protocol_tables(board.results)  # no references: no interval column
    assert "Δ 95% CI, p tiny-sobel" not in plain.columns
