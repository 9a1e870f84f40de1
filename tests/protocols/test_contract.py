"""Every registered protocol keeps the contract (iterates `list_protocols()`, no hand list)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

import dcbench.protocols
from dcbench.protocols import list_protocols
from dcbench.protocols.base import Protocol, ProtocolConfig, get_protocol

PACKAGE = Path(dcbench.protocols.__file__).parent
ALLOWED = ("dcbench.core", "dcbench.data", "dcbench.models", "dcbench.clustering",
           "dcbench.engine", "dcbench.protocols")


@pytest.mark.parametrize("name", list_protocols())
def test_protocol_contract(name):
    proto = get_protocol(name)
    assert isinstance(proto, Protocol) and proto.name == name and proto.summary
    assert dataclasses.is_dataclass(proto.Config) and issubclass(proto.Config, ProtocolConfig)
    assert "dc2018" in proto.DIALECTS
    assert {"published", "smoke"} <= set(proto.SCHEDULES)
    fields = {f.name for f in dataclasses.fields(proto.Config)}
    for preset in [*proto.DIALECTS.values(), *proto.SCHEDULES.values()]:
        assert set(preset) <= fields  # a preset only sets keys the config has
    for dialect in proto.DIALECTS:
        for schedule in proto.SCHEDULES:
            cfg = proto.resolve_config(dialect=dialect, schedule=schedule)
            assert cfg.dialect == dialect
    assert not inspect.isabstract(type(proto)) and type(proto).run is not Protocol.run
    assert list(inspect.signature(proto.run).parameters)[:3] == ["model", "data_dir", "config"]
    if len(proto.DIALECTS) > 1 and name != "knn":  # knn's extra dialect is InstDisc's k
        assert "faithful-2018" in proto.DIALECTS or "goyal2019" in proto.DIALECTS
    module = inspect.getmodule(type(proto))
    if "faithful-2018" in proto.DIALECTS:
        assert "faithful-2018" in (module.__doc__ or "")  # documented in the docstring


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, inside a function) for every dcbench import of a file."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.module:
                    out.append((inner.module, True))
                elif isinstance(inner, ast.Import):
                    out += [(a.name, True) for a in inner.names]
    top = [n for n in tree.body if isinstance(n, ast.ImportFrom | ast.Import | ast.If)]
    for node in top:
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and inner.module:
                out.append((inner.module, False))
    return out


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_protocol_modules_import_downward_and_never_each_other(path):
    protocols = {f"dcbench.protocols.{p.stem}" for p in PACKAGE.glob("*.py")} - {
        "dcbench.protocols.base", "dcbench.protocols.metrics", "dcbench.protocols.__init__"}
    own = f"dcbench.protocols.{path.stem}" if path.parent == PACKAGE else ""
    for module, in_function in _imports(path):
        if not module.startswith("dcbench"):
            continue
        assert not in_function, f"{path.name}: import of {module} inside a function"
        assert module.startswith(ALLOWED), f"{path.name} imports {module} (not a lower layer)"
        assert module not in protocols - {own}, f"{path.name} imports protocol {module}"
