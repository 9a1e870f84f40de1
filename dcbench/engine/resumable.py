"""The one resumable iteration loop and its one checkpoint format (every fine-tune and probe).

A loop runs `total` steps (SGD iterations, or epochs for the probes). After each step that
is due (every `every` steps, and the last) it writes one checkpoint file atomically:

    {"format": 1, "position": {"iteration": steps done, ...caller keys},
     "state": {name: state_dict, ...}, "extra": JSON text (curves, histories),
     "rng": {"torch": CPU state, "cuda": [...]} or None, "config_hash": str}

and a killed run started again resumes after the last saved step. Checkpoints are read
through `dcbench.models.checkpoints.restore_state` (the one safe loader). The RNG is saved
only when the caller asks (`rng=True`): loops whose randomness is pinned by seeded
generators (the probes, low-shot) do not need it; the VOC fine-tunes, whose dropout draws
from the global RNG, do. A checkpoint written under another config hash is refused.

`ResultJournal` is the other half of resuming multi-run protocols: an append-only
`key -> value` record of finished pieces (e.g. one low-shot draw), read back on restart.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from dcbench.core.distributed import current
from dcbench.core.errors import UserError
from dcbench.core.files import append_line, write_bytes
from dcbench.core.progress import progress_bar
from dcbench.core.runlog import parse_log_records
from dcbench.models.checkpoints import restore_state

FORMAT = 1


class Stateful(Protocol):
    """Anything with `state_dict()` / `load_state_dict()` (modules, optimizers, schedulers)."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> Any: ...


class StateBundle:
    """Several named `Stateful`s saved and restored as one (`{name: state_dict}`)."""

    def __init__(self, **objects: Stateful) -> None:
        self.objects = objects

    def state_dict(self) -> dict[str, Any]:
        """Each object's state under its name."""
        return {name: obj.state_dict() for name, obj in self.objects.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore each object from its entry."""
        for name, obj in self.objects.items():
            obj.load_state_dict(state[name])


def status(message: str) -> None:
    """Status lines go to stderr, so stdout stays machine-readable (the result table); under
    torchrun only rank 0 prints them (the others compute the same lines)."""
    if not current().is_main:
        return
    print(message, file=sys.stderr, flush=True)


@dataclasses.dataclass
class LoopCheckpoint:
    """One checkpoint file of a resumable loop (see the module docstring for the format)."""

    path: Path
    config_hash: str = ""  # "" = any config may resume it
    rng: bool = False  # save and restore torch's CPU (and CUDA) RNG state

    def save(self, state: Stateful, position: Mapping[str, int], extra: Mapping[str, Any]
             ) -> None:
        """Write the full loop state (atomic: a crash leaves the previous checkpoint)."""
        payload = {
            "format": FORMAT,
            "position": {k: int(v) for k, v in position.items()},
            "state": state.state_dict(),
            "extra": json.dumps(extra),
            "rng": None,
            "config_hash": self.config_hash,
        }
        if self.rng:
            payload["rng"] = {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            }
        buffer = io.BytesIO()  # a temp file's name would land in the zip (bytes would differ)
        torch.save(payload, buffer)
        write_bytes(Path(self.path), buffer.getvalue())

    def load(self, state: Stateful) -> tuple[dict[str, int], dict[str, Any]] | None:
        """Restore `state` (and the RNG if saved); (position, extra), or None if no file."""
        path = Path(self.path)
        if not path.is_file():
            return None

        def apply(payload: Any) -> tuple[dict[str, int], dict[str, Any]]:
            if not isinstance(payload, dict) or payload.get("format") != FORMAT:
                raise UserError(f"{path} is not a dcbench loop checkpoint of format {FORMAT}; "
                                "use a fresh --work-dir")
            if self.config_hash and payload.get("config_hash") != self.config_hash:
                raise UserError(f"{path} was written with a different protocol config; "
                                "use a fresh --work-dir (or the same settings) to resume")
            state.load_state_dict(payload["state"])
            rng = payload.get("rng")
            if self.rng and rng:
                torch.set_rng_state(rng["torch"])
                if rng["cuda"] and torch.cuda.is_available():
                    torch.cuda.set_rng_state_all(rng["cuda"])
            return dict(payload["position"]), json.loads(payload["extra"])

        # content that does not fit (wrong keys or shapes) is one line, not a traceback
        return restore_state(path, apply)

    def discard(self) -> None:
        """Remove the file (a finished run that should not be resumed again)."""
        Path(self.path).unlink(missing_ok=True)


class ResumableLoop:
    """`for step in loop:` runs steps `position['iteration']` .. `total - 1`, resumable.

    The body does one step and may update `loop.position` (its own keys) and `loop.extra`
    (JSON-able records); after the body the loop counts the step, advances the progress
    bar (with a total and an ETA) and saves a checkpoint when due. Call `resume()` first to
    load an existing checkpoint (it returns the steps already done).
    """

    def __init__(
        self,
        total: int,
        *,
        state: Stateful,
        checkpoint: LoopCheckpoint | None = None,
        every: int = 1,
        desc: str = "train",
        unit: str = "it",
        progress: bool = False,
        position: Mapping[str, int] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.total = int(total)
        self.state = state
        self.checkpoint = checkpoint
        self.every = max(int(every), 1)
        self.desc, self.unit, self.progress = desc, unit, progress
        self.position: dict[str, int] = {"iteration": 0, **(position or {})}
        self.extra: dict[str, Any] = dict(extra or {})
        self.bar: Any = None

    @property
    def done(self) -> int:
        """Steps completed so far."""
        return int(self.position["iteration"])

    def resume(self) -> int:
        """Load the checkpoint if there is one; the number of steps already done."""
        loaded = self.checkpoint.load(self.state) if self.checkpoint is not None else None
        if loaded is not None:
            self.position, self.extra = loaded
            where = ("complete" if self.done >= self.total
                     else f"resuming at {self.unit} {self.done + 1}/{self.total}")
            status(f"{self.desc}: {where} (from {self.checkpoint.path})")
        return self.done

    def set_postfix(self, **values: Any) -> None:
        """Show values (e.g. the loss) next to the progress bar."""
        if self.bar is not None and self.progress:
            self.bar.set_postfix(**values)

    def save(self) -> None:
        """Write the checkpoint now (no-op without one)."""
        if self.checkpoint is not None:
            self.checkpoint.save(self.state, self.position, self.extra)

    def __iter__(self) -> Iterator[int]:
        self.bar = progress_bar(self.total, self.desc, unit=self.unit, enabled=self.progress,
                                initial=self.done)
        try:
            while self.done < self.total:
                yield self.done
                self.position["iteration"] = self.done + 1
                self.bar.update(1)
                if self.done % self.every == 0 or self.done >= self.total:
                    self.save()
        finally:
            self.bar.close()


class ResultJournal:
    """Append-only `key -> value` record of finished pieces, one JSON line each.

    With a `config_hash`, every record carries it and records written under another config
    are ignored (never mixed in). A torn last line from a killed run is skipped. A `None`
    path keeps the records in memory only.
    """

    def __init__(self, path: Path | None, config_hash: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.config_hash = config_hash
        self.done: dict[str, Any] = {}
        if self.path is not None and self.path.is_file():
            for record in parse_log_records(self.path.read_text(encoding="utf-8")):
                if "key" in record and (config_hash is None
                                        or record.get("config_hash") == config_hash):
                    self.done[record["key"]] = record.get("value")

    def completed(self) -> dict[str, Any]:
        """Every recorded piece."""
        return dict(self.done)

    def get(self, key: str) -> Any:
        """The recorded value of `key`, or None."""
        return self.done.get(key)

    def record(self, key: str, value: Any) -> None:
        """Remember one finished piece (in memory and, with a path, on disk)."""
        self.done[key] = value
        if self.path is not None:
            line = {"key": key, "value": value}
            if self.config_hash is not None:
                line["config_hash"] = self.config_hash
            append_line(self.path, json.dumps(line))
