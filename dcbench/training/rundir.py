"""The run directory of `dcbench train`, written so that a SIGKILL at any point is recoverable.

Layout:
    .dcbench-run.json        marker only dcbench writes: the folder is a `dcbench train` run
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

A folder is taken for a run only when it holds the marker and its config.yaml and
versions.json read as a TrainConfig and a version record; dcbench never deletes a file it did
not write (a user's file inside `final/` or `checkpoints/latest/` is carried over a swap).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from dcbench.core.errors import UserError
from dcbench.core.faults import inject_fault
from dcbench.core.files import (
    atomic_path,
    check_output_dir,
    staged_dir,
    write_bytes,
    write_json,
    write_text,
)
from dcbench.core.runlog import read_log_records
from dcbench.models.backbone import Backbone
from dcbench.models.checkpoints import read_checkpoint, save_hub_dir
from dcbench.training.config import TrainConfig

STATE_FILE = "state.pt"
MARKER_FILE = ".dcbench-run.json"
MARKER = {"dcbench": "train-run", "format": 1}


class RunDir:
    """Paths and atomic I/O of one training run."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.marker = self.root / MARKER_FILE
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

    def is_run(self) -> bool:
        """True when the folder holds a `dcbench train` run: the marker only dcbench writes,
        plus its config and versions files."""
        return (self.marker.is_file() and self.config.is_file() and self.versions.is_file()
                and _read_json(self.marker) == MARKER)

    def check_contents(self) -> None:
        """Refuse a marked run whose config.yaml / versions.json are not what dcbench wrote."""
        try:
            saved = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            saved = None
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        if not isinstance(saved, dict) or not set(saved) <= known or "arch" not in saved:
            raise UserError(f"{self.config} is not the TrainConfig of a dcbench train run "
                            "(edited or replaced?); choose a new --out")
        if not isinstance(_read_json(self.versions), dict):
            raise UserError(f"{self.versions} is not the version record of a dcbench train "
                            "run (edited or replaced?); choose a new --out")

    def has_finished_epoch(self) -> bool:
        """True when at least one epoch was committed or logged (there is work to lose)."""
        return self.has_state() or bool(self.read_log())

    def check_target(self, resume: bool) -> None:
        """Refuse, before anything is written, an --out that is not ours or cannot be written.

        A non-empty folder that is not a run is never written into (its files would be lost);
        `--resume` needs a run to continue.
        """
        check_output_dir(self.root)
        is_run = self.is_run()
        if self.root.is_dir() and not is_run and any(self.root.iterdir()):
            raise UserError(f"--out {self.root} exists, is not empty and holds no dcbench train "
                            f"run (no {MARKER_FILE} marker); choose a new or empty folder")
        if is_run:
            self.check_contents()
        if resume and not is_run:
            raise UserError(f"nothing to resume in {self.root} (no run there); drop --resume "
                            "to start a new run")

    def begin(self, config_text: str, versions: dict[str, Any], start: int) -> None:
        """Write config.yaml + versions.json; a new run folder appears whole (staged, renamed)."""
        if not self.is_run():
            with staged_dir(self.root) as stage:
                write_json(stage / MARKER_FILE, MARKER)
                write_text(stage / "config.yaml", config_text)
                write_json(stage / "versions.json", versions)
            return
        self.recover()
        self.truncate_log(start)
        write_text(self.config, config_text)
        write_json(self.versions, versions)

    def recover(self) -> None:
        """Repair an interrupted swap and drop half-written temp folders."""
        _settle(self.latest, self._old)
        if self._tmp.exists():
            shutil.rmtree(self._tmp)  # only dcbench's files: foreign ones move after a swap

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
        buffer = io.BytesIO()  # a file name would land in the zip (bytes differ run to run)
        torch.save(state, buffer)
        write_bytes(self._tmp / STATE_FILE, buffer.getvalue())
        if self.latest.exists():
            os.replace(self.latest, self._old)
        inject_fault("swap", int(state.get("epoch", 0)) - 1)
        os.replace(self._tmp, self.latest)
        _settle(self.latest, self._old)

    def load_state(self) -> dict[str, Any]:
        """The committed state (tensors, numbers, strings only: `weights_only=True`)."""
        return read_checkpoint(self.state)

    def load_checked_state(self, backbone: Backbone, n_images: int) -> dict[str, Any]:
        """`load_state`, refusing (one line) a state that does not fit this model and dataset."""
        state = self.load_state()
        check_state(state, backbone, n_images, self.state)
        return state

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
        old = self.root / ".final.old"
        _settle(self.final, old)  # a swap killed half-way
        if self.final.exists():
            os.replace(self.final, old)
        os.replace(tmp, self.final)
        _settle(self.final, old)


def _settle(target: Path, old: Path) -> None:
    """Finish (or repair) the swap of a new folder onto `target`, whose previous content was
    renamed to `old`: with no `target`, `old` is put back; else the entries of `old` that the
    new folder lacks (a user's files: dcbench writes the same names each time) move into
    `target` and only dcbench's own files are deleted with `old`."""
    if not old.exists():
        return
    if not target.exists():
        os.replace(old, target)
        return
    for entry in old.iterdir():
        if not (target / entry.name).exists():
            os.replace(entry, target / entry.name)
    shutil.rmtree(old)


def _read_json(path: Path) -> Any:
    """Parsed JSON, or None when the file is unreadable or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None


STATE_KEYS = ("epoch", "model", "optimizer", "prev_labels", "top_layer_out")


def check_state(state: Any, backbone: Backbone, n_images: int, path: Path) -> None:
    """Refuse a resume state whose content does not fit: keys, types, shapes, label count."""
    where = f"resume state {path}"
    if not isinstance(state, dict):
        raise UserError(f"{where} is not a dict of training state")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise UserError(f"{where} lacks {', '.join(missing)}; expected {', '.join(STATE_KEYS)}")
    for key in ("epoch", "top_layer_out"):
        value = state[key]
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{where}: {key} must be an integer >= 1, got {value!r}")
    labels = state["prev_labels"]
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype.is_floating_point:
        raise UserError(f"{where}: prev_labels must be a 1-d integer tensor")
    if len(labels) != n_images:
        raise UserError(f"{where}: prev_labels has {len(labels)} entries but the dataset has "
                        f"{n_images} images; resume on the same --data")
    model = state["model"]
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise UserError(f"{where}: model must be a state_dict of tensors")
    out = int(state["top_layer_out"])
    own = {k: tuple(v.shape) for k, v in backbone.state_dict().items()
           if not k.startswith("top_layer.")}
    own.update({"top_layer.weight": (out, backbone.embedding_dim), "top_layer.bias": (out,)})
    theirs = {k: tuple(v.shape) for k, v in model.items()}
    if set(own) != set(theirs):
        odd = sorted(set(own) ^ set(theirs))
        raise UserError(f"{where}: model keys do not match {backbone.config.get('arch')} "
                        f"({len(odd)} differ, e.g. {odd[0]})")
    wrong = [k for k in own if own[k] != theirs[k]]
    if wrong:
        raise UserError(f"{where}: {wrong[0]} has shape {theirs[wrong[0]]}, the model needs "
                        f"{own[wrong[0]]}")
    _check_optimizer(state["optimizer"], backbone, where)


def _check_optimizer(opt: Any, backbone: Backbone, where: str) -> None:
    """The SGD state must hold one momentum buffer per trunk parameter, of its shape."""
    if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict) \
            or not isinstance(opt.get("param_groups"), list) or len(opt["param_groups"]) != 1:
        raise UserError(f"{where}: optimizer must be the state_dict of one SGD param group")
    shapes = [tuple(p.shape) for p in backbone.trunk_parameters()]
    if len(opt["param_groups"][0].get("params", [])) != len(shapes):
        raise UserError(f"{where}: optimizer holds a different number of parameters than "
                        f"{backbone.config.get('arch')} ({len(shapes)})")
    for index, slot in opt["state"].items():
        buf = slot.get("momentum_buffer") if isinstance(slot, dict) else None
        ok = isinstance(index, int) and 0 <= index < len(shapes)
        if not ok or (buf is not None and (not isinstance(buf, torch.Tensor)
                                           or tuple(buf.shape) != shapes[index])):
            raise UserError(f"{where}: optimizer momentum for parameter {index} does not fit "
                            "the model")
