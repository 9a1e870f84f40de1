"""The one device resolver: `auto`/None -> the GPU when present, else the CPU."""

from __future__ import annotations

import torch

from dcbench.core.errors import UserError


def resolve_device(name: str | None, local_rank: int = 0) -> torch.device:
    """`auto` (or None/'') -> CUDA when available else CPU; `cuda` -> this process's GPU
    (`local_rank` under torchrun); `cuda:N`; `cpu`. Asking for CUDA without one, or any other
    name, is a UserError."""
    name = "auto" if name in (None, "") else str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} requested but no CUDA GPU is available here; "
                            "use cpu")
        index = local_rank if name == "cuda" else name.split(":", 1)[1]
        if not str(index).isdigit():
            raise UserError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
        return torch.device("cuda", int(index))
    if name != "cpu":
        raise UserError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    return torch.device("cpu")
