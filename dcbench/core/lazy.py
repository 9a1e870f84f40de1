"""Names of a package resolved on first use (PEP 562), so importing the package is cheap.

`dcbench` and `dcbench.models` export torch-backed names; with `lazy_exports` their
`__getattr__` imports the defining module only when a name is first read, so `import
dcbench` (and every `dcbench --help`) does not import torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any], names: dict[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(`__getattr__`, `__dir__`) for `package`: each name in `names` (name -> defining
    module) is imported on first access and cached in `namespace` (the package globals)."""

    def getattr_(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name]), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(names))

    return getattr_, dir_
