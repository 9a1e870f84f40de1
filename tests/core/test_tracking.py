"""Trackers: the no-op base, TensorBoard events read back with TensorBoard's own reader
(steps once each across a resumed section), W&B offline runs read back from the `.wandb`
file, and nothing opened (no import error) when the extras are missing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dcbench.core import trackers
from dcbench.core.errors import UserError
from dcbench.core.tracking import (
    MultiTracker,
    Tracker,
    TrackingOptions,
    activated,
    active,
    parse_wandb_target,
)

from .wandb_records import wait_for_rows, wandb_run_records


def tb_reader(folder: Path):
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    reader = accumulator.EventAccumulator(str(folder), size_guidance={
        "scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    reader.Reload()
    return reader


class Recorder(Tracker):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def start_section(self, section, first_step):
        self.calls.append(("start", section, first_step))

    def scalars(self, section, step, values):
        self.calls.append(("scalars", section, step, dict(values)))

    def close(self):
        self.calls.append(("close",))


def test_base_tracker_does_nothing_and_active_defaults_to_it():
    tracker = active()
    assert type(tracker) is Tracker
    tracker.scalars("train", 0, {"a": 1.0})
    tracker.image("train", 0, "x", np.zeros((2, 2, 3), np.uint8))
    tracker.close()


def test_activated_sets_the_active_tracker_and_closes_it():
    a, b = Recorder(), Recorder()
    with activated(MultiTracker([a, b])):
        active().scalars("s", 3, {"x": 1})
    assert active().__class__ is Tracker
    for rec in (a, b):
        assert rec.calls == [("scalars", "s", 3, {"x": 1}), ("close",)]


@pytest.mark.parametrize("text, expected", [("proj", ("proj", None)),
                                            ("my-proj/team_1", ("my-proj", "team_1"))])
def test_parse_wandb_target(text, expected):
    assert parse_wandb_target(text) == expected


@pytest.mark.parametrize("text", ["", "a/b/c", "/x", "a b", "p/"])
def test_parse_wandb_target_refuses_malformed_names(text):
    with pytest.raises(UserError, match="--wandb"):
        parse_wandb_target(text)


def test_finite_keeps_only_finite_numbers():
    values = {"a": 1, "b": 2.5, "c": None, "d": float("nan"), "e": True, "f": "x",
              "g": np.float32(0.5), "h": float("inf")}
    assert trackers.finite(values) == {"a": 1.0, "b": 2.5, "g": 0.5}


def test_tensorboard_resumed_section_has_each_step_once(tmp_path):
    pytest.importorskip("tensorboard")
    first = trackers.tensorboard_tracker(tmp_path / "tb")
    first.start_section("train", 0)
    for step in range(3):  # steps 0, 1, 2; the run dies after writing step 2 uncommitted
        first.scalars("train", step, {"loss": float(step), "skip": None})
    first.histogram("train", 0, "sizes", np.array([3, 1, 2]))
    first.image("train", 0, "img", np.full((4, 5, 3), 7, np.uint8))
    first.text("train", 0, "note", "hello")
    first.close()
    second = trackers.tensorboard_tracker(tmp_path / "tb")
    second.start_section("train", 2)  # the resumed loop starts again at step 2
    for step in (2, 3):
        second.scalars("train", step, {"loss": 10.0 + step})
    second.close()
    reader = tb_reader(tmp_path / "tb" / "train")
    assert sorted(reader.Tags()["scalars"]) == ["loss"]
    events = reader.Scalars("loss")
    assert [e.step for e in events] == [0, 1, 2, 3]
    assert [e.value for e in events] == [0.0, 1.0, 12.0, 13.0]
    assert reader.Tags()["histograms"] == ["sizes"]
    assert reader.Histograms("sizes")[0].histogram_value.num == 3
    image = reader.Images("img")[0]
    assert (image.width, image.height) == (5, 4)


def test_open_tracker_without_the_extras_opens_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setitem(sys.modules, "wandb", None)
    tracker = trackers.open_tracker(tmp_path / "run", TrackingOptions(wandb="proj"),
                                    config={}, name="x")
    assert type(tracker) is Tracker
    assert not (tmp_path / "run").exists()
    assert "wandb is not installed" in capsys.readouterr().err


def test_open_tracker_off_rank_zero_and_with_no_tb(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert type(trackers.open_tracker(tmp_path, TrackingOptions(), config={}, name="x")) \
        is Tracker
    monkeypatch.setenv("RANK", "0")
    assert type(trackers.open_tracker(tmp_path, TrackingOptions(tensorboard=False),
                                      config={}, name="x")) is Tracker
    assert not (tmp_path / "tensorboard").exists()


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb-dir").mkdir()
    return tmp_path / "wandb-dir"


def test_wandb_offline_run_is_resumed_with_the_saved_id(tmp_path, wandb_offline, capsys):
    run_dir = tmp_path / "run"
    options = TrackingOptions(tensorboard=False, wandb="proj")
    first = trackers.open_tracker(run_dir, options, config={"k": 6}, name="run")
    first.scalars("train", 0, {"loss": 2.0})
    first.scalars("train", 1, {"loss": 1.5})
    first.close()
    assert "wandb sync" in capsys.readouterr().err
    second = trackers.open_tracker(run_dir, options, config={"k": 6}, name="run")
    second.scalars("train", 2, {"loss": 1.0})
    second.close()
    runs = sorted((wandb_offline / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 2
    history = wait_for_rows(runs, 3)
    ids = {record.run.run_id for path in runs for record in wandb_run_records(path)
           if record.WhichOneof("record_type") == "run"}
    assert len(ids) == 1  # the same W&B run, continued
    config = {item.key: item.value_json for path in runs[:1]
              for record in wandb_run_records(path)
              if record.WhichOneof("record_type") == "run" for item in record.run.config.update}
    assert config["k"] == "6"
    assert [(row["train/step"], row["train/loss"]) for row in history] == \
        [(0, 2.0), (1, 1.5), (2, 1.0)]


def test_wandb_init_waits_while_a_killed_run_still_holds_its_id(monkeypatch):
    """A run resumed right after a kill: W&B's service still holds the id for a moment
    ("run ID ... is in use"); init is retried until it is free, any other error is raised."""
    from dcbench.core import trackers

    calls = []

    class FakeWandb:
        @staticmethod
        def init(**kwargs):
            calls.append(kwargs)
            if len(calls) < 3:
                raise RuntimeError("run ID 8e3e1f28 is in use")
            return "run"

    monkeypatch.setattr(trackers.time, "sleep", lambda s: None)
    assert trackers._init_when_free(FakeWandb, {"id": "8e3e1f28"}) == "run"
    assert len(calls) == 3

    class Broken:
        @staticmethod
        def init(**kwargs):
            raise RuntimeError("bad project name")

    with pytest.raises(RuntimeError, match="bad project"):
        trackers._init_when_free(Broken, {})

    class Held:
        @staticmethod
        def init(**kwargs):
            raise RuntimeError("run ID 8e3e1f28 is in use")

    with pytest.raises(UserError, match="W&B still holds run 8e3e1f28"):
        trackers._init_when_free(Held, {"id": "8e3e1f28"}, wait_s=0)
