"""Per-item outcomes from `dcbench eval` to paired intervals in `leaderboard compare`."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dcbench.core.outcomes import read_outcomes
from dcbench.leaderboards.paired import format_p, paired_delta
from dcbench.leaderboards.paired_det import DetLayout
from dcbench.leaderboards.store import ResultsStore
from dcbench.protocols import voc07_det
from tests.leaderboards.det_fixtures import detections_for

MODELS = {"a": "random-alexnet_small-sobel", "b": "arch:alexnet_small?sobel=1&seed=7"}


@pytest.fixture
def two_runs(cli, cls_set: Path, tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    store = tmp_path / "s.sqlite"
    runs = {}
    for name, spec in MODELS.items():
        runs[name] = tmp_path / f"run_{name}"
        assert cli("eval", "--protocol", "knn", "--model", spec, "--name", f"model-{name}",
                   "--data", cls_set, "--layers", "conv4,conv5", "--set", "k=5",
                   "--schedule", "smoke", "--no-progress", "--out", runs[name],
                   "--store", store) == 0
    return store, runs


def test_eval_keeps_per_item_outcomes_that_make_its_rows(two_runs) -> None:
    _, runs = two_runs
    rows = json.loads((runs["a"] / "results.json").read_text())
    entries = read_outcomes(runs["a"] / "outcomes.safetensors")
    assert sorted(e.key() for e in entries) == [("val", "conv4", "top1"), ("val", "conv5", "top1")]
    for entry in entries:
        value = next(r["value"] for r in rows if (r["split"], r["layer"], r["metric"])
                     == entry.key())
        assert 100 * entry.arrays["correct"].mean() == pytest.approx(value)
        assert entry.n_items == 8  # 4 classes x 2 val images


def test_compare_prints_paired_intervals_and_mcnemar_p(cli, capsys, two_runs) -> None:
    store, runs = two_runs
    capsys.readouterr()
    assert cli("leaderboard", "compare", "model-a", "model-b", "--store", store) == 0
    out = capsys.readouterr().out
    assert "10,000 resamples, seed 0" in out and "2 tests made" in out
    a = {e.layer: e for e in read_outcomes(runs["a"] / "outcomes.safetensors")}
    b = {e.layer: e for e in read_outcomes(runs["b"] / "outcomes.safetensors")}
    for layer in ("conv4", "conv5"):
        x, y = b[layer].arrays["correct"].astype(bool), a[layer].arrays["correct"].astype(bool)
        only_b, only_a = int(np.sum(x & ~y)), int(np.sum(~x & y))
        p = stats.binomtest(only_b, only_b + only_a, 0.5).pvalue if only_a + only_b else 1.0
        line = next(ln for ln in out.splitlines() if ln.startswith(f"| {layer} "))
        assert f"p={format_p(p)}" in line
        delta = 100 * (x.mean() - y.mean())
        assert re.search(re.escape(f"| {delta:+.1f} [") + r"[-+][\d.]+, [-+][\d.]+\] p=", line)
    assert cli("leaderboard", "compare", "model-a", "model-b", "--store", store, "--holm") == 0
    assert "p Holm-adjusted for all of them" in capsys.readouterr().out


def test_rows_without_per_item_outcomes_get_no_interval(cli, capsys, two_runs,
                                                        tmp_path) -> None:
    store, runs = two_runs
    rows = json.loads((runs["a"] / "results.json").read_text())
    for row in rows:  # the same cells, measured elsewhere, no outcomes file
        row.update(run_id="elsewhere", model="model-c", model_sha256="c" * 64)
    (tmp_path / "c.json").write_text(json.dumps(rows))
    assert cli("leaderboard", "add", tmp_path / "c.json", "--store", store) == 0
    capsys.readouterr()
    assert cli("leaderboard", "compare", "model-a", "model-c", "--store", store) == 0
    out = capsys.readouterr().out
    assert "no paired interval" in out and "tests made" not in out
    assert "Δ 95% CI" not in out  # no column of "no per-item data" rows: the note says it


def test_leaderboard_add_imports_the_outcomes(cli, capsys, two_runs, tmp_path) -> None:
    store, runs = two_runs
    other = tmp_path / "other.sqlite"
    for run in runs.values():
        assert cli("leaderboard", "add", "--from", run, "--store", other) == 0
    assert "per-item outcomes of 2 of them" in capsys.readouterr().out
    refs = ResultsStore(other).outcome_refs()
    assert len(refs) == 4 and set(refs["n_items"]) == {8}
    capsys.readouterr()
    for path in (store, other):
        assert cli("leaderboard", "compare", "model-a", "model-b", "--store", path,
                   "--metric", "top1") == 0
    first, second = capsys.readouterr().out.split("**compare**")[1:]
    assert first == second


def test_a_corrupt_outcomes_file_is_refused_before_the_store_is_written(cli, capsys, two_runs,
                                                                          tmp_path) -> None:
    _, runs = two_runs
    (runs["a"] / "outcomes.safetensors").write_bytes(b"garbage")
    target = tmp_path / "new.sqlite"
    assert cli("leaderboard", "add", "--from", runs["a"], "--store", target) == 2
    assert "not a dcbench per-item outcomes file" in capsys.readouterr().err
    assert not target.exists()


def test_readme_example_runs_and_prints_what_the_readme_shows(cli, capsys, tmp_path,
                                                               monkeypatch) -> None:
    """The commands of README "Is the difference real?", run as written (in a fresh folder
    and $DCBENCH_HOME); the last one prints the table the README shows."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Is the difference real?", 1)[1].split("\n### ", 1)[0]
    commands, shown = section.split("```bash\n", 1)[1].split("```\n\n```\n", 1)
    shown = shown.split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    lines = commands.strip().splitlines()
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "dcbench"
        capsys.readouterr()
        assert cli(*argv[1:]) == 0, line
    assert capsys.readouterr().out == shown


def test_voc07_det_runs_get_a_detection_map_interval(cli, capsys, voc_set: Path,
                                                      tmp_path: Path, monkeypatch) -> None:
    """Two voc07-det runs (1 iteration, synthetic VOCdevkit): each keeps per-detection
    records that recompute its map; `leaderboard add` imports them and `compare` prints the
    paired detection-mAP interval with the bootstrap p, as computed from the two files.
    A 1-iteration detector finds nothing, so the test images' detections come from a
    simulated detector (near-hits of the true boxes, a better one for run a); everything
    after the detector (AP, records, files, store, compare) is the real path."""
    def simulated(hit: float, seed: int):
        def detect(detector, voc, **_):
            truth = [voc07_det.annotation_arrays(voc.annotation(i), voc.ids[i])
                     for i in range(len(voc))]
            return detections_for(truth, 20, seed, hit=hit), truth
        return detect

    store, runs = tmp_path / "s.sqlite", {}
    for (name, spec), detect in zip(MODELS.items(), (simulated(0.95, 1), simulated(0.6, 2)),
                                    strict=True):
        monkeypatch.setattr(voc07_det, "detect", detect)
        runs[name] = tmp_path / f"det_{name}"
        assert cli("eval", "--protocol", "voc07-det", "--model", spec, "--name",
                   f"det-{name}", "--data", voc_set, "--schedule", "smoke", "--set",
                   "iterations=1", "--set", "checkpoint_every=1", "--no-progress",
                   "--no-store", "--out", runs[name]) == 0
        entry, = read_outcomes(runs[name] / "outcomes.safetensors")
        assert (entry.kind, entry.key(), entry.n_items) == ("detection",
                                                           ("test", "fc6-8", "map"), 20)
        row = next(r for r in json.loads((runs[name] / "results.json").read_text())
                   if r["metric"] == "map")
        layout = DetLayout.build(entry.arrays, entry.options)
        assert 100 * np.nanmean(layout.ap(np.ones((1, 20)))[0]) == row["value"] > 0
        assert cli("leaderboard", "add", "--from", runs[name], "--store", store) == 0
    capsys.readouterr()
    assert cli("leaderboard", "compare", "det-a", "det-b", "--store", store,
               "--protocol", "voc07-det", "--metric", "map") == 0
    out = capsys.readouterr().out
    a, b = (read_outcomes(runs[n] / "outcomes.safetensors")[0] for n in ("a", "b"))
    expected = paired_delta(b, a)
    assert expected.delta < 0 and expected.low < expected.delta < expected.high
    assert "10,000 resamples, seed 0" in out and "bootstrap" in out
    assert f"| {expected.text()} |" in out
    assert cli("leaderboard", "compare", "det-a", "det-b", "--store", store,
               "--metric", "map", "--resamples", "2000") == 0
    out = capsys.readouterr().out
    assert "2,000 resamples, seed 0" in out
    assert f"| {paired_delta(b, a, resamples=2000).text()} |" in out
    assert cli("leaderboard", "compare", "det-a", "det-b", "--store", store,
               "--resamples", "5") == 2
    assert "--resamples: expected an integer in [100, 1000000], got 5" in capsys.readouterr().err
