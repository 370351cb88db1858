"""GPU energy of a run from NVML's counter: which devices, the difference of two readings, the sum of attempts."""
from nnunet_progressive.benchmark.energy import energy_joules, read_nvml_energy, run_gpus, total_energy_joules


def test_run_gpus_follow_the_runner_and_cuda_visible_devices():
    assert run_gpus("cpu", 1, {}) == [] and run_gpus("mps", None, {}) == []
    assert run_gpus("cuda", 3, {"CUDA_VISIBLE_DEVICES": "0"}) == ["3"]
    assert run_gpus("cuda", None, {"CUDA_VISIBLE_DEVICES": "GPU-abc, GPU-def"}) == ["GPU-abc"]
    assert run_gpus("cuda", None, {}) == ["0"]
    assert run_gpus("cuda", None, {"CUDA_VISIBLE_DEVICES": ""}) == []


def test_energy_is_the_counter_difference_or_not_reported():
    assert energy_joules({"0": 1_000, "1": 500}, {"0": 4_000, "1": 2_500}) == 5.0
    assert energy_joules(None, {"0": 1}) is None and energy_joules({"0": 1}, None) is None
    assert energy_joules({"0": 1}, {"1": 2}) is None  # other devices
    assert energy_joules({"0": 9_000}, {"0": 1_000}) is None  # the driver reloaded: the counter restarted


def test_run_energy_needs_every_attempt():
    assert total_energy_joules([1.5, 2.5]) == 4.0
    assert total_energy_joules([1.5, None]) is None and total_energy_joules([]) is None


def test_no_device_is_not_reported():
    assert read_nvml_energy([]) is None
    assert read_nvml_energy(["not-a-device"]) is None  # no driver here, or a name NVML cannot resolve
