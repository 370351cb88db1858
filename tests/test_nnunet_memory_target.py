"""The trainers' peak check of NNPROG_MEMORY_TARGET (nnunet/memory_target.py) with torch's CUDA counters stubbed:
once per stage, after its first iterations, against the target and the estimate; a CPU note otherwise."""
from __future__ import annotations

import torch

from nnunet_progressive.nnunet.hooks import memory_target
from nnunet_progressive.nnunet.hooks.memory_target import PEAK_ITERATIONS, StagePeakCheck
from nnunet_progressive.pgps.memory_target import GIB, PlannedStageMemory

PLANNED = PlannedStageMemory(2 * GIB, 0.5 * GIB, "TrainerX on 3d_fullres")
CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def _stub_cuda(monkeypatch, peaks: list[float]) -> list[str]:
    calls = []
    monkeypatch.setattr(memory_target.torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    monkeypatch.setattr(memory_target.torch.cuda, "max_memory_allocated", lambda device=None: peaks.pop(0))
    return calls


def test_each_stage_is_measured_once_after_its_first_iterations(monkeypatch):
    resets = _stub_cuda(monkeypatch, [3.0 * GIB, 9.0 * GIB])
    check = StagePeakCheck.of(4.0, PLANNED, 1.75)
    assert check.start_lines(CUDA) == [check.text] and "voxel budget 1.750 x" in check.text
    lines = []
    for epoch_stage in (0, 0, 1, 1):  # two epochs per stage
        check.epoch_start(epoch_stage, CUDA)
        for _ in range(5):
            lines += check.after_step(CUDA, 2, 3.2 * GIB, 5)
    assert resets == ["reset", "reset"], "the peak counter is reset at each stage's start only"
    assert lines[0] == (f"Memory target: stage 1/2 peak 3.00 GiB over its first {PEAK_ITERATIONS} iterations: 75% of "
                        f"the target 4 GiB, 94% of the estimate 3.20 GiB")
    assert lines[1].startswith("Memory target: stage 2/2 peak 9.00 GiB") and lines[2].startswith("WARNING: stage 2/2")
    assert "NNPROG_MEMORY_TARGET=4 GiB" in lines[2] and len(lines) == 3


def test_short_epochs_measure_after_every_iteration_they_have(monkeypatch):
    _stub_cuda(monkeypatch, [1.0 * GIB])
    check = StagePeakCheck.of(4.0, PLANNED, 1.75)
    check.epoch_start(0, CUDA)
    lines = check.after_step(CUDA, 1, 2.5 * GIB, 1)
    assert len(lines) == 1 and "over its first 1 iteration:" in lines[0]


def test_on_cpu_nothing_is_measured_and_the_log_says_so(monkeypatch):
    _stub_cuda(monkeypatch, [])
    check = StagePeakCheck.of(4.0, PLANNED, 1.75)
    assert check.start_lines(CPU)[1] == ("Memory target applied through the estimate only: the peak cannot be "
                                         "measured on cpu (torch.cuda.max_memory_allocated needs a CUDA device)")
    check.epoch_start(0, CPU)
    assert [check.after_step(CPU, 1, GIB, 5) for _ in range(5)] == [[]] * 5


def test_a_stage_estimate_scales_the_activations_and_keeps_the_fixed_part():
    from types import SimpleNamespace

    from nnunet_progressive.nnunet.hooks.memory_target import stage_estimate_bytes

    unet = SimpleNamespace(planned_patch=(32, 32, 32), sample_cost=None)  # activations linear in voxels
    assert stage_estimate_bytes(PLANNED, unet, 2, (32, 32, 32), 2) == PLANNED.total_bytes
    assert stage_estimate_bytes(PLANNED, unet, 2, (16, 32, 32), 8) == 0.5 * GIB + 2 * 2 * GIB
    transformer = SimpleNamespace(planned_patch=(32, 32, 32), sample_cost=lambda patch: 3.0 if patch[0] == 16 else 4.0)
    assert stage_estimate_bytes(PLANNED, transformer, 2, (16, 32, 32), 4) == 0.5 * GIB + 1.5 * 2 * GIB


def test_a_schedule_without_the_estimate_never_leaves_the_target_unread():
    import pytest

    from nnunet_progressive.core.errors import ProgressiveConfigError
    from nnunet_progressive.core.knobs import ProgressiveSettings
    from nnunet_progressive.nnunet.hooks.memory_target import settings_for_schedule

    plain = ProgressiveSettings()
    assert settings_for_schedule(plain, None) == (plain, None)
    with pytest.raises(ProgressiveConfigError, match="built without the planned stage's memory estimate"):
        settings_for_schedule(plain.replace(memory_target=8.0), None)
    settings, factor = settings_for_schedule(plain.replace(memory_target=8.5), PLANNED)
    assert factor == 4.0 and settings.batch_budget == 4.0 and settings.memory_target == 8.5
    with pytest.raises(ProgressiveConfigError, match="are both set"):
        settings_for_schedule(plain.replace(memory_target=8.5, batch_budget=2.0), PLANNED)
