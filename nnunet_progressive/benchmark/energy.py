"""GPU energy of a benchmark run: NVML's total-energy counter of the run's GPU(s), read by the runner when
``nnUNetv2_train`` starts and when it ends (offline: the driver's own library, no network, no extra package).

The counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the driver loaded; Volta and newer) is the
whole device's: other processes on the same GPU count too, and the attempt's start-up and final validation are
included. It is read through ``libnvidia-ml.so.1`` (the library pynvml wraps) with ctypes; where there is no NVIDIA
driver, no CUDA device or no counter (CPU, MPS, older GPUs), the energy is "not reported" (None), never a guess.
"""
from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Mapping, Sequence

NVML_LIBRARY = "libnvidia-ml.so.1"
EnergyReader = Callable[[Sequence[str]], dict[str, int] | None]


def run_gpus(device: str, gpu: int | None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The NVML devices (indices or ``GPU-...`` UUIDs) a run trains on: none off CUDA; the runner's ``gpu``;
    else the first entry of ``CUDA_VISIBLE_DEVICES`` (the device nnUNetv2_train uses); else device 0."""
    if device != "cuda":
        return []
    if gpu is not None:
        return [str(gpu)]
    environ = os.environ if environ is None else environ
    visible = [d.strip() for d in (environ.get("CUDA_VISIBLE_DEVICES") or "").split(",") if d.strip()]
    if environ.get("CUDA_VISIBLE_DEVICES") is not None and not visible:
        return []  # CUDA_VISIBLE_DEVICES="": no GPU
    return visible[:1] or ["0"]


def read_nvml_energy(devices: Sequence[str]) -> dict[str, int] | None:
    """Device -> total energy in millijoules, or None when any device cannot be read (no driver, no counter)."""
    if not devices:
        return None
    try:
        nvml = ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        return None
    if nvml.nvmlInit_v2() != 0:
        return None
    try:
        readings = {}
        for device in devices:
            handle = ctypes.c_void_p()
            if device.startswith(("GPU-", "MIG-")):
                status = nvml.nvmlDeviceGetHandleByUUID(device.encode(), ctypes.byref(handle))
            elif device.isdigit():
                status = nvml.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(int(device)), ctypes.byref(handle))
            else:
                return None
            energy = ctypes.c_ulonglong()
            if status != 0 or nvml.nvmlDeviceGetTotalEnergyConsumption(handle, ctypes.byref(energy)) != 0:
                return None
            readings[device] = int(energy.value)
        return readings
    finally:
        nvml.nvmlShutdown()


def energy_joules(start: Mapping[str, int] | None, end: Mapping[str, int] | None) -> float | None:
    """Joules used between two readings (summed over devices); None if either is missing, they name other
    devices, or a counter went backwards (the driver was reloaded in between)."""
    if not start or not end or set(start) != set(end):
        return None
    used = [end[d] - start[d] for d in start]
    if any(u < 0 for u in used):
        return None
    return sum(used) / 1000.0


def total_energy_joules(attempts: Sequence[float | None]) -> float | None:
    """The energy of a run: the sum over its attempts, None unless every attempt reported one."""
    if not attempts or any(a is None for a in attempts):
        return None
    return float(sum(attempts))
