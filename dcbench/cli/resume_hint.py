"""The exact command that continues an interrupted `dcbench train` / `dcbench eval` run.

After Ctrl-C the user needs a command that works as printed: the arguments they typed, the
run dir actually used (an auto-chosen one when `--out` was not given) and `--resume`.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence

PROG = "dcbench"
INTERRUPTED = 130  # the shell's status for a process stopped by SIGINT


def resume_command(argv: Sequence[str], out: str | os.PathLike | None, *,
                   resume: bool = True) -> str:
    """`dcbench ARGV [--out OUT] [--resume]`, shell-quoted.

    `--out OUT` is added when `out` is given and argv has no `--out` of its own (an
    auto-chosen run dir); `--resume` is added when `resume` and argv lacks it.
    """
    words = list(argv)
    given = {w.split("=", 1)[0] for w in words if w.startswith("--")}
    if out is not None and "--out" not in given:
        words += ["--out", os.fspath(out)]
    if resume and "--resume" not in given:
        words.append("--resume")
    return shlex.join([PROG, *words])


def report_interrupt(argv: Sequence[str], out: str | os.PathLike | None, saved: bool) -> int:
    """Print what to run after an interruption (resume when `saved`, else start again) and
    return the exit status of an interrupted command."""
    if saved:
        print("dcbench: interrupted; to continue where it stopped, run:\n  "
              + resume_command(argv, out), file=sys.stderr)
    else:
        print("dcbench: interrupted before anything was saved; to start again, run:\n  "
              + resume_command(argv, None, resume=False), file=sys.stderr)
    return INTERRUPTED
