"""Where dcbench keeps its state: `$DCBENCH_HOME` (hub cache, feature cache, results)."""

from __future__ import annotations

import os
from pathlib import Path


def dcbench_home() -> Path:
    """`$DCBENCH_HOME`, else the user cache dir (`$XDG_CACHE_HOME/dcbench`, `~/.cache/dcbench`)."""
    env = os.environ.get("DCBENCH_HOME")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "dcbench"


def hub_cache_dir() -> Path:
    """Converted checkpoints in hub format, one folder per catalog name."""
    return dcbench_home() / "hub"


def feature_cache_dir() -> Path:
    """Pooled-feature cache shared by protocols (keyed by weights, layer, data, transform)."""
    return dcbench_home() / "features"


def results_store_path() -> Path:
    """The default SQLite results store."""
    return dcbench_home() / "results.sqlite"
