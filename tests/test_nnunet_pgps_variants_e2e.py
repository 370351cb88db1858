"""The published PGPS variants as knob values, through the real nnUNetv2_train on CPU (tiny generated data):
`_Performance_SQRT`, `_GridSampler`, spatial jitter, LAMB and stage checkpoints in one run; `_SingleVolume` with
`_PoissonDisk` in a second; the loader's crop placement and jitter inside nnU-Net's own loader (in process)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_progressive.cli.verify import verify_model_folder
from nnunet_progressive.nnunet.hooks.loaders import PatchCropLoader, inner_data_loader, shutdown_augmenter
from nnunet_progressive.nnunet.orchestration.runner import TrainingRun, train
from nnunet_progressive.pgps.sampling import stage_checkpoint_name
from nnunet_progressive.pgps.schedule import build_schedule

pytestmark = pytest.mark.e2e

FAST = {"NNPROG_ITERATIONS": "2", "NNPROG_VAL_ITERATIONS": "1", "NNPROG_FINAL_VALIDATION": "off",
        "NNPROG_EPOCHS": "9"}
SQRT_GRID_LAMB = {**FAST, "NNPROG_BATCH_SAMPLING": "sqrt", "NNPROG_RANDOM_CROPS": "grid",
                  "NNPROG_FOREGROUND_JITTER": "0.25", "NNPROG_OPTIMIZER": "lamb", "NNPROG_STAGE_CHECKPOINTS": "on"}
SINGLE_POISSON = {**FAST, "NNPROG_BATCH_SAMPLING": "single_volume", "NNPROG_RANDOM_CROPS": "poisson_disk"}


def _train(ws, root: Path, fold: int, knobs: dict[str, str]) -> tuple[TrainingRun, Path, str]:
    run = TrainingRun(str(ws.dataset_id), "3d_fullres", fold, "nnUNetTrainer_PGPS_Performance", ws.plans, knobs=knobs)
    log = root / f"train_{fold}.log"
    train(run, ws.folders, log)
    return run, run.output_folder(ws.folders, ws.dataset_name), log.read_text()


@pytest.fixture(scope="module")
def planned(tiny3d_dataset, tmp_path_factory):
    """The tiny3d data with this module's own results folder, and the Performance schedule of 9 epochs."""
    root = tmp_path_factory.mktemp("pgps_variants")
    ws = tiny3d_dataset.with_results(root / "nnUNet_results")
    config = ws.plans_json()["configurations"]["3d_fullres"]
    schedule = build_schedule(config["patch_size"], config["architecture"]["arch_kwargs"]["strides"],
                              config["batch_size"], 9, mode="performance")
    return ws, root, schedule


@pytest.fixture(scope="module")
def sqrt_run(planned):
    """One run: the _SQRT batching, grid-placed random crops, jitter, LAMB and stage checkpoints."""
    ws, root, schedule = planned
    return (ws, schedule, _train(ws, root, 0, SQRT_GRID_LAMB), None)


@pytest.fixture(scope="module")
def single_run(planned):
    """One run: the _SingleVolume batching with Poisson-disk random crops."""
    ws, root, schedule = planned
    return (ws, schedule, None, _train(ws, root, 1, SINGLE_POISSON))


def test_sqrt_sampling_loads_ceil_sqrt_crops_per_case(sqrt_run):
    _, schedule, (_, fold, text), _ = sqrt_run
    assert schedule.stages[0].batch_size == 64
    assert "| patch 16x8x8 | batch 64 | " in text and "| 8 cases x 8 crops, 50% foreground-forced | " in text
    records = json.loads((fold / "curriculum.json").read_text())["stages"]
    for stage, record in zip(schedule.stages, records):
        assert record["samples_per_batch"] == stage.batch_size
        per_case = int(np.ceil(np.sqrt(stage.batch_size)))
        assert record["cases_per_batch"] <= int(np.ceil(stage.batch_size / per_case))
    settings = json.loads((fold / "nnprog_run.json").read_text())["settings"]
    assert (settings["batch_sampling"], settings["random_crops"], settings["foreground_jitter"]) == ("sqrt", "grid",
                                                                                                     0.25)


def test_lamb_trains_with_its_own_state_and_learning_rate(sqrt_run):
    _, _, (_, fold, text), _ = sqrt_run
    assert "Optimiser: LAMB, lr 0.001, weight decay 3e-05, poly decay" in text
    rates = [float(m) for m in re.findall(r"Current learning rate: ([\d.e-]+)", text)]
    assert rates and rates[0] == pytest.approx(1e-3)
    state = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["optimizer_state"]
    first = next(iter(state["state"].values()))
    assert {"exp_avg", "exp_avg_sq", "step"} <= set(first) and "momentum_buffer" not in first


def test_stage_checkpoints_at_each_stage_end_intact_and_apart_from_resume(sqrt_run):
    _, schedule, (_, fold, text), _ = sqrt_run
    for stage in schedule.stages[:-1]:
        path = fold / stage_checkpoint_name(stage.index, stage.patch_size)
        assert path.is_file(), path.name
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        assert checkpoint["current_epoch"] == stage.last_epoch, "as nnU-Net records an epoch's checkpoint"
        assert f"Stage {stage.index + 1} ended: {path.name}" in text
    assert not list(fold.glob(f"checkpoint_stage{len(schedule.stages):02d}_*.pth")), "the last is checkpoint_final"
    verdicts = {v.path.name: v for v in verify_model_folder(fold)}  # every checkpoint against its sidecar's sha256
    stage_files = {stage_checkpoint_name(s.index, s.patch_size) for s in schedule.stages[:-1]}
    assert stage_files | {"checkpoint_final.pth"} <= set(verdicts)
    assert all(v.status == "verified" for v in verdicts.values()), verdicts


def test_continue_never_picks_a_stage_checkpoint(sqrt_run, tmp_path):
    """A damaged checkpoint_final under --c falls back to nnU-Net's own checkpoints only (best here), never to a
    stage checkpoint, even where one holds a later epoch."""
    from nnunet_progressive.nnunet.hooks.run_state import choose_checkpoint

    _, _, (_, fold, _), _ = sqrt_run
    copy = tmp_path / "fold"
    shutil.copytree(fold, copy)
    (copy / "checkpoint_final.pth").write_bytes(b"damaged")
    chosen, message = choose_checkpoint(copy / "checkpoint_final.pth", None, allow_fallback=True)
    assert chosen.path.name == "checkpoint_best.pth" and "Continuing from checkpoint_best.pth" in message
    assert not list(fold.glob("*.tmp*")), "written atomically"


@pytest.mark.long
def test_single_volume_with_poisson_disk_draws_one_case_per_batch(single_run):
    _, schedule, _, (_, fold, text) = single_run
    assert "| patch 16x8x8 | batch 64 | " in text and "| 1 case x 64 crops, 50% foreground-forced | " in text
    records = json.loads((fold / "curriculum.json").read_text())["stages"]
    assert [r["cases_per_batch"] for r in records] == [1] * len(schedule.stages)
    assert not list(fold.glob("checkpoint_stage*")), "stage checkpoints are off by default"


def _loader_of(ws, monkeypatch, knobs: dict[str, str]):
    from nnunet_progressive_trainers.nnprog_pgps import nnUNetTrainer_PGPS_Performance

    for key, value in {**ws.folders.environment({}), "nnUNet_n_proc_DA": "0", "NNPROG_EPOCHS": "9",
                       **knobs}.items():
        monkeypatch.setenv(key, value)
    plans = ws.plans_json()
    plans["continue_training"] = False
    dataset_json = json.loads((ws.preprocessed_dataset / "dataset.json").read_text())
    trainer = nnUNetTrainer_PGPS_Performance(plans, ws.configuration, 2, dataset_json, torch.device("cpu"))
    trainer.initialize()
    trainer.on_train_start()
    trainer.ensure_training_stage(0)
    loader = inner_data_loader(trainer.dataloader_train)
    assert isinstance(loader, PatchCropLoader)
    return trainer, loader


def test_grid_places_the_random_crops_of_each_case_inside_nnunets_loader(tiny3d, monkeypatch):
    import nnunet_progressive.nnunet.hooks.loaders as loaders

    trainer, loader = _loader_of(tiny3d, monkeypatch, {"NNPROG_BATCH_SAMPLING": "sqrt", "NNPROG_RANDOM_CROPS": "grid"})
    try:
        placed, used = [], []
        place, original = loaders.random_crop_starts, loader.get_bbox

        def recording_place(placement, data_shape, patch_size, need_to_pad, count, rng):
            placed.append((placement, tuple(data_shape), count, place(placement, data_shape, patch_size, need_to_pad,
                                                                      count, rng)))
            return list(placed[-1][3])

        def recording_box(data_shape, force_fg, *args, **kwargs):
            box = original(data_shape, force_fg, *args, **kwargs)
            used.append((loader._groups[loader._sample], force_fg, tuple(box[0])))
            return box

        monkeypatch.setattr(loaders, "random_crop_starts", recording_place)
        monkeypatch.setattr(loader, "get_bbox", recording_box)
        batch = loader.generate_train_batch()
        assert batch["data"].shape[0] == 64 and loader.layout.crops == (8,) * 8
        keys = [str(k) for k in batch["keys"]]
        assert all(len(set(keys[g * 8:(g + 1) * 8])) == 1 for g in range(8)), "8 crops of each loaded case"
        # the first 4 cases give the 32 random crops, each case's 8 placed once on its grid (2x2x2 cells)
        assert [(p[0], p[2]) for p in placed] == [("grid", 8)] * 4
        assert all(len(p[1]) == 3 for p in placed)
        for group, (_, _, _, starts) in enumerate(placed):
            assert [start for g, forced, start in used if g == group and not forced] == list(starts)
        assert sum(forced for _, forced, _ in used) == 32
    finally:
        shutdown_augmenter(trainer.dataloader_val)


def test_jitter_shifts_foreground_crops_inside_nnunets_loader(tiny3d, monkeypatch):
    trainer, loader = _loader_of(tiny3d, monkeypatch, {"NNPROG_FOREGROUND_JITTER": "0.25"})
    try:
        shape = (32, 32, 32)
        locations = {1: np.array([[0, 16, 16, 16]])}  # one foreground voxel in the middle of the case
        centred = [16 - p // 2 for p in loader.patch_size]
        shifts = np.array([np.subtract(loader.get_bbox(shape, True, locations)[0], centred) for _ in range(600)])
        most = [int(0.25 * p) for p in loader.final_patch_size]  # network patch 16x8x8 at stage 1
        assert 0.4 < np.any(shifts != 0, axis=1).mean() < 0.6
        assert all(shifts[:, a].min() == -most[a] and shifts[:, a].max() == most[a] for a in range(3))
        unforced = {tuple(loader.get_bbox(shape, False, locations)[0]) for _ in range(50)}
        assert len(unforced) > 10, "random crops are nnU-Net's uniform ones"
    finally:
        shutdown_augmenter(trainer.dataloader_val)


def test_lamb_rate_without_lamb_is_a_clear_error(tiny3d, monkeypatch):
    from nnunet_progressive.core.errors import ProgressiveConfigError

    with pytest.raises(ProgressiveConfigError, match="NNPROG_LAMB_LR=0.01 is set but the optimiser is 'sgd'; set "
                                                     "NNPROG_OPTIMIZER=lamb or unset NNPROG_LAMB_LR"):
        _loader_of(tiny3d, monkeypatch, {"NNPROG_LAMB_LR": "0.01"})
