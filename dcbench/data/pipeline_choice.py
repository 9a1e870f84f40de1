"""Why `input_pipeline` resolves as it does on this machine: the line the eval plan prints.

`data.pipeline.resolve_input_pipeline` decides (`auto`: DALI on CUDA when it is installed,
else torchvision's nvJPEG path on CUDA for a caller that has one (training), else PIL);
`explain_input_pipeline` names the backend it picks and the facts behind the choice (the
device is CUDA or not, DALI is installed or not), so `dcbench eval --dry-run` tells a user
on a GPU server which backend `auto` will run before anything starts.
"""

from __future__ import annotations

import torch

from dcbench.data.dali_pipeline import dali_available
from dcbench.data.pipeline import DALI_INSTALL, resolve_input_pipeline

BACKENDS = {"cpu": "PIL in loader workers", "gpu": "torchvision nvJPEG",
            "dali": "NVIDIA DALI"}


def explain_input_pipeline(name: str, device: torch.device | str, *,
                           gpu_path: bool = True) -> str:
    """`<backend> (<what>; <why>)` for `input_pipeline: name` on `device`, e.g.
    `cpu (PIL in loader workers; auto: cpu is not a CUDA device, DALI installed)`. Raises
    the UserError of `resolve_input_pipeline` for a bad name or `dali` without DALI."""
    chosen = resolve_input_pipeline(name, device, gpu_path=gpu_path)
    where = torch.device(device)
    dali = "DALI installed" if dali_available() else f"DALI not installed: {DALI_INSTALL}"
    if name != "auto":
        why = f"set: input_pipeline={name}"
    elif where.type != "cuda":
        why = f"auto: {where} is not a CUDA device ({dali}; auto picks DALI on CUDA only)"
    elif chosen == "dali":
        why = f"auto: {where} is a CUDA device and DALI is installed"
    else:
        why = f"auto: {where} is a CUDA device, {dali}" + (
            "" if gpu_path else "; the protocols have no nvJPEG path")
    note = "; files DALI cannot decode as PIL does, and transforms it cannot express, " \
        "take the PIL path" if chosen == "dali" else ""
    return f"{chosen} ({BACKENDS[chosen]}; {why}{note})"


__all__ = ["BACKENDS", "explain_input_pipeline"]
