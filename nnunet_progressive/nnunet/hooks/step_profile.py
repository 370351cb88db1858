"""Timing a PGPS trainer's training step at each stage of its schedule, on this device (``nnprog profile``, and the
profile a run with NNPROG_MEASURED_SCHEDULE=on makes at its start).

The trainer is the one the run would use, initialized as nnU-Net initializes it (its network, precision, compile
setting), and each step is the trainer's own ``train_step`` on a batch of the stage's own loader (nnU-Net's
transforms, the stage's batch layout). Per stage, within its allowance of seconds (:func:`~nnunet_progressive.pgps.
profile.stage_allowance`): one untimed step (torch.compile builds the shape's graph), then, with ``with_loader``, steps
drawing batches from the stage's loader with its worker processes (the batches it built ahead dropped first, so the
steps wait as a long run does), then steps on one batch used again with the loader stopped (the network's own time).

The network's weights, the optimizer's and grad scaler's state and the random generators are restored afterwards:
a run that profiles itself trains from the same start as one that does not.
"""
from __future__ import annotations

import contextlib
import copy
import os
import platform
import random
from collections.abc import Iterator, Sequence
from datetime import datetime
from time import perf_counter

import numpy as np
import torch

from nnunet_progressive.core.records import StageProfile, StepProfile, fingerprint
from nnunet_progressive.nnunet.hooks.loaders import loader_workers, shutdown_augmenter
from nnunet_progressive.pgps.profile import (
    MIN_TIMED_ITERATIONS,
    StageStepTime,
    profile_order,
    stage_allowance,
)
from nnunet_progressive.pgps.schedule import Stage

MAX_TIMED_ITERATIONS = 50  # per stage and kind of timing: enough for a stable mean


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and core count (what a profile is valid for)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def trainer_state_kept(trainer) -> Iterator[None]:
    """Restore the network, optimizer, grad scaler, random generators and PGPS step counters on exit."""
    network = copy.deepcopy(trainer.network.state_dict())
    optimizer = copy.deepcopy(trainer.optimizer.state_dict())
    scaler = copy.deepcopy(trainer.grad_scaler.state_dict()) if trainer.grad_scaler is not None else None
    generators = (torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                  np.random.get_state(), random.getstate())
    counters = {name: copy.copy(getattr(trainer, name)) for name in (
        "_active_layout", "_epoch_throughput", "_last_step_end", "_iterations_done", "_cases_seen")
        if hasattr(trainer, name)}
    try:
        yield
    finally:
        trainer.network.load_state_dict(network)
        trainer.optimizer.load_state_dict(optimizer)
        if scaler is not None:
            trainer.grad_scaler.load_state_dict(scaler)
        torch.set_rng_state(generators[0])
        if generators[1] is not None:
            torch.cuda.set_rng_state_all(generators[1])
        np.random.set_state(generators[2])
        random.setstate(generators[3])
        for name, value in counters.items():
            setattr(trainer, name, value)
        trainer.optimizer.zero_grad(set_to_none=True)


@contextlib.contextmanager
def _loader_processes(count: int | None) -> Iterator[None]:
    """nnU-Net's ``nnUNet_n_proc_DA`` set to ``count`` while loaders are built (None: unchanged)."""
    if count is None:
        yield
        return
    before = os.environ.get("nnUNet_n_proc_DA")
    os.environ["nnUNet_n_proc_DA"] = str(count)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("nnUNet_n_proc_DA", None)
        else:
            os.environ["nnUNet_n_proc_DA"] = before


def _timed_steps(trainer, next_batch, allowance: float, median: bool) -> tuple[float, int]:
    """Seconds per step (batch wait included) over at least MIN_TIMED_ITERATIONS, within ``allowance``: the mean,
    or with ``median`` the median step (robust to other work on a shared machine)."""
    device = trainer.device
    _synchronize(device)
    start = last = perf_counter()
    durations = []
    while len(durations) < MIN_TIMED_ITERATIONS or (last - start < allowance
                                                     and len(durations) < MAX_TIMED_ITERATIONS):
        trainer.train_step(next_batch())  # nnU-Net's step reads its loss back: the device has finished it
        _synchronize(device)
        now = perf_counter()
        durations.append(now - last)
        last = now
    return float(np.median(durations)) if median else (last - start) / len(durations), len(durations)


def time_stage(trainer, stage: Stage, allowance: float, with_loader: bool) -> StageStepTime:
    """Seconds per training iteration of ``stage`` (see the module's docstring) within about ``allowance`` s."""
    augmenter = None
    try:
        with _loader_processes(None if with_loader else 0):  # network only: one loader in this process
            augmenter = trainer._make_training_augmenter(stage.first_epoch)
        trainer.train_step(next(augmenter))  # untimed: torch.compile builds this shape's graph
        loader_seconds, loader_iterations = None, 0
        network_share = allowance
        if with_loader:
            cached = getattr(augmenter, "num_cached", 0)
            for _ in range(2 * cached + 1 + loader_workers(augmenter) if cached else 0):
                next(augmenter)
            loader_seconds, loader_iterations = _timed_steps(trainer, lambda: next(augmenter), allowance / 2,
                                                                median=False)
            network_share = allowance / 2
        batch = next(augmenter)
    finally:
        if augmenter is not None:
            shutdown_augmenter(augmenter)
    trainer.train_step(dict(batch))  # untimed: the stopped workers' last writes and frees settle first
    network_seconds, network_iterations = _timed_steps(trainer, lambda: dict(batch), network_share, median=True)
    return StageStepTime(stage.index, tuple(stage.patch_size), stage.batch_size, network_seconds, network_iterations,
                         loader_seconds, loader_iterations)


def profile_stages(trainer, stages: Sequence[Stage], per_stage_seconds: float, total_seconds: float,
                   with_loader: bool, progress: bool = True, first_done=None) -> list[StageStepTime]:
    """Step times of every stage of ``stages`` (the trainer's schedule), planned stage first, within the
    per-stage and total allowances; the trainer's state is restored afterwards.

    ``first_done(planned_time, seconds_so_far) -> total_seconds``: called after the planned stage, it may set the
    total allowance from it (a run sizes its profile by its own expected time).
    """
    from tqdm import tqdm

    start = perf_counter()
    timed: dict[int, StageStepTime] = {}
    order = profile_order(len(stages))
    with trainer_state_kept(trainer), tqdm(total=len(order), desc="profiling PGPS stages", unit="stage",
                                           disable=not progress) as bar:
        for done, position in enumerate(order):
            stage = stages[position]
            allowance = stage_allowance(per_stage_seconds, total_seconds, perf_counter() - start, len(order) - done)
            timed[position] = time_stage(trainer, stage, allowance, with_loader)
            if done == 0 and first_done is not None:
                total_seconds = first_done(timed[position], perf_counter() - start)
            bar.set_postfix_str(f"stage {stage.index + 1}: {'x'.join(map(str, stage.patch_size))} b{stage.batch_size}"
                                f" {timed[position].network_seconds:.3f} s/it")
            bar.update()
    return [timed[i] for i in range(len(stages))]


def profile_record(trainer, times: Sequence[StageStepTime], seconds: float, dataset: str,
                   with_loader: bool) -> StepProfile:
    """The :class:`StepProfile` of ``times`` measured with ``trainer`` on its device."""
    from importlib.metadata import version

    from nnunet_progressive import __version__

    return StepProfile(
        package_version=__version__, nnunetv2_version=version("nnunetv2"), torch_version=torch.__version__,
        device=trainer.device.type, device_name=device_name(trainer.device), compile=bool(trainer._do_i_compile()),
        mixed_precision=trainer.grad_scaler is not None and trainer.device.type == "cuda",
        loader_workers=int(os.environ.get("nnUNet_n_proc_DA", "-1")) if with_loader else None,
        trainer=type(trainer).__name__, dataset=dataset, plans=trainer.plans_manager.plans_name,
        configuration=trainer.configuration_name,
        plans_fingerprint=fingerprint(trainer.configuration_manager.configuration),
        created=datetime.now().isoformat(timespec="seconds"), seconds=round(seconds, 3),
        stages=[StageProfile(index=t.index, patch_size=list(t.patch_size), batch_size=t.batch_size,
                             network_seconds=t.network_seconds, network_iterations=t.network_iterations,
                             loader_seconds=t.loader_seconds, loader_iterations=t.loader_iterations) for t in times])


def times_of(profile: StepProfile) -> list[StageStepTime]:
    """The step times a profile record holds."""
    return [StageStepTime(s.index, tuple(s.patch_size), s.batch_size, s.network_seconds, s.network_iterations,
                          s.loader_seconds, s.loader_iterations) for s in profile.stages]


def profile_mismatch(profile: StepProfile, trainer, stages: Sequence[Stage]) -> str | None:
    """Why ``profile`` does not describe ``trainer``'s run on its device (None if it does)."""
    return profile.mismatch(trainer.device.type, device_name(trainer.device), torch.__version__,
                            bool(trainer._do_i_compile()), [(list(s.patch_size), s.batch_size) for s in stages],
                            fingerprint(trainer.configuration_manager.configuration))
