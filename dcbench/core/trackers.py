"""The TensorBoard and Weights & Biases trackers, with the libraries' own writers.

`open_tracker(run_dir, options, config=..., name=...)` is what a run calls at its start: it
returns a `core.tracking.Tracker` (a no-op one when nothing is asked for or installed).
Both packages are optional extras (`dcbench[tensorboard]`, `dcbench[wandb]`), imported only
here, when a run opens a tracker.

- TensorBoard: `torch.utils.tensorboard.SummaryWriter`, one per section in
  `RUN/tensorboard/SECTION`; a resumed section is opened with `purge_step` = its first step.
- W&B: `wandb.init(project, entity, id, resume="allow", config)`: the run id is saved in
  `RUN/wandb-run.json`, so a resumed run continues the same W&B run. Without a network the
  run is written offline (`WANDB_MODE` is respected when set) and the `wandb sync` command
  is printed at the end.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from dcbench.core.errors import UserError
from dcbench.core.files import write_json
from dcbench.core.tracking import (
    MultiTracker,
    Tracker,
    TrackingOptions,
    parse_wandb_target,
)

WANDB_RUN_FILE = "wandb-run.json"


def finite(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries that are finite numbers (bools and None dropped), as floats."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            continue
        if np.isfinite(value):
            out[key] = float(value)
    return out



class TensorBoardTracker(Tracker):
    """One `SummaryWriter` per section under `root` (= `RUN/tensorboard`)."""

    def __init__(self, root: Path, writer_class: Any) -> None:
        self.root = Path(root)
        self._writer_class = writer_class
        self._writers: dict[str, Any] = {}

    def _writer(self, section: str, purge_step: int | None = None) -> Any:
        if section not in self._writers:
            self._writers[section] = self._writer_class(
                log_dir=str(self.root / section), purge_step=purge_step,
                flush_secs=30)
        return self._writers[section]

    def start_section(self, section: str, first_step: int) -> None:
        if section in self._writers:  # the same loop started again in this process
            self._writers.pop(section).close()
        self._writer(section, purge_step=first_step)

    def scalars(self, section: str, step: int, values: Mapping[str, float | int | None]
                ) -> None:
        writer = self._writer(section)
        for tag, value in finite(values).items():
            writer.add_scalar(tag, value, int(step))
        writer.flush()  # a live view: every report is on disk when the call returns

    def histogram(self, section: str, step: int, tag: str, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.size:
            self._writer(section).add_histogram(tag, values, int(step))

    def image(self, section: str, step: int, tag: str, image: np.ndarray) -> None:
        self._writer(section).add_image(tag, np.asarray(image, dtype=np.uint8), int(step),
                                        dataformats="HWC")
        self._writer(section).flush()

    def text(self, section: str, step: int, tag: str, text: str) -> None:
        self._writer(section).add_text(tag, text, int(step))
        self._writer(section).flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


class WandbTracker(Tracker):
    """A W&B run; each section's keys are `SECTION/TAG` on the step axis `SECTION/step`."""

    def __init__(self, run: Any, wandb: Any) -> None:
        self.run, self._wandb = run, wandb
        self._sections: set[str] = set()

    def _log(self, section: str, step: int, values: Mapping[str, Any]) -> None:
        if section not in self._sections:
            self.run.define_metric(f"{section}/step")
            self.run.define_metric(f"{section}/*", step_metric=f"{section}/step")
            self._sections.add(section)
        self.run.log({f"{section}/step": int(step),
                      **{f"{section}/{k}": v for k, v in values.items()}})

    def scalars(self, section: str, step: int, values: Mapping[str, float | int | None]
                ) -> None:
        numbers = finite(values)
        if numbers:
            self._log(section, step, numbers)

    def histogram(self, section: str, step: int, tag: str, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.size:
            self._log(section, step, {tag: self._wandb.Histogram(values)})

    def image(self, section: str, step: int, tag: str, image: np.ndarray) -> None:
        self._log(section, step, {tag: self._wandb.Image(np.asarray(image, dtype=np.uint8))})

    def text(self, section: str, step: int, tag: str, text: str) -> None:
        self._log(section, step, {tag: str(text)})

    def close(self) -> None:
        offline = self.run.settings.mode == "offline" or bool(self.run.offline)
        sync_dir = getattr(self.run.settings, "sync_dir", None)
        self.run.finish()
        if offline and sync_dir:
            print("dcbench: W&B run written offline; to upload it, run:\n  "
                  + shlex.join(["wandb", "sync", str(sync_dir)]), file=sys.stderr)


def is_main_process() -> bool:
    """True outside torchrun and on its rank 0: only that process reports."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def tensorboard_tracker(root: Path) -> TensorBoardTracker | None:
    """A TensorBoard tracker writing under `root`, or None when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # lazy: optional extra tensorboard
    except ImportError:
        return None
    return TensorBoardTracker(root, SummaryWriter)


def network_reachable(timeout: float = 2.0) -> bool:
    """Whether the W&B server answers a TCP connection (no network: W&B runs offline)."""
    url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    try:
        with socket.create_connection((url.hostname or "api.wandb.ai",
                                       url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=timeout):
            return True
    except OSError:
        return False


def saved_wandb_id(run_dir: Path, project: str) -> str | None:
    """The W&B run id saved by an earlier start of this run (same project), else None."""
    try:
        saved = json.loads((run_dir / WANDB_RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if isinstance(saved, dict) and saved.get("project") == project \
            and isinstance(saved.get("id"), str):
        return saved["id"]
    return None


def wandb_tracker(run_dir: Path, project: str, entity: str | None, config: dict[str, Any],
                  name: str) -> WandbTracker | None:
    """Start (or resume) the run's W&B run, or None when wandb is missing."""
    try:
        import wandb  # lazy: optional extra, heavy (starts a service)
    except ImportError:
        return None
    run_id = saved_wandb_id(run_dir, project) or uuid.uuid4().hex[:8]
    mode = os.environ.get("WANDB_MODE") or ("online" if network_reachable() else "offline")
    kwargs: dict[str, Any] = {"project": project, "entity": entity, "id": run_id,
                              "resume": "allow", "config": config, "name": name, "mode": mode,
                              "settings": wandb.Settings(console="off", silent=True)}
    # explicit: wandb's process-wide setup keeps the WANDB_DIR of its first run
    kwargs["dir"] = os.environ.get("WANDB_DIR") or str(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run = _init_when_free(wandb, kwargs)
    write_json(run_dir / WANDB_RUN_FILE, {"id": run_id, "project": project, "entity": entity})
    return WandbTracker(run, wandb)


def _init_when_free(wandb: Any, kwargs: dict[str, Any], wait_s: float = 60.0) -> Any:
    """`wandb.init(**kwargs)`, waiting while W&B's service still holds the run id: a run
    resumed right after its process was killed finds the old process's run not yet closed
    ("run ID ... is in use"); the service closes it within seconds."""
    deadline = time.monotonic() + wait_s
    delay = 0.5
    while True:
        try:
            return wandb.init(**kwargs)
        except Exception as err:  # wandb's ServerResponseError (its module path varies)
            if "is in use" not in str(err):
                raise
            if time.monotonic() + delay > deadline:
                raise UserError(
                    f"W&B still holds run {kwargs.get('id')} (the W&B service of the stopped "
                    "process has not closed it yet): resume again in a minute, or without "
                    "--wandb") from None
        time.sleep(delay)
        delay = min(2 * delay, 5.0)


def report_rows(tracker: Tracker, rows: Sequence[Any]) -> None:
    """A run's final result rows (section `results`, step 0): `SPLIT/LAYER/METRIC`, plus
    `/seedS` when several rows share those (per-draw rows of low-shot)."""
    keys = [f"{r.split}/{r.layer}/{r.metric}" for r in rows]
    repeated = len(set(keys)) < len(keys)
    tracker.start_section("results", 0)
    tracker.scalars("results", 0, {key + (f"/seed{r.seed}" if repeated else ""): r.value
                                   for key, r in zip(keys, rows, strict=True)})


def open_tracker(run_dir: str | os.PathLike, options: TrackingOptions | None, *,
                 config: Mapping[str, Any], name: str) -> Tracker:
    """The trackers `options` ask for and the installed packages allow, for `run_dir`.

    TensorBoard (on unless `options.tensorboard` is False) writes `run_dir/tensorboard/`;
    W&B (with `options.wandb`) resumes the run whose id is saved in `run_dir`. A missing
    tensorboard is skipped silently (it is on by default); a missing wandb (asked for) is
    said on stderr. Off rank 0 (torchrun), nothing is opened.
    """
    if options is None or not is_main_process():
        return Tracker()
    trackers: list[Tracker] = []
    if options.tensorboard:
        tb = tensorboard_tracker(Path(run_dir) / "tensorboard")
        if tb is not None:
            trackers.append(tb)
    if options.wandb:
        project, entity = parse_wandb_target(options.wandb)
        wb = wandb_tracker(Path(run_dir), project, entity, dict(config), name)
        if wb is None:
            print("dcbench: --wandb: wandb is not installed (pip install 'dcbench[wandb]'); "
                  "not reporting to W&B", file=sys.stderr)
        else:
            trackers.append(wb)
    if not trackers:
        return Tracker()
    return trackers[0] if len(trackers) == 1 else MultiTracker(trackers)
