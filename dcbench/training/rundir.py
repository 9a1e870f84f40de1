"""The run directory of `dcbench train`, written so that a SIGKILL at any point is recoverable.

Layout:
    config.yaml              resolved TrainConfig
    versions.json            package versions, code revision, device
    log.jsonl                one JSON line per finished epoch
    assignments/epoch_NNNN.npy   int64 pseudo-label per image (-1 = not clustered / skipped)
    checkpoints/latest/      hub format (config.json + model.safetensors) + state.pt
    final/                   hub format + README.md model card, written after the last epoch

The commit point of an epoch is the swap of a fully written `checkpoints/.latest.tmp` folder
onto `checkpoints/latest` (two renames; a kill between them is repaired on resume from
`checkpoints/.latest.old`). Everything else is written atomically (temp file + rename), and
log lines of epochs after the committed state are dropped on resume.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcbench.core.faults import inject_fault
from dcbench.core.files import atomic_path, write_text
from dcbench.core.runlog import read_log_records
from dcbench.models.backbone import Backbone
from dcbench.models.checkpoints import read_checkpoint, save_hub_dir

STATE_FILE = "state.pt"


class RunDir:
    """Paths and atomic I/O of one training run."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.versions = self.root / "versions.json"
        self.log = self.root / "log.jsonl"
        self.assignments = self.root / "assignments"
        self.checkpoints = self.root / "checkpoints"
        self.latest = self.checkpoints / "latest"
        self.final = self.root / "final"
        self._tmp = self.checkpoints / ".latest.tmp"
        self._old = self.checkpoints / ".latest.old"

    @property
    def state(self) -> Path:
        """The resumable state of the last finished epoch."""
        return self.latest / STATE_FILE

    def recover(self) -> None:
        """Repair an interrupted swap and drop half-written temp folders."""
        if not self.latest.exists() and self._old.exists():
            os.replace(self._old, self.latest)
        for leftover in (self._tmp, self._old):
            if leftover.exists():
                shutil.rmtree(leftover)

    def has_state(self) -> bool:
        """True when a finished epoch can be resumed from."""
        self.recover()
        return self.state.is_file()

    def assignment_path(self, epoch: int) -> Path:
        """`assignments/epoch_NNNN.npy`."""
        return self.assignments / f"epoch_{epoch:04d}.npy"

    def save_assignment(self, epoch: int, labels: np.ndarray) -> None:
        """Write one epoch's pseudo-labels atomically."""
        with atomic_path(self.assignment_path(epoch)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.asarray(labels, dtype=np.int64))

    def load_assignment(self, epoch: int) -> np.ndarray:
        """One epoch's pseudo-labels."""
        return np.load(self.assignment_path(epoch), allow_pickle=False)

    def commit(
        self, backbone: Backbone, state: dict[str, Any], extra_config: dict[str, Any]
    ) -> None:
        """Write hub files + state.pt into a temp folder, then swap it onto `latest`."""
        if self._tmp.exists():
            shutil.rmtree(self._tmp)
        save_hub_dir(backbone, self._tmp, card=None, extra_config=extra_config)
        with atomic_path(self._tmp / STATE_FILE) as tmp:
            torch.save(state, tmp)
        if self.latest.exists():
            os.replace(self.latest, self._old)
        inject_fault("swap", int(state.get("epoch", 0)) - 1)
        os.replace(self._tmp, self.latest)
        if self._old.exists():
            shutil.rmtree(self._old)

    def load_state(self) -> dict[str, Any]:
        """The committed state (tensors, numbers, strings only: `weights_only=True`)."""
        return read_checkpoint(self.state)

    def read_log(self) -> list[dict[str, Any]]:
        """Epoch records from log.jsonl (a torn last line is ignored)."""
        return read_log_records(self.log)

    def truncate_log(self, next_epoch: int) -> None:
        """Keep only the records of epochs before `next_epoch` (those of the committed state)."""
        kept = [r for r in self.read_log() if int(r.get("epoch", -1)) < next_epoch]
        write_text(self.log, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

    def write_final(self, backbone: Backbone, card: str, extra_config: dict[str, Any]) -> None:
        """The published model: hub format with a model card, swapped in atomically."""
        tmp = self.root / ".final.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        save_hub_dir(backbone, tmp, card=card, extra_config=extra_config)
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(tmp, self.final)
