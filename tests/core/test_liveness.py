"""process.json: the pid and host of a run, and whether that process is alive."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from dcbench.core.liveness import (
    PROCESS_FILE,
    pid_exists,
    process_alive,
    read_process,
    record_process,
)


def test_record_and_read_back(tmp_path):
    record_process(tmp_path, "eval", ["eval", "--out", "x"])
    saved = json.loads((tmp_path / PROCESS_FILE).read_text())
    assert saved["pid"] == os.getpid() and saved["host"] == socket.gethostname()
    assert saved["argv"] == ["eval", "--out", "x"] and saved["kind"] == "eval"
    assert read_process(tmp_path) == saved
    assert process_alive(saved) is True


def test_an_exited_process_is_not_alive(tmp_path):
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    pid = int(child.stdout)
    assert not pid_exists(pid)
    assert process_alive({"pid": pid, "host": socket.gethostname()}) is False


def test_another_host_or_no_record_is_unknown(tmp_path):
    assert process_alive({"pid": os.getpid(), "host": socket.gethostname() + "-other"}) is None
    assert process_alive(None) is None
    assert read_process(tmp_path) is None
    (tmp_path / PROCESS_FILE).write_text("not json")
    assert read_process(tmp_path) is None
    (tmp_path / PROCESS_FILE).write_text('{"pid": "12"}')
    assert read_process(tmp_path) is None
    assert not pid_exists(0) and not pid_exists(-5)
