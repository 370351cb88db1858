"""Run nnU-Net's own commands (nnUNetv2_train, nnUNetv2_predict) as subprocesses, as a user would.

Every command started here ends with the process that started it: on Linux the kernel sends it SIGKILL when the
starting thread ends, whatever ended it (``kill -9`` of ``nnprog benchmark run`` included), and the training's own
workers follow the training (:mod:`nnunet_progressive.nnunet.hooks.training_process`). Elsewhere only ordinary ends and
Ctrl-C stop it (``train`` kills its process group in a ``finally`` block).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_progressive.core.errors import NnunetCommandError, NnunetCommandTimeout, ProgressiveConfigError
from nnunet_progressive.core.heartbeat import HEARTBEAT_SECONDS_ENV
from nnunet_progressive.nnunet.hooks.training_process import die_with_parent, parent_death_signal_supported
from nnunet_progressive.nnunet.orchestration.discovery import environment_with_trainers


@dataclass(frozen=True)
class NnunetFolders:
    """The three nnU-Net folders of one workspace."""

    raw: Path
    preprocessed: Path
    results: Path

    @classmethod
    def under(cls, root: str | os.PathLike) -> NnunetFolders:
        root = Path(root).resolve()
        return cls(root / "nnUNet_raw", root / "nnUNet_preprocessed", root / "nnUNet_results")

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default os.environ) with nnU-Net's folder variables pointing here."""
        env = dict(os.environ if base is None else base)
        env.update(nnUNet_raw=str(self.raw), nnUNet_preprocessed=str(self.preprocessed),
                   nnUNet_results=str(self.results))
        return env


def ends_with_this_process() -> Callable[[], None] | None:
    """``preexec_fn`` for a command that must not outlive the thread starting it (Linux; None elsewhere)."""
    if not parent_death_signal_supported():  # (looks prctl up here: a forked child must not load libraries)
        return None
    parent = os.getpid()
    return lambda: die_with_parent(parent)


CPU_ENVIRONMENT = {"nnUNet_n_proc_DA": "2", "nnUNet_def_n_proc": "1", "nnUNet_compile": "false"}


@dataclass(frozen=True)
class TrainingRun:
    """One ``nnUNetv2_train`` call."""

    dataset: str
    configuration: str
    fold: int | str
    trainer: str
    plans: str = "nnUNetPlans"
    device: str = "cpu"
    knobs: Mapping[str, str] | None = None  # NNPROG_* and other environment variables for this run

    def command(self, extra: Sequence[str] = ()) -> list[str]:
        return ["nnUNetv2_train", str(self.dataset), self.configuration, str(self.fold), "-tr", self.trainer,
                "-p", self.plans, "-device", self.device, *extra]

    def output_folder(self, folders: NnunetFolders, dataset_name: str) -> Path:
        return folders.results / dataset_name / f"{self.trainer}__{self.plans}__{self.configuration}" / (
            f"fold_{self.fold}"
        )


def run_environment(folders: NnunetFolders, knobs: Mapping[str, str] | None = None,
                    device: str = "cpu") -> dict[str, str]:
    """Environment for nnU-Net subprocesses: folders, trainer discovery, CPU worker counts, knobs."""
    env = environment_with_trainers(folders.environment())
    env["PYTHONUNBUFFERED"] = "1"  # progress reaches the log as it happens
    env.setdefault(HEARTBEAT_SECONDS_ENV, "2")  # the trainers' iteration lines, for the epoch bar
    if device == "cpu":
        for key, value in CPU_ENVIRONMENT.items():
            env.setdefault(key, value)
    env.update({k: str(v) for k, v in (knobs or {}).items()})
    return env


def nnunet_command(command: Sequence[str]) -> list[str]:
    """``command`` with its program (one of nnU-Net's console scripts) found on PATH, else beside this Python (the
    environment nnunet-progressive runs in, e.g. its ``.venv/bin`` run without activation); neither is one
    :class:`ProgressiveConfigError` naming the fix, not a ``FileNotFoundError`` traceback."""
    program, *arguments = command
    found = shutil.which(program) or shutil.which(program, path=os.path.dirname(sys.executable))
    if found is None:
        raise ProgressiveConfigError(
            f"nnU-Net's command {program} is neither on PATH nor beside this Python ({sys.executable}); activate the "
            f"environment nnunet-progressive is installed in (e.g. `source .venv/bin/activate`) or install nnunetv2 "
            f"into it (pip install nnunetv2)")
    return [found, *arguments]


def train(run: TrainingRun, folders: NnunetFolders, log_file: str | os.PathLike, extra: Sequence[str] = (),
          stop_when: Callable[[str], bool] | None = None, timeout: float = 3600) -> float:
    """Run ``nnUNetv2_train``; returns wall seconds. Output is appended to ``log_file``.

    ``stop_when(output_so_far)`` (polled every 0.1 s) kills the run, as an interruption would; the
    return value is then the time until the kill. A failed run raises :class:`NnunetCommandError` (the end of its
    log), one longer than ``timeout`` seconds :class:`NnunetCommandTimeout`.
    """
    env = run_environment(folders, run.knobs, run.device)
    start = time.perf_counter()
    with open(log_file, "a") as handle:
        handle.write(f"$ {' '.join(run.command(extra))}\n")
        handle.flush()
        process = subprocess.Popen(nnunet_command(run.command(extra)), env=env, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=ends_with_this_process())
        try:
            while process.poll() is None:
                if time.perf_counter() - start > timeout:
                    raise NnunetCommandTimeout(f"nnUNetv2_train ran longer than {timeout} s; see {log_file}")
                if stop_when is not None and stop_when(Path(log_file).read_text()):
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    return time.perf_counter() - start
                time.sleep(0.1)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if process.returncode != 0:
        tail = "\n".join(Path(log_file).read_text().splitlines()[-40:])
        raise NnunetCommandError(f"nnUNetv2_train failed (exit {process.returncode}):\n{tail}")
    return time.perf_counter() - start


def predict(input_folder: str | os.PathLike, output_folder: str | os.PathLike, run: TrainingRun,
            folders: NnunetFolders, log_file: str | os.PathLike, checkpoint: str = "checkpoint_final.pth",
            processes: int = 0) -> None:
    """``nnUNetv2_predict`` with the model of ``run`` (its fold and checkpoint).

    ``processes``: nnU-Net's ``-npp``/``-nps``; 0 is its sequential mode (the same predictor without the two
    spawned worker pools, whose start-up dominates a prediction of a few tiny cases).
    """
    command = ["nnUNetv2_predict", "-i", str(input_folder), "-o", str(output_folder), "-d", str(run.dataset),
               "-c", run.configuration, "-tr", run.trainer, "-p", run.plans, "-f", str(run.fold),
               "-chk", checkpoint, "-device", run.device, "-npp", str(processes), "-nps", str(processes),
               "--disable_tta"]
    run_logged(command, run_environment(folders, run.knobs, run.device), log_file)


def run_logged(command: Sequence[str], env: dict[str, str], log_file: str | os.PathLike | None) -> None:
    """Run a command; on failure :class:`NnunetCommandError` with the command and the end of its output."""
    if log_file is None:
        result = subprocess.run(nnunet_command(command), env=env, capture_output=True, text=True,
                                preexec_fn=ends_with_this_process())
        output = result.stdout + result.stderr
    else:
        with open(log_file, "a") as handle:
            handle.write(f"$ {' '.join(command)}\n")
            handle.flush()
            result = subprocess.run(nnunet_command(command), env=env, stdout=handle, stderr=subprocess.STDOUT,
                                    text=True, preexec_fn=ends_with_this_process())
        output = Path(log_file).read_text()
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-30:])
        raise NnunetCommandError(f"command failed with exit code {result.returncode}: {' '.join(command)}\n{tail}")


@contextlib.contextmanager
def output_to_log(log_file: str | os.PathLike, title: str) -> Iterator[None]:
    """This process's printed output (``print``, progress bars) appended to ``log_file`` under ``$ title``, for the
    package's own commands called as library functions where a log is kept (the benchmark's preparation, which runs in
    one thread). Line-buffered, so that it keeps its order with the output of commands ``run_logged`` appends."""
    with open(log_file, "a", buffering=1) as handle:
        handle.write(f"$ {title}\n")
        with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
            yield
