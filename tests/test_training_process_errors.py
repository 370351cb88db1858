"""How a process of nnU-Net that loaded the package's trainers ends on Ctrl-C and on a dead augmentation worker:
one line on stderr, never a traceback (issue #20's audit: both printed nnU-Net's traceback)."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

PROLOGUE = ("import sys\n"
            "from nnunet_progressive.nnunet.hooks import training_process\n"
            "training_process.install()\n")


def _ended(raised: str, argv: list[str]) -> subprocess.CompletedProcess:
    code = PROLOGUE + f"sys.argv = {argv!r}\n" + f"raise {raised}\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.mark.parametrize("argv, resumable", [(["/venv/bin/nnUNetv2_train", "1", "3d_fullres", "0"], True),
                                             (["/venv/bin/nnUNetv2_train", "1", "3d_fullres", "0", "--val"], False),
                                             (["/venv/bin/nnUNetv2_predict", "-i", "x"], False)])
def test_ctrl_c_is_one_line_and_names_the_way_on(argv, resumable):
    ended = _ended("KeyboardInterrupt()", argv)
    assert ended.stderr.splitlines() == [
        f"{argv[0].rsplit('/', 1)[1]}: interrupted"
        + ("; continue the run from its last checkpoint with the same command and --c" if resumable else "")]
    assert ended.returncode in (-signal.SIGINT, 128 + signal.SIGINT, 1), "ends as an interrupted process does"


def test_a_dead_augmentation_worker_is_one_line():
    raised = ("RuntimeError('One or more background workers are no longer alive. Exiting. Please check the print "
              "statements above for the actual error message')")
    ended = _ended(raised, ["/venv/bin/nnUNetv2_train", "1", "3d_fullres", "0"])
    assert ended.returncode == 1 and "Traceback" not in ended.stderr
    assert ended.stderr.strip() == (
        "nnUNetv2_train: error: a data-augmentation worker of this process died (killed, or out of memory; its own "
        "message, if any, is above); the last checkpoint is intact: continue with the same command and --c")
    other = _ended("RuntimeError('something else')", ["/venv/bin/nnUNetv2_train"])
    assert "Traceback" in other.stderr, "other errors keep Python's report"


def test_a_dead_worker_seen_by_a_thread_and_the_main_thread_is_one_line():
    raised = "RuntimeError('One or more background workers are no longer alive. Exiting.')"
    code = (PROLOGUE + "import threading\n"
            "sys.argv = ['/venv/bin/nnUNetv2_train', '1', '3d_fullres', '0']\n"
            "def results_loop():\n"
            f"    raise {raised}\n"
            "thread = threading.Thread(target=results_loop)\n"
            "thread.start()\n"
            "thread.join()\n"
            f"raise {raised}\n")
    ended = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ended.returncode == 1 and "Traceback" not in ended.stderr
    assert len(ended.stderr.strip().splitlines()) == 1, ended.stderr
