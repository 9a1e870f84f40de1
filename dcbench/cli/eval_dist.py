"""`torchrun --nproc_per_node N -m dcbench eval|reproduce ...`: the process side of the
distributed evaluation (issue 28).

`eval_processes(device)` joins the process group torchrun describes in the environment
(NCCL on GPUs, gloo on CPU, with the group timeout of `core.distributed`), gives each rank its
device (`cuda:LOCAL_RANK`), makes every rank but 0 a reader (`core.files.set_writer(False)`)
with its stdout and stderr silenced inside the block; the group lives until the process
exits.
`from_main(fn)` runs `fn` on rank 0 only and hands its result (or its error) to every rank:
the choices that must be one (run dir, run id, names) are made once.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch.distributed as dist

from dcbench.core.dist_eval import check_all
from dcbench.core.distributed import DistInfo, barrier, current, init_from_env, shutdown
from dcbench.core.files import set_writer

T = TypeVar("T")

def launched_processes() -> int:
    """N when this process was started by `torchrun --nproc_per_node N` (else 1)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))


def is_launch_main() -> bool:
    """True on rank 0 of a torchrun launch (and in a plain process)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def rank_device(device: str, info: DistInfo) -> str:
    """`cuda` means this rank's GPU under torchrun (`cuda:LOCAL_RANK`)."""
    return f"cuda:{info.local_rank}" if info.active and device == "cuda" else device


_DEPTH = [0]  # eval blocks open in this process (reproduce runs its evals inside its own)


@contextlib.contextmanager
def eval_processes(device: str) -> Iterator[DistInfo]:
    """The process group of a torchrun launch for the block (a no-op in one process).

    Ranks > 0 write nothing and print nothing inside the block (rank 0 prints the plan, the
    table and the status lines); an error still reaches their stderr after the block. The
    group is made once per process and kept (torn down at exit), and a block that succeeds
    ends with a barrier, so consecutive commands in one process start together."""
    if launched_processes() <= 1 or _DEPTH[0]:
        yield current()
        return
    info = init_from_env(device)
    if not _SHUTDOWN_REGISTERED:
        atexit.register(shutdown, info)
        _SHUTDOWN_REGISTERED.append(True)
    quiet = contextlib.ExitStack()
    if not info.is_main:
        set_writer(False)
        sink = quiet.enter_context(open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
        quiet.enter_context(contextlib.redirect_stdout(sink))
        quiet.enter_context(contextlib.redirect_stderr(sink))
    _DEPTH[0] += 1
    try:
        with quiet:
            yield info
        barrier(info)
    finally:
        _DEPTH[0] -= 1
        set_writer(True)


_SHUTDOWN_REGISTERED: list[bool] = []


def from_main(fn: Callable[[], T]) -> T:
    """`fn()` computed on rank 0 and broadcast to every rank; an error raised there is raised
    on every rank (the same one-line message)."""
    info = current()
    if not info.active:
        return fn()
    result, error = None, None
    if info.is_main:
        try:
            result = fn()
        except Exception as err:  # handed to every rank below
            error = err
    check_all(error, info)
    box = [result]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


__all__ = ["eval_processes", "from_main", "is_launch_main", "launched_processes",
           "rank_device"]
