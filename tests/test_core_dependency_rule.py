"""The dependency rule of docs/architecture.md, checked on every import of the package (lazy ones too)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nnunet_progressive"
LAYERS = {
    "core": 0,
    "pgps": 1, "pdl": 1, "stopping": 1, "architectures": 1, "transfer": 1,
    "nnunet": 2,
    "datasets": 3, "benchmark": 3,
    "cli": 4,
}
# third-party packages a layer below 2 must never import (torch and nnU-Net live in nnunet/)
HEAVY = ("torch", "nnunetv2", "monai", "dynamic_network_architectures", "batchgenerators", "batchgeneratorsv2")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "cpu_torchvision" not in p.parts)


def _room(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_every_room_has_a_layer():
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert rooms <= set(LAYERS), f"add {sorted(rooms - set(LAYERS))} to docs/architecture.md and LAYERS"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_dependency_rule(path):
    room = _room(path)
    if room is None:  # top-level modules: __init__, _version
        return
    layer = LAYERS[room]
    for line, module in _imports(path):
        parts = module.split(".")
        if parts[0] == "nnunet_progressive" and len(parts) > 1 and parts[1] in LAYERS:
            assert LAYERS[parts[1]] <= layer, f"{path.name}:{line} ({room}, layer {layer}) imports {module}"
        if layer < 2:
            assert parts[0] not in HEAVY, f"{path.name}:{line} ({room}, layer {layer}) imports {module}"


def _module_name(path: Path) -> str:
    parts = ("nnunet_progressive", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(name: str, source: str, modules: set[str]) -> set[str]:
    """The package modules that ``source`` (module ``name``) imports anywhere: at the top, inside functions (lazy
    imports), under ``if TYPE_CHECKING``; absolute and relative imports, read from the syntax tree."""
    package = name if name in _packages(modules) else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from ..core import y
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if not base:
                continue
            candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for module in candidates:  # `from package import module` names the module
            while module and module not in modules:
                module = module.rpartition(".")[0]
            if module and module != name:
                targets.add(module)
    return targets


def _packages(modules: set[str]) -> set[str]:
    return {m.rpartition(".")[0] for m in modules} | {m for m in modules if any(o.startswith(m + ".") for o in modules)}


def import_circles(sources: dict[str, str]) -> list[list[str]]:
    """Every pair of modules of which each reaches the other through imports (any import, lazy ones included)."""
    modules = set(sources)
    edges = {name: imported_modules(name, source, modules) for name, source in sources.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            current = todo.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                todo += edges.get(current, ())
        return False

    return sorted(sorted(c) for c in {frozenset({a, b}) for a in edges for b in edges[a] if reaches(b, a)})


def test_the_circle_check_sees_lazy_relative_and_indirect_imports():
    lazy = {"p.a": "from p.b import x\n", "p.b": "def f():\n    from p.a import y\n    return y\n"}
    assert import_circles(lazy) == [["p.a", "p.b"]]
    indirect = {"p.a": "import p.b\n", "p.b": "from p import c\n", "p.c": "def f():\n    from .a import z\n"}
    assert import_circles(indirect) == [["p.a", "p.b"], ["p.a", "p.c"], ["p.b", "p.c"]]
    typing_only = {"p.a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.b import T\n",
                   "p.b": "import p.a\n"}
    assert import_circles(typing_only) == [["p.a", "p.b"]]
    assert import_circles({"p.a": "import p.b\n", "p.b": "import os\n"}) == []


def test_no_module_imports_one_that_imports_it_back():
    """No import circle among the package's modules, lazy (function-level) imports included: what two modules
    both need lives in a module below them (e.g. benchmark/rows.py under the report and the protocol)."""
    sources = {_module_name(p): p.read_text() for p in _modules()}
    assert import_circles(sources) == []
