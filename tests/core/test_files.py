"""Output paths are checked before any work: files, unwritable folders, non-empty stages."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dcbench.core.errors import UserError
from dcbench.core.files import (
    STAGE_MARKER,
    check_output_dir,
    check_output_file,
    staged_dir,
    write_text,
)


def _unwritable(tmp_path: Path) -> Path:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.access(folder, os.W_OK):  # root ignores modes
        folder = Path("/proc/1")
        if not folder.is_dir() or os.access(folder, os.W_OK):
            pytest.skip("no unwritable folder available")
    return folder


def test_output_dir_checks(tmp_path: Path) -> None:
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(UserError, match="is a file"):
        check_output_dir(tmp_path / "f" / "sub")
    with pytest.raises(UserError, match="not writable"):
        check_output_dir(_unwritable(tmp_path) / "run")


def test_output_file_checks(tmp_path: Path) -> None:
    assert check_output_file(tmp_path / "a" / "b.sqlite") == tmp_path / "a" / "b.sqlite"
    with pytest.raises(UserError, match="is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(UserError, match="not writable"):
        check_output_file(_unwritable(tmp_path) / "x.sqlite")


def test_staged_dir_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_dir(out) as stage:
        write_text(stage / "a.txt", "half")
        raise RuntimeError("killed half-way")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with staged_dir(out) as stage:
        write_text(stage / "a.txt", "whole")
    assert (out / "a.txt").read_text() == "whole"
    with pytest.raises(UserError, match="not empty"), staged_dir(out):
        pass


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_staged_dir_never_touches_a_users_lookalike_folders(tmp_path: Path) -> None:
    out = tmp_path / "out"
    mine = [tmp_path / "out.partial", tmp_path / ".out.partial-abc",
            tmp_path / f".out.dcbench-partial-{_dead_pid()}-x"]  # no dcbench stage marker
    for folder in mine:
        folder.mkdir()
        (folder / "keep.txt").write_text("mine")
    with pytest.raises(RuntimeError), staged_dir(out):
        raise RuntimeError("failed")
    with staged_dir(out) as stage:
        write_text(stage / "a.txt", "whole")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    assert all((folder / "keep.txt").read_text() == "mine" for folder in mine)


def test_staged_dir_removes_its_own_stale_stages_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # what a SIGKILLed run leaves: a stage of a dead process, and one of a live process
    dead = tmp_path / f".out.dcbench-partial-{_dead_pid()}-abc"
    live = tmp_path / f".out.dcbench-partial-{os.getppid()}-abc"
    for folder in (dead, live):
        folder.mkdir()
        (folder / STAGE_MARKER).write_text("")
        (folder / "half.png").write_bytes(b"half")
    with staged_dir(out) as stage:
        write_text(stage / "a.txt", "whole")
    assert not dead.exists() and (live / "half.png").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
