"""Is the network usable? One fast probe, so offline paths fail in seconds with one line.

Every download path (torchvision weights, timm, hf-hub, catalog URLs, push) asks
`network_ok(host)` before it starts: `DCBENCH_OFFLINE=1` / `HF_HUB_OFFLINE=1` say no at once,
otherwise a TCP connect to the host with a short timeout decides. Libraries that would retry
for a minute (huggingface_hub) are then run in their own offline mode via `hf_offline()`.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import torch

HF_HOST = "huggingface.co"
PROBE_TIMEOUT_S = 3.0


def is_offline() -> bool:
    """`DCBENCH_OFFLINE=1` or `HF_HUB_OFFLINE=1`: never touch the network."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("DCBENCH_OFFLINE", "HF_HUB_OFFLINE"))


def network_ok(host_or_url: str = HF_HOST, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the host (port 443, or the URL's port) opens in `timeout`."""
    if is_offline():
        return False
    parsed = urlparse(host_or_url if "//" in host_or_url else f"//{host_or_url}")
    if parsed.scheme == "file":
        return True
    host = parsed.hostname or host_or_url
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def hf_offline(active: bool = True) -> Iterator[None]:
    """Run huggingface_hub (and timm through it) from its cache only, with no retries."""
    from huggingface_hub import constants  # lazy: optional heavy import

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = bool(active) or before
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def hf_cache_dir() -> str:
    """The Hugging Face cache folder (where hf-hub: and most timm weights live)."""
    from huggingface_hub import constants  # lazy: optional heavy import

    return str(constants.HF_HUB_CACHE)


def torch_hub_file(url: str) -> Path:
    """Where torch.hub keeps a downloaded weight file (torchvision and some timm weights)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
