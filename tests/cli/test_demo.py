"""`dcbench demo`: the whole suite end to end on built-in data, offline.

The default run uses an even smaller size than `--quick` (same steps, same checks) so the
suite stays fast; the real `--quick` run is marked slow.
"""

from __future__ import annotations

import argparse
import json

import pytest

import dcbench.cli.demo as demo
from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.leaderboards.store import ResultsStore

TINY = demo.DemoSize(per_class=12, val_per_class=6, voc_images=(8, 8, 8), epochs=3, k=8,
                     digit_epochs=2, digit_k=12, digits_per_class=12,
                     linear=("epochs=2", "milestones=[1]"),
                     low_shot=("shots=[2]", "draws=1", "iterations=4", "eval_every=4"),
                     voc_iters=4)


def _check_demo(out, store, printed):
    assert "The thesis's claims on these measurements:" in printed
    assert "Sobel beats RGB" in printed and "NMI between consecutive assignments" in printed
    assert "on real digits, DeepCluster beats random init" in printed
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html
    for protocol in ("linear-conv", "knn", "knn-graph", "nmi", "voc07-cls", "low-shot"):
        assert f'id="results-{protocol}-' in html
    assert "digits-sobel" in html and "Δ tiny-sobel" in html
    # the verdicts the demo printed, a summary before the details, short names only
    assert html.index('id="claims"') < html.index('id="summary"') < html.index('id="results-')
    assert "Δ tiny-sobel = tiny-sobel − random-sobel (random init of the same architecture" \
        in html
    assert str(out) not in html
    assert (out / "report.html").stat().st_mode & 0o777 == 0o644
    claims = json.loads((out / "claims.json").read_text())
    assert any(c["text"] == "Sobel beats RGB when colour is a nuisance" for c in claims)
    # verdicts from paired intervals where the evals kept per-item outcomes (linear, k-NN)
    assert {c["verdict"] for c in claims} <= {"holds", "does not hold",
                                              "undecided at this size"}
    assert "95% paired bootstrap interval" in printed and "does NOT hold" not in printed
    trained = next(c for c in claims if c["text"] == "trained beats random init (Sobel)")
    assert "linear-conv conv5" in trained["evidence"] and "(Δ " in trained["evidence"]
    assert "graph ratio" in trained["evidence"] and "no interval" in trained["evidence"]
    assert (out / "evals" / "cls-tiny-sobel-knn" / "outcomes.safetensors").is_file()
    rows = ResultsStore(store).results()
    models = {m.rsplit("/", 1)[-1] for m in rows.model}
    assert {"random-sobel", "tiny-sobel", "random-rgb", "tiny-rgb", "digits-sobel"} <= models
    assert set(rows.protocol) == {"linear-conv", "knn", "knn-graph", "nmi", "voc07-cls",
                                  "low-shot"}
    assert {"cls", "digits"} <= set(rows.dataset)
    for run in ("tiny-sobel", "tiny-rgb", "digits-sobel"):
        assert (out / "runs" / run / "final" / "model.safetensors").is_file()


def test_demo_end_to_end_into_the_default_store_then_resume(tmp_path, capsys, monkeypatch,
                                                            isolated_home):
    monkeypatch.setattr(demo, "QUICK", TINY)
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    store = isolated_home / "results.sqlite"  # the store `dcbench leaderboard` reads
    _check_demo(out, store, capsys.readouterr().out)
    n_rows = len(ResultsStore(store).results())
    assert main(["leaderboard", "compare", str(out / "models" / "random-sobel"),
                 str(out / "models" / "tiny-sobel")]) == 0
    by_path = capsys.readouterr().out
    assert "tiny-sobel" in by_path and str(out) not in by_path
    assert main(["leaderboard", "compare", "random-sobel", "tiny-sobel"]) == 0  # by name
    assert capsys.readouterr().out == by_path
    # a second run refuses to overwrite a finished demo without --force
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    # --resume after an interruption: forget the last two steps; only they run again
    state = json.loads((out / "demo.json").read_text())
    state["done"] = state["done"][:-2]
    (out / "demo.json").write_text(json.dumps(state))
    assert main(["demo", "--quick", "--out", str(out), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("done before, skipped") == len(state["done"])
    assert "$ dcbench eval --protocol low-shot" in printed
    # the rerun low-shot step appended its rows once more; nothing else was re-run
    low_shot = len(ResultsStore(store).results(protocol="low-shot"))
    assert len(ResultsStore(store).results()) == n_rows + low_shot // 2
    assert main(["demo", "--out", str(tmp_path / "new"), "--resume"]) == 2


@pytest.mark.slow
def test_quick_demo_as_documented(tmp_path, capsys):
    out = tmp_path / "demo"
    store = tmp_path / "results.sqlite"
    assert main(["demo", "--quick", "--out", str(out), "--store", str(store)]) == 0
    _check_demo(out, store, capsys.readouterr().out)


def _old_demo(out, store):
    """A finished-looking demo folder (its own entries) plus a user's file beside them."""
    for sub in ("data/shapes", "runs/tiny-sobel", "models", "evals"):
        (out / sub).mkdir(parents=True)
    (out / "runs" / "tiny-sobel" / "log.jsonl").write_text("{}\n")
    (out / "report.html").write_text("<html></html>")
    (out / "demo.json").write_text(json.dumps({"quick": True, "seed": 0, "store": store,
                                               "done": []}))
    (out / "chapter1.tex").write_text("\\chapter{mine}")


def test_force_removes_only_the_demo_files(tmp_path):
    out, store = tmp_path / "demo", str(tmp_path / "r.sqlite")
    _old_demo(out, store)
    args = argparse.Namespace(out=out, quick=True, seed=0, force=True, resume=False)
    demo._prepare(args, store)
    assert (out / "chapter1.tex").read_text() == "\\chapter{mine}"
    assert sorted(p.name for p in out.iterdir()) == ["chapter1.tex", "demo.json"]


@pytest.mark.parametrize("text", ["[1, 2]", "{\"chapter\": 1}", "not json {"])
def test_force_refuses_a_demo_json_the_demo_did_not_write(tmp_path, text):
    out, store = tmp_path / "demo", str(tmp_path / "r.sqlite")
    _old_demo(out, store)
    (out / "demo.json").write_text(text)
    args = argparse.Namespace(out=out, quick=True, seed=0, force=True, resume=False)
    with pytest.raises(UserError, match="demo.json"):
        demo._prepare(args, store)
    assert (out / "runs" / "tiny-sobel" / "log.jsonl").is_file()
    assert (out / "demo.json").read_text() == text
