"""The demo's whole-demo progress: ETA from expected costs rescaled by measured seconds.

The reference rule is written out here: remaining seconds = sum over the steps left of
cost x (seconds / cost of the finished steps of that kind, else of all finished steps, else
the reference rate).
"""

from __future__ import annotations

import json

import pytest

import dcbench.cli.demo_steps as demo_steps
from dcbench.cli.demo import FULL, QUICK, DemoSize, plan
from dcbench.cli.demo_steps import REFERENCE_RATE, Measured, PlannedStep, Steps, clock, eta_seconds


def _reference_eta(remaining, finished):
    total = 0.0
    for kind, cost in remaining:
        same = [f for f in finished if f[0] == kind]
        pool = same or finished
        rate = (sum(f[2] for f in pool) / sum(f[1] for f in pool)) if pool else REFERENCE_RATE
        total += cost * rate
    return total


def test_eta_uses_the_kinds_measured_rate_then_the_overall_one():
    finished = [("train", 100.0, 50.0), ("eval:knn", 10.0, 1.0), ("train", 300.0, 250.0)]
    remaining = [("train", 200.0), ("eval:knn", 30.0), ("eval:nmi", 40.0), ("report", 5.0)]
    measured = Measured(list(finished))
    assert eta_seconds(remaining, measured) == pytest.approx(_reference_eta(remaining,
                                                                            finished))
    # train: 300 s / 400 units; knn 0.1 s/unit; nmi and report: all finished, 301/410
    assert measured.rate("train") == pytest.approx(0.75)
    assert measured.rate("eval:nmi") == pytest.approx(301 / 410)
    assert Measured().rate("train") == REFERENCE_RATE
    assert eta_seconds([], measured) == 0.0


def test_clock():
    assert clock(0) == "00:00" and clock(61.4) == "01:01" and clock(3725) == "1:02:05"


def test_steps_show_progress_and_an_eta_that_follows_measured_time(tmp_path, capsys,
                                                                   monkeypatch):
    # each fake command "takes" a known number of seconds of a fake clock
    now = [0.0]
    seconds = {"a": 10.0, "b": 30.0, "c": 5.0}
    monkeypatch.setattr(demo_steps.time, "perf_counter", lambda: now[0])

    def fake_main(argv):
        now[0] += seconds[argv[0]]
        return 0

    monkeypatch.setattr(demo_steps, "main", fake_main)
    state_file = tmp_path / "demo.json"
    steps = Steps(state_file, {}, bar=False)
    steps.add(PlannedStep("first", ["a"], cost=100.0, kind="train"))
    steps.add(PlannedStep("second", ["b"], cost=100.0, kind="train"))
    steps.add(PlannedStep("third", ["c"], cost=50.0, kind="report"))
    steps.run_all()
    out = capsys.readouterr().out
    # before step 1: nothing measured, the reference rate: 250 units
    assert f"(step 1/3, demo 0% done, ETA {clock(250 * REFERENCE_RATE)})" in out
    # after step 1: 10 s for 100 train units -> 0.1 s/unit for all that is left
    assert f"(step 2/3, demo {10 / (10 + 15):.0%} done, ETA {clock(15)})" in out
    # after step 2: train is 40 s / 200 units; report has no measurement: the overall 0.2
    assert f"(step 3/3, demo {40 / (40 + 10):.0%} done, ETA {clock(10)})" in out
    state = json.loads(state_file.read_text())
    assert state["done"] == ["a", "b", "c"] and state["seconds"] == {"a": 10.0, "b": 30.0,
                                                                     "c": 5.0}
    # --resume: the finished steps are skipped and their measured times calibrate the ETA
    capsys.readouterr()
    again = Steps(state_file, state, bar=False)
    again.add(PlannedStep("first", ["a"], cost=100.0, kind="train"))
    again.add(PlannedStep("report", ["c"], cost=50.0, kind="report", always=True))
    again.run_all()
    out = capsys.readouterr().out
    assert "first: done before, skipped" in out
    # the report's rate falls back to the 10 s / 100 units measured by the first run
    assert f"(step 2/2, demo {10 / (10 + 5):.0%} done, ETA {clock(5)})" in out


@pytest.mark.parametrize("size", [FULL, QUICK, DemoSize(
    per_class=12, val_per_class=6, voc_images=(8, 8, 8), epochs=3, k=8, digit_epochs=2,
    digit_k=12, digits_per_class=12, linear=(), low_shot=("shots=[2]", "draws=1"),
    voc_iters=4)])
def test_the_plan_holds_every_step_with_a_positive_cost(tmp_path, size):
    steps = Steps(tmp_path / "demo.json", {}, bar=False)
    plan(steps, size, tmp_path, str(tmp_path / "r.sqlite"), 0)
    kinds = [s.kind for s in steps.plan]
    assert kinds.count("train") == 3 and kinds[-1] == "report" and kinds[:2] == ["data"] * 2
    assert len([k for k in kinds if k.startswith("eval:")]) == 16 + 6 + 2 + 1
    assert all(s.cost > 0 for s in steps.plan)
