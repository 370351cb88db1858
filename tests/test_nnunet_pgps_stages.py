"""Stage switching inside a real nnU-Net trainer (in process): shapes, batches, oversampling, no leaks."""
from __future__ import annotations

import json
import multiprocessing
import time

import pytest
import torch
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader

from nnunet_progressive.nnunet.loaders import inner_data_loader, shutdown_augmenter

pytestmark = pytest.mark.e2e  # the tiny3d fixture plans and preprocesses with nnU-Net's own commands


def _make_trainer(ws, trainer_class, monkeypatch, fold: int, knobs: dict[str, str]):
    for key, value in {**ws.folders.environment({}), "nnUNet_n_proc_DA": "2", **knobs}.items():
        monkeypatch.setenv(key, value)
    plans = ws.plans_json()
    plans["continue_training"] = False
    dataset_json = json.loads((ws.preprocessed_dataset / "dataset.json").read_text())
    return trainer_class(plans, ws.configuration, fold, dataset_json, torch.device("cpu"))


def _live_children() -> int:
    return len(multiprocessing.active_children())


def test_stage_switches_keep_shapes_batches_oversampling_and_leak_nothing(tiny3d, monkeypatch):
    from nnunet_progressive_trainers.nnprog_pgps import nnUNetTrainer_PGPS_Performance

    trainer = _make_trainer(tiny3d, nnUNetTrainer_PGPS_Performance, monkeypatch, fold=4,
                            knobs={"NNPROG_EPOCHS": "9", "NNPROG_MAX_BATCH": "8"})
    trainer.initialize()
    trainer.on_train_start()
    planned = tuple(trainer.configuration_manager.patch_size)
    workers_per_stage = None
    try:
        for _ in range(3):  # 27 stage switches
            for stage in trainer.schedule.stages:
                trainer.ensure_training_stage(stage.first_epoch)
                batch = next(trainer.dataloader_train)
                assert tuple(batch["data"].shape[2:]) == stage.patch_size
                assert batch["data"].shape[0] == stage.batch_size
                # the configuration (validation, inference, plans.json) keeps the planned values
                assert tuple(trainer.configuration_manager.patch_size) == planned
                assert trainer.configuration_manager.batch_size == trainer.schedule.planned_batch_size
                loader = inner_data_loader(trainer.dataloader_train)
                positional = loader.get_do_oversample.__func__ is nnUNetDataLoader._oversample_last_XX_percent
                if stage.batch_size == 2:  # planned batch: nnU-Net's own positional rule, 1 of 2 forced
                    assert positional and loader.oversample_foreground_percent == pytest.approx(0.33)
                else:  # batch 8 would force 3 of 8; per-sample draws keep the planned share of 1/2
                    assert not positional and loader.oversample_foreground_percent == pytest.approx(0.5)
                workers_per_stage = workers_per_stage or _live_children()
                assert _live_children() <= workers_per_stage, "old loader workers must be shut down"
        val_batch = next(trainer.dataloader_val)
        assert tuple(val_batch["data"].shape[2:]) == planned
        assert val_batch["data"].shape[0] == trainer.schedule.planned_batch_size
    finally:
        shutdown_augmenter(trainer.dataloader_train)
        shutdown_augmenter(trainer.dataloader_val)
    deadline = time.time() + 10
    while _live_children() and time.time() < deadline:
        time.sleep(0.1)
    assert _live_children() == 0


def test_rpss_loader_draws_several_patch_sizes(tiny3d, monkeypatch):
    from nnunet_progressive_trainers.nnprog_pgps import nnUNetTrainer_RPSS

    trainer = _make_trainer(tiny3d, nnUNetTrainer_RPSS, monkeypatch, fold=4, knobs={"NNPROG_EPOCHS": "9"})
    trainer.initialize()
    trainer.on_train_start()
    try:
        trainer.ensure_training_stage(0)
        shapes = {tuple(next(trainer.dataloader_train)["data"].shape[2:]) for _ in range(30)}
        pool = {stage.patch_size for stage in trainer.schedule.stages}
        assert shapes <= pool and len(shapes) >= 4
    finally:
        shutdown_augmenter(trainer.dataloader_train)
        shutdown_augmenter(trainer.dataloader_val)
