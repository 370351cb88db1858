"""nnU-Net's commands are found on PATH or beside this Python; neither is one clear error, not a traceback."""
import os
import sys

import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.nnunet.orchestration import runner
from nnunet_progressive.nnunet.orchestration.runner import nnunet_command


def _script(folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\necho ran\n")
    path.chmod(0o755)
    return path


def test_a_command_on_path_is_taken_from_path(tmp_path, monkeypatch):
    on_path = _script(tmp_path / "path_bin", "nnUNetv2_train")
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "env" / "bin" / "python"))
    assert nnunet_command(["nnUNetv2_train", "4", "3d_fullres", "0"]) == [str(on_path), "4", "3d_fullres", "0"]


def test_without_path_the_command_beside_this_python_is_taken(tmp_path, monkeypatch):
    beside = _script(tmp_path / "env" / "bin", "nnUNetv2_predict")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "env" / "bin" / "python"))
    assert nnunet_command(["nnUNetv2_predict", "-h"]) == [str(beside), "-h"]


def test_a_command_found_nowhere_is_one_message_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "env" / "bin" / "python"))
    with pytest.raises(ProgressiveConfigError, match="nnUNetv2_extract_fingerprint is neither on PATH nor beside "
                                                     ".*source .venv/bin/activate"):
        nnunet_command(["nnUNetv2_extract_fingerprint", "-d", "4"])
    with pytest.raises(ProgressiveConfigError, match="nnUNetv2_plan_and_preprocess is neither on PATH"):
        runner.run_logged(["nnUNetv2_plan_and_preprocess", "-d", "4"], dict(os.environ), None)

