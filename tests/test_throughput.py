"""Loader/network throughput bookkeeping (pgps/throughput.py) and its per-stage summary."""
from __future__ import annotations

import pytest

from nnunet_progressive.pgps.report import stage_summaries
from nnunet_progressive.pgps.schedule import build_schedule
from nnunet_progressive.pgps.throughput import Throughput, combined


def test_rates_wait_share_and_loader_bound():
    epoch = Throughput(workers=2)
    for _ in range(4):  # 4 iterations of 8 samples of 1000 voxels; loader 0.5 s per batch in each of 2 workers
        epoch = epoch.plus_iteration(8, 8000, wait_seconds=0.1, step_seconds=0.4, loader_seconds=0.5)
    assert epoch.network_samples_per_second == pytest.approx(32 / 1.6)
    assert epoch.network_voxels_per_second == pytest.approx(32000 / 1.6)
    assert epoch.loader_samples_per_second == pytest.approx(2 * 8 / 0.5)
    assert epoch.loader_voxels_per_second == pytest.approx(2 * 8000 / 0.5)
    assert epoch.wait_share == pytest.approx(0.2) and epoch.loader_bound
    text = epoch.log_text()
    assert "loader 32.0 samples/s (32,000 voxels/s, 2 workers)" in text
    assert "network 20.0 samples/s (20,000 voxels/s)" in text and "waited 20% for batches (loader-bound)" in text


def test_network_bound_and_missing_loader_times():
    epoch = Throughput().plus_iteration(2, 100, 0.001, 1.0, None).plus_iteration(2, 100, 0.0, 1.0, None)
    assert not epoch.loader_bound and epoch.loader_samples_per_second is None
    assert "loader" not in epoch.log_text() and "waited 0% for batches" in epoch.log_text()
    assert Throughput().summary()["network_samples_per_second"] is None
    assert Throughput.from_dict(epoch.to_dict()) == epoch
    assert epoch.foreground_forced_share is None and epoch.cases_per_batch == 0


def test_what_the_loader_drew():
    epoch = Throughput().plus_iteration(8, 80, 0, 1, 0.1, cases=2, forced_crops=4)
    epoch = epoch.plus_iteration(8, 80, 0, 1, 0.1, cases=1, forced_crops=0)
    epoch = epoch.plus_iteration(8, 80, 0, 1, None, cases=2, forced_crops=None)  # a loader that does not say
    assert epoch.cases_per_batch == pytest.approx(5 / 3)
    assert epoch.foreground_forced_share == pytest.approx(4 / 16)
    summary = epoch.summary()
    assert summary["samples_per_batch"] == 8 and summary["foreground_forced_share"] == 0.25


def test_stage_summaries_sum_throughput_per_stage():
    schedule = build_schedule((32, 32, 32), [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], 2, 9)
    per_epoch = {e: Throughput(workers=2).plus_iteration(2, 2 * schedule.stage_at_epoch(e).patch_voxels, 0.5, 0.5,
                                                         0.25) for e in range(3)}
    summaries = stage_summaries(schedule, [0.0, 1.0, 2.0], [1.0, 2.0, 3.0], {0: 1.0, 1: 1.0, 2: 1.0}, 1, per_epoch)
    first = summaries[0]
    assert first["loader_samples_per_second"] == 16.0 and first["network_samples_per_second"] == 4.0
    assert first["loader_bound"] and first["wait_share"] == 0.5 and first["loader_workers"] == 2
    assert summaries[-1]["network_samples_per_second"] is None, "a stage not trained yet has no rates"
    assert combined([per_epoch[0], per_epoch[1]]).iterations == 2


def test_augmentation_on_the_device_is_kept_out_of_the_step_and_reported():
    device = Throughput(augment_on="device").plus_iteration(2, 100, 0.0, 0.8, 0.05, augment_seconds=0.2)
    device = device.plus_iteration(2, 100, 0.0, 0.8, 0.05, augment_seconds=0.4)
    assert device.augment_seconds_per_batch == pytest.approx(0.3) and device.network_samples_per_second == 2.5
    assert "augmentation on the device 300.0 ms/batch" in device.log_text()
    summary = device.summary()
    assert summary["augment_on"] == "device" and summary["augment_seconds_per_batch"] == pytest.approx(0.3)
    assert summary["loader_seconds_per_batch"] == pytest.approx(0.05)
    workers = Throughput().plus_iteration(2, 100, 0.5, 1.0, 0.2)
    assert workers.augment_seconds_per_batch is None and workers.wait_share == pytest.approx(1 / 3)
    assert "augmentation in the workers (within their 200.0 ms/batch)" in workers.log_text()
    both = combined([device, Throughput(augment_on="device").plus_iteration(2, 100, 0.0, 1.0, None, 0, None, 0.6)])
    assert both.augment_on == "device" and both.augment_batches == 3 and both.augment_seconds == pytest.approx(1.2)
    assert combined([device, workers]).augment_on == "mixed"
