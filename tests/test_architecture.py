"""The layers of the package, enforced: imports go only downward, no circles, no protocol
imports another, and imports inside functions only for heavy optional dependencies.

Layers (docs/internals.md): core < data < models < clustering < engine <
{training, protocols, viz} < leaderboards < cli. Siblings of one layer do not import each
other. The package root (`dcbench/__init__.py`) is the public facade over models.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dcbench
from dcbench.protocols.base import PROTOCOLS, list_protocols

PACKAGE = Path(dcbench.__file__).parent
LAYERS = {"core": 0, "data": 1, "models": 2, "clustering": 3, "engine": 4, "training": 5,
          "protocols": 5, "viz": 5, "leaderboards": 6, "cli": 7}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        out[name] = path
    return out


MODULES = _modules()


def _resolve(target: str) -> str:
    """The module an import names: `pkg.mod.attr` -> `pkg.mod` (the longest known prefix)."""
    bits = target.split(".")
    for n in range(len(bits), 0, -1):
        name = ".".join(bits[:n])
        if name in MODULES:
            return name
    return target


def _imports(name: str, path: Path) -> list[tuple[str, bool, ast.stmt, str]]:
    """(imported dcbench-or-other module, inside a function?, node, source line) per import."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
             for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            targets = [_resolve(f"{module}.{a.name}") for a in node.names]
        for target in targets:
            found.append((_resolve(target), id(node) in inner, node,
                          "\n".join(lines[node.lineno - 1:node.end_lineno])))
    return found


def _part(module: str) -> str:
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else ""


def _type_checking_only(path: Path) -> set[int]:
    tree = ast.parse(path.read_text())
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids |= {id(n) for n in ast.walk(node)}
    return ids


def test_every_part_of_the_package_has_a_layer():
    parts = {_part(m) for m in MODULES} - {"", "__main__"}
    assert parts <= set(LAYERS), f"parts without a layer: {sorted(parts - set(LAYERS))}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_only_downward(module: str):
    source_part = _part(module)
    if source_part in ("", "__main__"):
        return  # the facade and `python -m dcbench`
    typing_only = _type_checking_only(MODULES[module])
    for target, _, node, line in _imports(module, MODULES[module]):
        if not target.startswith("dcbench") or id(node) in typing_only:
            continue
        assert target != "dcbench", f"{module}: imports the package facade ({line.strip()})"
        target_part = _part(target)
        if target_part == source_part:
            continue
        assert LAYERS[target_part] < LAYERS[source_part], (
            f"{module} (layer {source_part}) imports {target} (layer {target_part}): "
            f"{line.strip()}")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_inside_functions_only_for_heavy_optional_dependencies(module: str):
    for target, inside, node, line in _imports(module, MODULES[module]):
        if not inside:
            continue
        assert not target.startswith("dcbench"), f"{module}: import inside a function: {line}"
        assert "# lazy" in line, (
            f"{module}:{node.lineno}: an import inside a function needs a '# lazy: why' "
            f"comment (heavy optional dependency): {line.strip()}")


def test_no_import_circles():
    graph = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        typing_only = _type_checking_only(path)
        for target, _, node, _ in _imports(module, path):
            package_init = MODULES[target].name == "__init__.py" if target in MODULES else True
            if target.startswith("dcbench") and target != module and not package_init \
                    and id(node) not in typing_only:
                graph[module].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_no_protocol_imports_another_protocol():
    protocol_modules = {PROTOCOLS.get(name).__module__ for name in list_protocols()}
    for module in protocol_modules:
        for target, _, _, line in _imports(module, MODULES[module]):
            assert target not in protocol_modules - {module}, (
                f"{module} imports the protocol module {target}: {line.strip()}")
