"""The README's setup on a machine with the public package index alone (what a new user has).

Marked ``slow_install``: it creates a fresh virtual environment and installs torch, nnU-Net and the package from
the public index (13 min and 5.7 GB on 2 cores: PyPI's Linux torch is the CUDA build). Run it with
``pytest tests/test_setup_public_index.py --run-install``. The suite's own install (scripts/run_tests.sh) runs the
same script with the machine's pip configuration every time.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow_install
def test_setup_on_the_public_index_alone_makes_a_venv_and_nnprog_runs(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PIP_") and key not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHON")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no local wheels, no extra index, no constraints: pip's own resolver
    result = subprocess.run(["bash", "scripts/setup.sh"], cwd=clone, env=env, capture_output=True, text=True,
                            timeout=3600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "no virtual environment is active: creating one in" in out and "setup: done" in out
    assert "setup: torch 2." in out  # which build, said as it is
    nnprog = clone / ".venv" / "bin" / "nnprog"
    help_text = subprocess.run([str(nnprog), "--help"], capture_output=True, text=True, timeout=120)
    assert help_text.returncode == 0 and "schedule" in help_text.stdout
