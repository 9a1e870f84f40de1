"""The range check `dcbench eval` runs on a resolved protocol config before writing anything.

The ranges themselves are declared on each config dataclass, next to each key's default
(`dcbench.core.bounds.bounded`), and `dcbench.core.config.from_dict` already enforces them
when a config is resolved; this re-checks a config built some other way (in Python, by
`dataclasses.replace`) and names the protocol in the one-line error.
"""

from __future__ import annotations

from typing import Any

from dcbench.core.bounds import bounds_problems
from dcbench.core.errors import UserError


def check_protocol_config(config: Any, protocol: str) -> None:
    """Refuse (one line, naming the key) a protocol config value outside its declared range."""
    for key, problem, value in bounds_problems(config):
        raise UserError(f"{protocol}: config key '{key}' {problem}, got {value!r:.60}")
