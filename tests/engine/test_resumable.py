"""The one resumable loop: exact resume, the checkpoint format, config and format refusals,
the RNG switch, and the result journal."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dcbench.core.errors import UserError
from dcbench.engine.resumable import (
    FORMAT,
    LoopCheckpoint,
    ResultJournal,
    ResumableLoop,
    StateBundle,
)


def _run(path, total, crash_at=None, every=2, rng=True):
    """A tiny model trained by a loop whose step draws dropout from the global RNG."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Dropout(0.5), nn.Linear(5, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.linspace(-1, 1, 12).view(4, 3)
    ckpt = LoopCheckpoint(path, "cfg", rng=rng) if path is not None else None
    loop = ResumableLoop(total, state=StateBundle(model=model, optimizer=opt), checkpoint=ckpt,
                         every=every, extra={"losses": []})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        loop.resume()
        for step in loop:
            if crash_at is not None and step == crash_at:
                raise KeyboardInterrupt
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            loop.extra["losses"].append(float(loss.detach()))
    return model, loop.extra["losses"]


def test_resumed_loop_equals_uninterrupted_bit_for_bit(tmp_path):
    straight, losses = _run(None, 7)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "c.pt", 7, crash_at=5)  # checkpoint after step 4 survives
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    assert payload["format"] == FORMAT and payload["position"] == {"iteration": 4}
    assert set(payload["state"]) == {"model", "optimizer"} and payload["rng"] is not None
    resumed, resumed_losses = _run(tmp_path / "c.pt", 7)
    assert resumed_losses == losses  # the extra record survives the restart
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_without_rng_the_dropout_stream_is_not_restored(tmp_path):
    straight, _ = _run(None, 7, rng=False)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "c.pt", 7, crash_at=5, rng=False)
    resumed, _ = _run(tmp_path / "c.pt", 7, rng=False)
    assert any(not torch.equal(p, q) for p, q in zip(straight.parameters(),
                                                      resumed.parameters(), strict=True))


def test_finished_loop_resumes_as_complete_and_saves_the_last_step(tmp_path):
    _run(tmp_path / "c.pt", 5, every=100)
    assert torch.load(tmp_path / "c.pt", weights_only=True)["position"]["iteration"] == 5
    model, losses = _run(tmp_path / "c.pt", 5)
    assert len(losses) == 5  # nothing retrained, the record comes from the checkpoint


def test_other_config_and_foreign_files_are_refused(tmp_path):
    _run(tmp_path / "c.pt", 2)
    model = nn.Sequential(nn.Linear(3, 5), nn.Dropout(0.5), nn.Linear(5, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(UserError, match="different protocol config"):
        LoopCheckpoint(tmp_path / "c.pt", "other").load(StateBundle(model=model, optimizer=opt))
    torch.save({"model": model.state_dict()}, tmp_path / "old.pt")  # a pre-engine checkpoint
    with pytest.raises(UserError, match="format"):
        LoopCheckpoint(tmp_path / "old.pt").load(StateBundle(model=model))
    assert LoopCheckpoint(tmp_path / "none.pt").load(StateBundle(model=model)) is None


def test_journal_skips_a_torn_line(tmp_path):
    journal = ResultJournal(tmp_path / "j.jsonl")
    journal.record("a", 1.5)
    journal.record("b", [1, 2])
    with open(tmp_path / "j.jsonl", "a") as f:
        f.write('{"key": "c", "val')  # killed mid-write
    assert journal.completed() == {"a": 1.5, "b": [1, 2]}
    assert ResultJournal(None).completed() == {}


def test_journal_ignores_other_configs_and_torn_lines(tmp_path):
    journal = ResultJournal(tmp_path / "svm.jsonl", config_hash="hash-a")
    journal.record("conv5/0", {"cost": 1.0})
    journal.record("conv5/1", [1, 2])
    ResultJournal(tmp_path / "svm.jsonl", config_hash="hash-b").record("conv5/2", 3)
    with open(tmp_path / "svm.jsonl", "a") as handle:
        handle.write('{"key": "conv5/3", "val')  # a crash mid-write
    again = ResultJournal(tmp_path / "svm.jsonl", config_hash="hash-a")
    assert again.get("conv5/0") == {"cost": 1.0} and again.get("conv5/1") == [1, 2]
    assert again.get("conv5/2") is None and again.get("conv5/3") is None


def test_journal_without_a_path_keeps_records_in_memory():
    journal = ResultJournal(None, config_hash="h")
    journal.record("k", 1)
    assert journal.get("k") == 1 and journal.path is None


def test_checkpoint_bytes_do_not_depend_on_the_file_name(tmp_path):
    """torch.save into a named temp file records that name in the zip; same state, same bytes."""
    for name in ("a.pt", "b.pt"):
        with pytest.raises(KeyboardInterrupt):
            _run(tmp_path / name, total=3, crash_at=2)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
