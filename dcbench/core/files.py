"""Atomic file writes: write to a temp file in the same folder, fsync, then rename.

A reader (or a resumed run after SIGKILL) sees either the old file or the new one, never
half of one.

Under torchrun only rank 0 writes: `dcbench eval` calls `set_writer(False)` on the other
ranks, and then `write_bytes` / `write_text` / `write_json` / `write_with` / `append_line`
return without touching the disk (those ranks read the same run dir and caches, so every
protocol keeps one code path; see docs/internals.md, "Distributed evaluation").
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dcbench.core.errors import UserError

_WRITER = True


def set_writer(enabled: bool) -> None:
    """Whether this process writes files (False on the ranks > 0 of a distributed eval)."""
    global _WRITER
    _WRITER = bool(enabled)


def is_writer() -> bool:
    """True unless `set_writer(False)` made this process a reader only."""
    return _WRITER


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success it is renamed onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically write bytes (nothing on a reader-only rank)."""
    if not _WRITER:
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write UTF-8 text."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write JSON (sorted keys, indent 2) so diffs and hashes are stable."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Atomically write whatever `writer(tmp_path)` writes (e.g. torch.save, save_file);
    nothing on a reader-only rank."""
    if not _WRITER:
        return
    with atomic_path(path) as tmp:
        writer(tmp)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line and fsync (JSON-lines logs); a torn last line is ignored by readers.
    Nothing on a reader-only rank."""
    if not _WRITER:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")
        handle.flush()
        os.fsync(handle.fileno())


STAGE_MARKER = ".dcbench-stage"  # inside every staging folder dcbench makes (removed on success)
_STAGE_INFIX = ".dcbench-partial-"


@contextmanager
def staged_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder that replaces `out` on success. `out` must be absent or empty.

    The stage is a private folder `.{name}.dcbench-partial-{pid}-<random suffix>` beside `out`
    holding `STAGE_MARKER`; stages that a killed process left behind (marker present, pid gone) are
    removed on the next start, and nothing else is ever removed.
    """
    out = check_output_dir(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output folder {out} exists and is not empty; choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_stages(out)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}{_STAGE_INFIX}{os.getpid()}-",
                                  dir=out.parent))
    (stage / STAGE_MARKER).touch()
    try:
        yield stage
        (stage / STAGE_MARKER).unlink()
        if out.exists():
            out.rmdir()
        os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage)


def remove_stale_stages(out: str | os.PathLike) -> list[Path]:
    """Remove the staging folders of `out` left by dcbench processes that no longer run
    (litter after a kill); a folder without dcbench's marker is never touched."""
    out = Path(out)
    removed = []
    for stage in out.parent.glob(f".{glob.escape(out.name)}{_STAGE_INFIX}*"):
        pid = stage.name[len(out.name) + 1 + len(_STAGE_INFIX):].split("-", 1)[0]
        if (stage.is_dir() and not stage.is_symlink() and (stage / STAGE_MARKER).is_file()
                and pid.isdigit() and not _pid_alive(int(pid))):
            shutil.rmtree(stage, ignore_errors=True)
            removed.append(stage)
    return removed


def _pid_alive(pid: int) -> bool:
    """True when a process with this id runs on this machine (or may: no permission)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse, before anything is written, an output folder that is a file or not writable."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file; expected a folder (new or empty)")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise UserError(f"{flag} {path}: {base} is a file, so no folder can be made under it")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {base} is not writable")
    return path


def check_output_file(path: str | os.PathLike, flag: str = "--store") -> Path:
    """Refuse, before any work, an output file that is a folder or cannot be written."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; expected a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path} is not writable")
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise UserError(f"{flag} {path}: {base} is a file, so nothing can be made under it")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: folder {base} is not writable")
    return path
