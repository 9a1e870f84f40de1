"""The SVM protocols' per-item outcomes: the stored test scores recompute every reported mAP."""

from __future__ import annotations

import numpy as np
import pytest

from dcbench.core.outcomes import to_bytes
from dcbench.data.synthetic import make_voc_set
from dcbench.models import create_backbone
from dcbench.protocols import get_protocol


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return make_voc_set(tmp_path_factory.mktemp("voc"), n_train=16, n_val=16, n_test=24,
                        size=64, seed=0)


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("DCBENCH_HOME", str(tmp_path / "home"))


def plain_voc_ap(scores: np.ndarray, positive: np.ndarray) -> float:
    """VOC all-point interpolated AP, one rank at a time (ties in index order)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    npos = int(np.sum(positive))
    if npos == 0:
        return float("nan")
    points, tp = [], 0
    for rank, i in enumerate(order, 1):
        tp += int(positive[i])
        points.append((tp / npos, tp / rank))
    ap, seen = 0.0, 0.0
    for k, (recall, _) in enumerate(points):
        if recall > seen:
            ap += (recall - seen) * max(p for _, p in points[k:])
            seen = recall
    return ap


def plain_map(scores: np.ndarray, targets: np.ndarray) -> float:
    """100 x mean over the classes with a positive, -1 targets left out."""
    aps = []
    for c in range(scores.shape[1]):
        keep = targets[:, c] != -1
        ap = plain_voc_ap(scores[keep, c], targets[keep, c] == 1)
        if np.isfinite(ap):
            aps.append(ap)
    return 100 * float(np.mean(aps))


def _run(name, root, work_dir, overrides=()):
    protocol = get_protocol(name)
    config = protocol.resolve_config(schedule="smoke", overrides=list(overrides))
    model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
    rows = protocol.run(model, root, config, run_id="t", device="cpu", progress=False,
                        work_dir=work_dir)
    return rows, protocol.item_outcomes()


def test_voc07_svm_scores_recompute_each_layers_map(voc_root, tmp_path):
    rows, entries = _run("voc07-svm", voc_root, tmp_path / "a", ["layers=[conv4,conv5]"])
    assert [(e.layer, e.metric, e.kind) for e in entries] == [
        ("conv4", "map", "multilabel-voc"), ("conv5", "map", "multilabel-voc")]
    for entry in entries:
        value = next(r.value for r in rows if (r.layer, r.metric) == (entry.layer, "map"))
        assert entry.n_items == 24 and entry.arrays["scores"].dtype == np.float64
        assert set(np.unique(entry.arrays["targets"])) <= {-1, 0, 1}
        assert plain_map(entry.arrays["scores"], entry.arrays["targets"]) == \
            pytest.approx(value, abs=1e-9)
    _, again = _run("voc07-svm", voc_root, tmp_path / "b", ["layers=[conv4,conv5]"])
    assert to_bytes(again) == to_bytes(entries)
    _, resumed = _run("voc07-svm", voc_root, tmp_path / "a", ["layers=[conv4,conv5]"])
    assert to_bytes(resumed) == to_bytes(entries)  # the journaled fits score the same


@pytest.mark.parametrize("selection", ["cv", "test"])
def test_lowshot_svm_scores_recompute_each_samples_map(voc_root, tmp_path, selection):
    """One entry per (k, sample) behind its `map` row (seed = seed + sample), at the cost
    the table reports; a resumed run refits the journaled SVMs to the same bytes."""
    overrides = ["layers=[conv5]", "shots=[1]", "samples=2", f"cost_selection={selection}"]
    rows, entries = _run("voc07-lowshot-svm", voc_root, tmp_path / "a", overrides)
    assert [(e.layer, e.metric, e.seed, e.kind) for e in entries] == [
        ("conv5/k1", "map", 0, "multilabel-voc"), ("conv5/k1", "map", 1, "multilabel-voc")]
    for entry in entries:
        value = next(r.value for r in rows if (r.layer, r.metric, r.seed) ==
                     (entry.layer, "map", entry.seed))
        assert plain_map(entry.arrays["scores"], entry.arrays["targets"]) == \
            pytest.approx(value, abs=1e-9)
    _, resumed = _run("voc07-lowshot-svm", voc_root, tmp_path / "a", overrides)
    assert to_bytes(resumed) == to_bytes(entries)
