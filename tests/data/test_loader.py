"""`data.loader.DataLoader`: Ctrl-C while workers fork stops the run; a killed worker is one
line (LoaderWorkerDied) saying so and how to resume."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
from torch.utils import data as torch_data

from dcbench.core.errors import LoaderWorkerDied, UserError
from dcbench.data.loader import make_loader


class Items(torch_data.Dataset):
    """8 tiny images; item `kill_at` SIGKILLs the worker process reading it."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.kill_at = kill_at

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int):
        if i == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return torch.zeros(3, 4, 4), 0, i


def test_ctrl_c_while_workers_fork_stops_the_run(monkeypatch):
    real = torch_data.DataLoader._get_iterator

    def forking(self):
        iterator = real(self)
        try:  # as logging's at-fork hook does: the KeyboardInterrupt is "ignored"
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        return iterator

    monkeypatch.setattr(torch_data.DataLoader, "_get_iterator", forking)
    loader = make_loader(Items(), 2, workers=1)
    with pytest.raises(KeyboardInterrupt):
        next(iter(loader))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_in_process_loader_is_untouched():
    batches = list(make_loader(Items(), 4, workers=0))
    assert [b.indices.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_a_killed_worker_is_one_line_saying_how_to_resume():
    loader = make_loader(Items(kill_at=3), 2, workers=1)
    with pytest.raises(LoaderWorkerDied) as caught:
        list(loader)
    text = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in text
    assert "loader worker process died (pid " in text
    assert "--resume" in text
