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
