"""Crash-test hook: die like a killed job at a named point, so resume can be tested for real.

Set `DCBENCH_FAULT=POINT:N` (points: `batch` = after the N-th training batch of this process,
`cluster` = before clustering epoch N, `save` = after epoch N's assignments are written but
before its state is committed, `swap` = between the two renames of epoch N's commit,
`probe-epoch` = before epoch N (0-based) of a probe training phase, after the checkpoint of
the epochs before it). The
process then sends itself SIGKILL: no cleanup, no flush, exactly like `kill -9`. Without the
variable this is a no-op.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "DCBENCH_FAULT"


def inject_fault(point: str, value: int) -> None:
    """SIGKILL this process when $DCBENCH_FAULT == f"{point}:{value}"."""
    if os.environ.get(FAULT_ENV) == f"{point}:{value}":
        os.kill(os.getpid(), signal.SIGKILL)


def raise_fault(point: str, value: int) -> None:
    """Raise a RuntimeError when $DCBENCH_FAULT == f"{point}:{value}" (a failing rank of a
    distributed eval: point `eval-rank`, value = the rank)."""
    if os.environ.get(FAULT_ENV) == f"{point}:{value}":
        raise RuntimeError(f"injected fault {point}:{value}")
