"""Which process runs a run folder: `process.json` (pid, host, command), written at the start
of `dcbench train`, `eval`, `reproduce`, and read by `dcbench status` to say whether the run
is still going (alive = the same host and that pid exists) and how to resume it if not.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dcbench.core.files import write_json

PROCESS_FILE = "process.json"


def record_process(run_dir: str | os.PathLike, kind: str, argv: Sequence[str] | None) -> None:
    """Write `run_dir/process.json`: this process's pid and host, the kind of run and the
    command-line words it was started with (for the resume command)."""
    write_json(Path(run_dir) / PROCESS_FILE, {
        "pid": os.getpid(), "host": socket.gethostname(), "kind": kind,
        "argv": list(argv) if argv is not None else None, "cwd": os.getcwd(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})


def read_process(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The process record of `run_dir`, or None (missing or not ours)."""
    try:
        record = json.loads((Path(run_dir) / PROCESS_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        return None
    return record


def pid_exists(pid: int) -> bool:
    """Whether a process with this id exists on this machine (signal 0 probes, sends none)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def process_alive(record: dict[str, Any] | None) -> bool | None:
    """True/False when the record's host is this machine; None when it cannot be known here
    (another host, or no record)."""
    if record is None or record.get("host") != socket.gethostname():
        return None
    return pid_exists(int(record["pid"]))
