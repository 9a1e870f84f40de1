"""Low-shot draws: reproducible, n per class, inside the pool, saved and reusable."""

from __future__ import annotations

import numpy as np
import pytest

from dcbench.core.errors import UserError
from dcbench.protocols.low_shot import (
    draw_low_shot,
    draw_outcomes,
    load_draws,
    make_draws,
    save_draws,
    summarize,
)


def test_draws_are_reproducible_balanced_and_inside_the_pool():
    labels = np.repeat(np.arange(4), 10)
    pool = np.setdiff1d(np.arange(40), [0, 10, 20, 30])
    a = draw_low_shot(labels, 3, seed=5, pool=pool)
    assert np.array_equal(a, draw_low_shot(labels, 3, seed=5, pool=pool))
    assert not np.array_equal(a, draw_low_shot(labels, 3, seed=6, pool=pool))
    assert np.bincount(labels[a]).tolist() == [3, 3, 3, 3]
    assert set(a) <= set(pool) and len(set(a)) == 12
    with pytest.raises(ValueError, match="fewer than n=10"):
        draw_low_shot(labels, 10, seed=0, pool=pool)


def test_make_draws_skips_shots_the_data_cannot_hold():
    labels = np.repeat(np.arange(3), 6)
    draws = make_draws(labels, [1, 4, 8], draws=3, seed=0, pool=np.arange(18))
    assert sorted(draws) == [1, 4] and all(len(v) == 3 for v in draws.values())
    assert not np.array_equal(draws[4][0], draws[4][1])  # draw d uses seed + d


def test_saved_draws_round_trip_and_refuse_another_dataset(cls_data, tmp_path):
    from dcbench.data.folders import find_dataset

    train = find_dataset(cls_data, "train")
    draws = make_draws(train.targets, [2], draws=2, seed=0, pool=np.arange(len(train)))
    save_draws(tmp_path / "idx.json", train, np.array([0, 1]), draws)
    held, loaded = load_draws(tmp_path / "idx.json", train)
    assert held.tolist() == [0, 1]
    assert all(np.array_equal(x, y) for x, y in zip(loaded[2], draws[2], strict=True))
    other = find_dataset(cls_data, "val")
    with pytest.raises(UserError, match="different version"):
        load_draws(tmp_path / "idx.json", other)


def test_summary_is_mean_and_sample_std():
    got = summarize([10.0, 20.0, 30.0])
    assert got == {"top1_mean": 20.0, "top1_std": 10.0}


def test_low_shot_run_saves_draws_and_reports_both_inits(cls_data, small_net, tmp_path):
    from dcbench.protocols import get_protocol

    proto = get_protocol("low-shot")
    cfg = proto.resolve_config(schedule="smoke", overrides=[
        "shots=[2]", "draws=2", "iterations=4", "eval_every=2", "batch_size=8"])
    rows = proto.run(small_net, cls_data, cfg, run_id="ls", device="cpu", progress=False,
                     work_dir=tmp_path)
    assert (tmp_path / "low_shot_indices.json").is_file()
    models = {r.model for r in rows}
    assert models == {small_net.name, "random-alexnet_small"}
    per_draw = [r for r in rows if r.metric == "top1" and r.model == small_net.name]
    assert [r.seed for r in per_draw] == [0, 1] and all(r.layer == "all/2-shot" for r in rows)
    mean = next(r.value for r in rows if r.metric == "top1_mean" and r.model == small_net.name)
    assert mean == pytest.approx(np.mean([r.value for r in per_draw]))
    # rerunning in the same work dir reuses every finished piece (resume)
    again = proto.run(small_net, cls_data, cfg, run_id="ls", device="cpu", progress=False,
                      work_dir=tmp_path)
    assert [r.value for r in again] == [r.value for r in rows]


def test_low_shot_keeps_each_draws_hits_and_the_mean_rate(cls_data, tmp_path):
    """Per-item outcomes: each draw's val hits make its `top1` row, the per-image hit rate
    over draws makes `top1_mean`; one set per init (model sha256); the same bytes from a
    second run, and a resumed run reads them back from the journal."""
    from dcbench.core.outcomes import to_bytes
    from dcbench.models import create_backbone
    from dcbench.protocols import get_protocol

    net = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=5)  # != random init
    proto = get_protocol("low-shot")
    cfg = proto.resolve_config(schedule="smoke", overrides=[
        "shots=[2]", "draws=2", "iterations=2", "eval_every=2", "batch_size=8"])

    def run(work_dir):
        protocol = get_protocol("low-shot")
        rows = protocol.run(net, cls_data, cfg, run_id="ls", device="cpu",
                            progress=False, work_dir=work_dir)
        return rows, protocol.item_outcomes()

    rows, entries = run(tmp_path / "a")
    sha = {r.model: r.model_sha256 for r in rows}
    assert len(set(sha.values())) == 2 and len(entries) == 6
    for entry in entries:
        model = next(m for m, s in sha.items() if s == entry.model_sha256)
        row = next(r for r in rows if (r.model, r.metric, r.layer) ==
                   (model, entry.metric, entry.layer) and (entry.metric != "top1"
                                                           or r.seed == entry.seed))
        assert entry.n_items == 24  # 4 classes x 6 val images
        if entry.metric == "top1":
            assert entry.kind == "correct"
            assert 100 * entry.arrays["correct"].mean() == pytest.approx(row.value)
        else:
            assert (entry.metric, entry.kind, entry.seed) == ("top1_mean", "mean", None)
            assert 100 * entry.arrays["values"].mean() == pytest.approx(row.value)
            draws = [e.arrays["correct"] for e in entries if e.metric == "top1"
                     and e.model_sha256 == entry.model_sha256]
            np.testing.assert_array_equal(entry.arrays["values"], np.mean(draws, axis=0))
    _, again = run(tmp_path / "b")
    assert to_bytes(again) == to_bytes(entries)
    _, resumed = run(tmp_path / "a")  # every draw read back from the journal
    assert to_bytes(resumed) == to_bytes(entries)


def test_draw_outcomes_without_some_draws_hits_keep_no_mean_entry():
    """A draw journaled by an older version has no hits: its own entry and the top1_mean
    entry (which needs every draw) are left out, never invented."""
    hits = [np.array([1, 0, 1], bool), None, np.array([0, 0, 1], bool)]
    entries = draw_outcomes("all/2-shot", "L", "s" * 64, 10, hits)
    assert [(e.metric, e.seed) for e in entries] == [("top1", 10), ("top1", 12)]
    full = draw_outcomes("all/2-shot", "L", "s" * 64, 10, [hits[0], hits[2]])
    np.testing.assert_array_equal(full[-1].arrays["values"], [0.5, 0.0, 1.0])
    assert all(e.model_sha256 == "s" * 64 for e in full)


def test_low_shot_runs_through_dali_next_to_the_pil_path(cls_data, tmp_path, monkeypatch):
    """`--set input_pipeline=dali`: the stream batches, the selection and the val passes go
    through DALI (CPU backend), the run says so, and the top-1 stays next to PIL's."""
    pytest.importorskip("nvidia.dali")
    import json

    from PIL import Image

    from dcbench.cli.entry import main
    from dcbench.data.dali_pipeline import DaliLoader

    data = tmp_path / "jpeg"
    for png in cls_data.rglob("*.png"):
        out = data / png.relative_to(cls_data).with_suffix(".jpg")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(png).convert("RGB").save(out, "JPEG", quality=92)
    seen: list[int] = []
    prepare = DaliLoader._prepare
    monkeypatch.setattr(DaliLoader, "_prepare",
                        lambda self, planned: seen.append(1) or prepare(self, planned))
    results = {}
    for pipeline in ("cpu", "dali"):
        out = tmp_path / pipeline
        assert main(["eval", "--protocol", "low-shot", "--model", "arch:alexnet_small?sobel=1",
                     "--data", str(data), "--schedule", "smoke", "--no-progress",
                     "--store", str(tmp_path / "r.sqlite"), "--out", str(out), "--set",
                     f"input_pipeline={pipeline}", "--set", "shots=[2]", "--set", "draws=1",
                     "--set", "iterations=4", "--set", "eval_every=2",
                     "--set", "inits=[pretrained]"]) == 0
        assert json.loads((out / "run.json").read_text())["input_pipeline"] == pipeline
        results[pipeline] = {r["metric"]: r["value"]
                             for r in json.loads((out / "results.json").read_text())}
        assert bool(seen) == (pipeline == "dali")
    assert results["cpu"].keys() == results["dali"].keys()
    # 24 val images: one image is 4.2 points; the pixels differ by ~0.1 grey level
    assert abs(results["cpu"]["top1"] - results["dali"]["top1"]) <= 12.5
