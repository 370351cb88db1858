"""Work-arounds for broken third-party installs that stop nnU-Net from finding external trainers.

nnU-Net imports every module of its own trainer tree before it searches ``nnUNet_extTrainer``; one of
them imports timm, which imports torchvision. Where a CUDA build of torchvision sits beside a CPU build
of torch (PyPI has no CPU torchvision for Linux), torchvision cannot load its C++ operators and its
import fails ("operator torchvision::nms does not exist"), so no external trainer can be found.
``cpu_torchvision/sitecustomize.py`` declares the two operator schemas torchvision needs at import
time; nnU-Net's networks never call torchvision operators. It is put on PYTHONPATH only where the
import is broken (``nnprog env`` and the package's own subprocesses check).
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

SITECUSTOMIZE_DIR = Path(__file__).resolve().parent / "cpu_torchvision"


@functools.lru_cache(maxsize=1)
def torchvision_import_broken() -> bool:
    """True if ``import torchvision`` fails in a fresh interpreter with the missing-operator error."""
    result = subprocess.run(
        [sys.executable, "-c", "import torchvision"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    return result.returncode != 0 and "torchvision::" in result.stderr


def pythonpath_with_compat(current: str | None) -> str | None:
    """PYTHONPATH with the torchvision work-around first where needed; ``current`` otherwise."""
    if not torchvision_import_broken():
        return current
    parts = [p for p in (current or "").split(os.pathsep) if p and Path(p).resolve() != SITECUSTOMIZE_DIR]
    return os.pathsep.join([str(SITECUSTOMIZE_DIR), *parts])


# The namespaces of the work-around run in this process: the operator registration lives on a class defined there,
# and torch removes the operators when that registration is garbage-collected (which, unreferenced, it could be
# in the middle of the torchvision import it exists for).
_INSTALLED: list[dict] = []


def install_in_this_process() -> None:
    """Apply the work-around to the running interpreter (before anything imports torchvision)."""
    if torchvision_import_broken() and "torchvision" not in sys.modules:
        import runpy

        _INSTALLED.append(runpy.run_path(str(SITECUSTOMIZE_DIR / "sitecustomize.py")))
