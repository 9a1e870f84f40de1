"""`dcbench status RUN_DIR`: one screen about a run, going or stopped, from its files only.

What the run is (`cli.status_views`), epoch i/N with the time per epoch and the ETA, its last
metrics, whether its process is alive (`core.liveness`: the pid and host recorded in
`process.json` at the start; alive = this host and the pid exists), and, for a run that is
neither alive nor finished, the exact command that resumes it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shlex
import time
from pathlib import Path
from typing import Any

from dcbench.cli.resume_hint import resume_command
from dcbench.cli.status_views import RunView, read_view
from dcbench.core.errors import UserError
from dcbench.core.liveness import process_alive, read_process


def duration(seconds: float) -> str:
    """3 h 05 min, 4 min 10 s, 12.3 s."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.1f} s"


def value_text(value: Any) -> str:
    """A metric as shown: 4 significant digits for numbers, '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def process_line(record: dict[str, Any] | None, alive: bool | None) -> str:
    """Whether the run's process is alive, in words."""
    if record is None:
        return "unknown (no process.json: started from Python or by an older dcbench)"
    where = f"pid {record.get('pid')} on {record.get('host')}"
    if alive is None:
        return f"unknown here ({where}: another machine; run dcbench status there)"
    return f"alive ({where})" if alive else f"not running ({where} has exited)"


def resume_line(view: RunView, root: Path, record: dict[str, Any] | None) -> str:
    """The command that continues the run (in the folder it was started from)."""
    argv = record.get("argv") if record else None
    if not isinstance(argv, list) or not argv:
        return (f"dcbench {view.kind} ... --out {shlex.quote(str(root))} --resume  (the "
                "command it was started with, plus --resume: no process.json records it)")
    words = [str(w) for w in argv]
    if view.kind == "demo":  # `--out` is a positional-free option of demo too
        command = resume_command(words, None)
    else:
        command = resume_command(words, root if "--out" not in words else None)
    cwd = record.get("cwd") if record else None
    if isinstance(cwd, str) and cwd != os.getcwd():
        command = f"cd {shlex.quote(cwd)} && {command}"
    return command


def render(root: Path, view: RunView, record: dict[str, Any] | None, now: float) -> list[str]:
    """The screen's lines."""
    alive = process_alive(record)
    state = ("finished" if view.finished else "failed" if view.failed and not alive
             else "running" if alive else "stopped" if alive is False else "unknown")
    lines = [f"dcbench status: {root}", f"  {'kind':10s}{view.kind} ({state})"]
    lines += [f"  {label:10s}{value}" for label, value in view.about]
    if view.total:
        share = f" ({100 * view.done / view.total:.0f}%)"
        lines.append(f"  {'progress':10s}{view.unit} {view.done}/{view.total}{share}")
    else:
        lines.append(f"  {'progress':10s}{view.done} {view.unit}(s) done")
    if view.seconds_per_unit is not None:
        text = f"{duration(view.seconds_per_unit)} per {view.unit}"
        if view.total and not view.finished and view.done < view.total:
            left = view.seconds_per_unit * (view.total - view.done)
            text += f"; ETA {duration(left)}"
            if alive:
                at = _dt.datetime.fromtimestamp(now + left, _dt.timezone.utc)
                text += f" (about {at:%Y-%m-%d %H:%M} UTC)"
            else:
                text += " once resumed"
        lines.append(f"  {'time':10s}{text}")
    if view.last_update is not None:
        lines.append(f"  {'updated':10s}{duration(max(now - float(view.last_update), 0))} ago")
    if view.metrics:
        lines.append(f"  {'last':10s}" + ", ".join(f"{k} {value_text(v)}"
                                                    for k, v in view.metrics.items()))
    lines.append(f"  {'process':10s}{process_line(record, alive)}")
    if not view.finished and alive is not True:
        lines.append(f"  {'resume':10s}{resume_line(view, root, record)}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the status screen of `args.run_dir`."""
    root = Path(args.run_dir).expanduser()
    if not root.is_dir():
        raise UserError(f"{args.run_dir} is not a folder; expected the --out folder of "
                        "dcbench train, eval, reproduce or demo")
    view = read_view(root)
    print("\n".join(render(root, view, read_process(root), time.time())))
    return 0
