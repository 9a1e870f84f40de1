"""`dcbench reproduce` and the evals it runs, read back with TensorBoard's reader: each run's
status and the table's deltas (checked against the store and the shipped published row), the
eval's per-epoch head accuracies, its selected head and final rows; `--no-tb` writes none."""

from __future__ import annotations

import json

import pytest

from dcbench.cli.reproduce_live import column_tag
from dcbench.leaderboards.published import load_published
from dcbench.leaderboards.store import ResultsStore

MODEL = "random-alexnet_small-sobel"
LINEAR = ["--set", "epochs=2", "--set", "milestones=[1]"]


def reader(folder):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0,
                                                                      "tensors": 0})
    events.Reload()
    return events


def test_reproduce_reports_status_and_deltas_and_its_evals_report_their_heads(
        cli, capsys, tmp_path, cls_set):
    pytest.importorskip("tensorboard")
    out, store = tmp_path / "plan", tmp_path / "results.sqlite"
    assert cli("reproduce", "thesis-5.3", "--model", MODEL, "--data", f"imagenet={cls_set}",
               "--schedule", "smoke", "--fast", *LINEAR, "--store", store, "--out", out) == 0
    capsys.readouterr()
    run_dir = out / "01-linear-conv-imagenet"
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    rows = ResultsStore(store).results(run_id=run_id, metric="top1_best_epoch", split="val")
    ours = rows.set_index("layer")["value"]
    published = load_published("thesis-5.3").set_index("method").loc["Ours. km-ImNet-Sob"]
    live = reader(out / "tensorboard" / "reproduce")
    assert [(e.step, e.value) for e in live.Scalars("runs/finished")] == [(1, 1.0)]
    for layer in ("conv1", "conv5"):
        assert live.Scalars(f"value/{layer}")[0].value == pytest.approx(ours[layer], abs=0.051)
        assert live.Scalars(f"delta/{layer}")[0].value == pytest.approx(
            ours[layer] - float(published[layer]), abs=0.051)
    assert {"started/01-linear-conv-imagenet/text_summary",
            "status/01-linear-conv-imagenet/text_summary"} <= set(live.Tags()["tensors"])
    # the eval's own run dir: per-epoch held-out (selection heads) and val (final heads)
    # accuracies per head from the one pass (selection_pass: one, the default), the selection
    one = reader(run_dir / "tensorboard" / "one-pass")
    heads = [t for t in one.Tags()["scalars"] if t.startswith("heldout/top1/conv5_")]
    assert heads and all([e.step for e in one.Scalars(t)] == [1, 2] for t in heads)
    log = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    pass_log = [r for r in log if r["phase"] == "one-pass"]
    assert [r["epoch"] for r in pass_log] == [1, 2]
    for split, group in (("val", "final"), ("heldout", "select")):
        tag = next(t for t in one.Tags()["scalars"] if t.startswith(f"{split}/top1/conv1_"))
        head = next(h for h in pass_log[0]["eval"] if h.startswith(f"{group}:conv1|")
                    and tag.endswith(h.split("|", 1)[1].replace("|", "_").replace("=", "")))
        assert [e.value for e in one.Scalars(tag)] == pytest.approx(
            [r["eval"][head]["top1"] for r in pass_log])
    selected = reader(run_dir / "tensorboard" / "selected")
    assert {"conv1/lr", "conv1/wd", "conv1/epoch", "conv1/heldout_top1"} <= \
        set(selected.Tags()["scalars"])
    results = reader(run_dir / "tensorboard" / "results")
    assert results.Scalars("val/conv3/top1_best_epoch")[0].value == \
        pytest.approx(ours["conv3"])


def test_no_tb_writes_no_events(cli, capsys, tmp_path, cls_set):
    out = tmp_path / "plan"
    assert cli("reproduce", "thesis-5.3", "--model", MODEL, "--data", f"imagenet={cls_set}",
               "--schedule", "smoke", "--fast", *LINEAR, "--store", tmp_path / "s.sqlite",
               "--out", out, "--no-tb") == 0
    assert not list(out.rglob("tensorboard"))
    assert json.loads((out / "process.json").read_text())["kind"] == "reproduce"


def test_a_malformed_wandb_target_is_refused_before_anything_runs(cli, capsys, tmp_path):
    assert cli("reproduce", "thesis-5.3", "--model", MODEL, "--wandb", "a/b/c",
               "--out", tmp_path / "p") == 2
    assert "--wandb 'a/b/c' is not PROJECT" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("column, tag", [("conv1", "conv1"),
                                         ("ImageNet top-1", "ImageNet_top-1"),
                                         ("VOC07 (mAP, %)", "VOC07_mAP"), ("Δ", "Δ"),
                                         ("(%)", "column")])
def test_column_tags_keep_only_what_tensorboard_keeps(column, tag):
    assert column_tag(column) == tag
