"""voc07-lowshot-svm `cost_selection=test`: one cost per k and ddof=0 std, as in FSSB.

The reference rule is ported here from fair_self_supervision_benchmark
`tools/svm/test_svm_low_shot.py` (one test mAP per (sample, k, cost)) and
`tools/svm/aggregate_low_shot_svm_stats.py` (per k: mean/min/max/np.std over the samples for
every cost, then the statistics of the cost with the highest mean).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dcbench.data.synthetic import make_voc_set
from dcbench.models import create_backbone
from dcbench.protocols import get_protocol
from dcbench.protocols.voc07_lowshot_svm import select_cost_stats


def fssb_aggregate(ap_matrix: np.ndarray) -> dict[str, float]:
    """Port of aggregate_low_shot_svm_stats.py for one k: rows = samples, columns = costs."""
    k_val_output = np.asarray(ap_matrix, dtype=np.float64)
    mean = np.mean(k_val_output, axis=0).reshape(1, -1)
    low = np.min(k_val_output, axis=0).reshape(1, -1)
    high = np.max(k_val_output, axis=0).reshape(1, -1)
    std = np.std(k_val_output, axis=0).reshape(1, -1)
    best = np.argmax(mean, axis=1)[0]
    return {"map_mean": mean[0, best], "map_min": low[0, best], "map_max": high[0, best],
            "map_std": std[0, best], "cost_index": best}


def test_one_cost_per_k_and_population_std_match_the_fssb_aggregation():
    rng = np.random.default_rng(3)
    for _ in range(20):
        matrix = rng.uniform(10, 60, size=(5, 7))
        expected = fssb_aggregate(matrix)
        chosen, stats = select_cost_stats(matrix, ddof=0)
        assert chosen == expected.pop("cost_index")
        assert stats == pytest.approx(expected, abs=1e-12)


def test_per_sample_best_is_not_the_reference_rule():
    # sample 0 prefers cost 0, sample 1 cost 1; the mean prefers cost 1 (FSSB keeps it for both)
    matrix = np.array([[50.0, 40.0], [20.0, 45.0]])
    chosen, stats = select_cost_stats(matrix, ddof=0)
    assert chosen == 1
    assert stats["map_mean"] == pytest.approx(42.5)  # per-sample best would give 47.5
    assert stats["map_std"] == pytest.approx(2.5)  # np.std, ddof=0
    assert select_cost_stats(matrix, ddof=1)[1]["map_std"] == pytest.approx(np.std([40, 45],
                                                                                   ddof=1))


def test_ties_keep_the_first_cost_like_np_argmax():
    chosen, _ = select_cost_stats(np.array([[30.0, 30.0, 10.0]]), ddof=0)
    assert chosen == 0


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return make_voc_set(tmp_path_factory.mktemp("voc"), n_train=32, n_val=32, n_test=24,
                        size=64, seed=0)


@pytest.mark.slow
def test_mmselfsup_selects_one_cost_per_k_from_the_per_cost_test_maps(voc_root, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("DCBENCH_HOME", str(tmp_path / "home"))
    protocol = get_protocol("voc07-lowshot-svm")
    config = protocol.resolve_config(dialect="mmselfsup", schedule="smoke",
                                     overrides=["layers=[conv5]", "shots=[1,2]", "samples=3"])
    assert config.cost_selection == "test" and config.std_ddof == 0
    model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
    rows = protocol.run(model, voc_root, config, run_id="t", device="cpu", progress=False,
                        work_dir=tmp_path / "w")
    journal = [json.loads(line) for line in (tmp_path / "w" / "lowshot.jsonl").read_text()
               .splitlines() if line.strip()]
    records = {r["key"]: r["value"] for r in journal if "key" in r}
    for k in (1, 2):
        matrix = np.array([records[f"conv5/k{k}/sample{s}"]["map_per_cost"] for s in range(3)])
        assert matrix.shape == (3, len(config.costs))
        expected = fssb_aggregate(matrix)
        got = {r.metric: r.value for r in rows if r.layer == f"conv5/k{k}" and r.metric != "map"}
        for name in ("map_mean", "map_min", "map_max", "map_std"):
            assert got[name] == pytest.approx(expected[name], abs=1e-9)
        per_sample = sorted((r.seed, r.value) for r in rows
                            if r.layer == f"conv5/k{k}" and r.metric == "map")
        assert [v for _, v in per_sample] == pytest.approx(matrix[:, expected["cost_index"]])


def test_dialects_switch_selection_and_std_together():
    protocol = get_protocol("voc07-lowshot-svm")
    config = protocol.resolve_config()
    assert config.cost_selection == "cv" and config.std_ddof == 1
    for dialect in ("goyal2019", "mmselfsup"):
        config = protocol.resolve_config(dialect=dialect)
        assert config.cost_selection == "test" and config.std_ddof == 0
