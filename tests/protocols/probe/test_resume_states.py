"""Probe / fine-tune / low-shot resume checkpoints with the wrong content: one-line errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dcbench.core.errors import UserError
from dcbench.models.checkpoints import restore_state

from .test_heads import _phase

LOOP = {"format": 1, "position": {"done": 1}, "extra": "{}", "rng": None, "config_hash": None}


@pytest.mark.parametrize("state", [{}, {"probes": {}, "history": "{}", "epoch": 0},
                                   {"probes": {"heads": {"h.linear.weight": torch.zeros(1)}}},
                                   {**LOOP, "state": {}},
                                   {**LOOP, "state": {"heads": {"bad.weight": torch.zeros(2)}}},
                                   {**LOOP, "state": {"heads": {}}, "position": None}])
def test_probe_phase_refuses_a_wrong_checkpoint(tmp_path, state) -> None:
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "t.pt")
    with pytest.raises(UserError, match="does not fit this run|not a dcbench loop") as err:
        _phase(tmp_path, 2)
    assert "\n" not in str(err.value)


def _apply_finetune_like(model: nn.Module):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def apply(state):
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return int(state["iteration"])

    return apply


@pytest.mark.parametrize("state", [{}, [1, 2], {"model": {"weight": torch.zeros(9, 9)}},
                                   {"model": nn.Linear(3, 2).state_dict(), "optimizer": {}}])
def test_finetune_style_states_are_refused(tmp_path, state) -> None:
    torch.save(state, tmp_path / "ft.pt")
    with pytest.raises(UserError, match="does not fit this run"):
        restore_state(tmp_path / "ft.pt", _apply_finetune_like(nn.Linear(3, 2)))


def test_a_fitting_state_is_restored(tmp_path) -> None:
    source = nn.Linear(3, 2)
    opt = torch.optim.SGD(source.parameters(), lr=0.1, momentum=0.9)
    torch.save({"model": source.state_dict(), "optimizer": opt.state_dict(), "iteration": 7},
               tmp_path / "ft.pt")
    target = nn.Linear(3, 2)
    assert restore_state(tmp_path / "ft.pt", _apply_finetune_like(target)) == 7
    assert torch.equal(target.weight, source.weight)
