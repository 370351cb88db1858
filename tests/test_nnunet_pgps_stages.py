"""Stage switching inside a real nnU-Net trainer (in process): shapes, batch layout, augmentation, no leaks."""
from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter

import pytest
import torch

from nnunet_progressive.nnunet.hooks.loaders import (
    FORCED_CROPS_KEY,
    PatchCropLoader,
    RandomPatchSizeLoader,
    inner_data_loader,
    loader_workers,
    shutdown_augmenter,
)

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


def _wait_for_no_children() -> None:
    deadline = time.time() + 10
    while _live_children() and time.time() < deadline:
        time.sleep(0.1)


def _longest_run(keys) -> int:
    """The longest run of equal consecutive keys."""
    longest = run = 1
    for previous, key in zip(keys, keys[1:]):
        run = run + 1 if key == previous else 1
        longest = max(longest, run)
    return longest


def test_stage_switches_keep_shapes_batch_layout_and_leak_nothing(tiny3d, monkeypatch):
    from nnunet_progressive_trainers.nnprog_pgps import nnUNetTrainer_PGPS_Performance

    trainer = _make_trainer(tiny3d, nnUNetTrainer_PGPS_Performance, monkeypatch, fold=4,
                            knobs={"NNPROG_EPOCHS": "9", "NNPROG_MAX_BATCH": "8"})
    trainer.initialize()
    trainer.on_train_start()
    planned = tuple(trainer.configuration_manager.patch_size)
    workers_per_stage = None
    build, children_at_build = trainer._make_training_augmenter, []

    def build_counting_children(epoch: int):
        children_at_build.append(_live_children())
        return build(epoch)

    monkeypatch.setattr(trainer, "_make_training_augmenter", build_counting_children)
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
                assert isinstance(loader, PatchCropLoader)
                first, second = (stage.batch_size + 1) // 2, stage.batch_size // 2
                assert loader.layout.crops == (first, second)
                # the planned 2 cases, half the crops each; the planned share of crops (1/2: nnU-Net forces 1 of 2
                # samples at the planned batch with oversampling 0.33) forced to foreground, the last ones: the
                # second case's crops (and one of the first case's if the batch is odd)
                keys = [str(k) for k in batch["keys"]]
                assert len(set(keys[:first])) == len(set(keys[first:])) == 1
                forced = batch[FORCED_CROPS_KEY]
                assert forced == sorted(forced) and sum(forced) == first and all(forced[first:])
                workers_per_stage = workers_per_stage or _live_children()
                assert _live_children() <= workers_per_stage, "old loader workers must be shut down"
        assert max(children_at_build) <= loader_workers(trainer.dataloader_val), (
            "one training pool at a time: the old one has stopped before the next one starts")
        val_batch = next(trainer.dataloader_val)
        assert tuple(val_batch["data"].shape[2:]) == planned
        assert val_batch["data"].shape[0] == trainer.schedule.planned_batch_size
    finally:
        shutdown_augmenter(trainer.dataloader_train)
        shutdown_augmenter(trainer.dataloader_val)
    _wait_for_no_children()
    assert _live_children() == 0


def test_case_sampling_draws_every_crop_from_its_own_case(tiny3d, monkeypatch):
    from nnunet_progressive_trainers.nnprog_pgps import nnUNetTrainer_PGPS_Performance

    trainer = _make_trainer(tiny3d, nnUNetTrainer_PGPS_Performance, monkeypatch, fold=4,
                            knobs={"NNPROG_EPOCHS": "9", "NNPROG_BATCH_SAMPLING": "cases", "nnUNet_n_proc_DA": "0"})
    trainer.initialize()
    trainer.on_train_start()
    try:
        trainer.ensure_training_stage(0)
        stage = trainer.schedule.stages[0]
        assert stage.batch_size == 64, "no default cap: 2 x 32^3 voxels in patches of 16x8x8"
        batch = next(trainer.dataloader_train)
        assert batch["data"].shape[0] == 64
        assert _longest_run([str(k) for k in batch["keys"]]) < 8, "64 independent draws from the training cases"
        assert sum(batch[FORCED_CROPS_KEY]) == 32
    finally:
        shutdown_augmenter(trainer.dataloader_val)


def test_rpss_holds_one_worker_pool_whatever_the_number_of_sizes(tiny3d, monkeypatch):
    from nnunet_progressive_trainers.nnprog_pgps import nnUNetTrainer_RPSS

    children = {}
    for min_patch, fold in (("24,24,24", 3), ("", 4)):  # 4 patch sizes, then the 9 of the default
        knobs = {"NNPROG_EPOCHS": "9", "NNPROG_MIN_PATCH": min_patch}
        trainer = _make_trainer(tiny3d, nnUNetTrainer_RPSS, monkeypatch, fold=fold, knobs=knobs)
        trainer.initialize()
        trainer.on_train_start()
        try:
            trainer.ensure_training_stage(0)
            pool = {stage.patch_size for stage in trainer.schedule.stages}
            loader = inner_data_loader(trainer.dataloader_train)
            assert isinstance(loader, RandomPatchSizeLoader) and len(loader.loaders) == len(pool)
            shapes = Counter(tuple(next(trainer.dataloader_train)["data"].shape[2:]) for _ in range(30))
            assert set(shapes) <= pool and len(shapes) >= min(4, len(pool))
            children[len(pool)] = _live_children()
        finally:
            shutdown_augmenter(trainer.dataloader_train)
            shutdown_augmenter(trainer.dataloader_val)
        _wait_for_no_children()
    assert set(children) == {4, 9}
    # 2 training workers + 1 validation worker, for 4 patch sizes and for 9
    assert children[4] == children[9] == 3


@pytest.mark.parametrize("regime, first_axis_enlarged", [("planned", True), ("per_patch", False)])
def test_augmentation_regime_at_a_flat_first_stage(tiny3d, monkeypatch, regime, first_axis_enlarged):
    """8x32x32 is flat enough for nnU-Net's dummy-2D rule (in-plane rotation only, no crop enlargement along
    axis 0); the planned 32^3 patch is not: 3D rotation, crop enlarged on every axis."""
    from nnunet_progressive_trainers.nnprog_pgps import nnUNetTrainer_PGPS_Efficiency

    trainer = _make_trainer(tiny3d, nnUNetTrainer_PGPS_Efficiency, monkeypatch, fold=4,
                            knobs={"NNPROG_EPOCHS": "4", "NNPROG_MIN_PATCH": "8,32,32",
                                   "NNPROG_AUGMENTATION": regime, "nnUNet_n_proc_DA": "0"})
    trainer.initialize()
    trainer.on_train_start()
    try:
        trainer.ensure_training_stage(0)
        loader = inner_data_loader(trainer.dataloader_train)
        assert tuple(loader.final_patch_size) == (8, 32, 32)
        assert (loader.patch_size[0] > 8) == first_axis_enlarged
        assert all(size > 32 for size in loader.patch_size[1:])
        assert tuple(next(trainer.dataloader_train)["data"].shape[2:]) == (8, 32, 32)
        rotation, dummy_2d, _, _ = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        assert not dummy_2d, "outside a stage's loader build the planned patch's set-up is nnU-Net's own"
    finally:
        shutdown_augmenter(trainer.dataloader_val)
