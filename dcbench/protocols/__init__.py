"""Evaluation protocols: frozen-feature probes, fine-tuning, diagnostics, VOC transfer.

Each protocol registers itself by name with `register_protocol`; `get_protocol(name)` and
`list_protocols()` import the built-in protocol modules on first use.
"""

from __future__ import annotations

from dcbench.protocols.base import (
    Protocol,
    ProtocolConfig,
    Result,
    RunInfo,
    get_protocol,
    list_protocols,
    register_protocol,
    results_from_metrics,
    run_info,
)

__all__ = [
    "Protocol",
    "ProtocolConfig",
    "Result",
    "RunInfo",
    "get_protocol",
    "list_protocols",
    "register_protocol",
    "results_from_metrics",
    "run_info",
]
