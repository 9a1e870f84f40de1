"""How fast a model runs over real images here: the measured rate behind the run estimates.

`seconds_per_image` decodes, transforms and forwards a few real batches (the first one is a
warm-up and not counted), in this process, on the device the run will use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dcbench.data.decode import open_image
from dcbench.engine.inference import eval_mode


def seconds_per_image(
    model: nn.Module,
    paths: Sequence[Path],
    transform: Callable[[Any], torch.Tensor],
    forward: Callable[[torch.Tensor], Any],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
) -> float | None:
    """Mean seconds per image (decode + transform + `forward`) over the batches of `paths`
    after the first; None when fewer than two batches of decodable images were given."""
    images = [img for img in (open_image(p) for p in paths) if img is not None]
    batches = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
    batches = [b for b in batches if len(b) == batch_size]
    if len(batches) < 2:
        return None
    timed, counted = 0.0, 0
    with eval_mode(model), torch.no_grad():
        for number, batch in enumerate(batches):
            start = time.perf_counter()
            x = torch.stack([transform(img) for img in batch]).to(device)
            forward(x)
            if x.device.type == "cuda":
                torch.cuda.synchronize(x.device)
            if number:  # the first batch pays for lazy set-up (tracing, allocations)
                timed += time.perf_counter() - start
                counted += len(batch)
    return timed / counted
