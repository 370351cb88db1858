"""UNETR, SwinUNETR, Primus and the ResEnc plans through the real nnUNetv2_train / nnUNetv2_predict on CPU.

Folds 3 and 4 of the 8-case tiny datasets hold one validation case each: the final validation stays short. It runs
where a test checks it (VALIDATES); elsewhere NNPROG_FINAL_VALIDATION=off saves its worker start-ups, and the tests
that matter for inference predict with nnUNetv2_predict.

Tiny networks (the `Tiny*` trainers: the same architectures with few features) on tiny generated data; nnU-Net's own
Primus-S with a short schedule; the ResEnc presets planned by nnU-Net's own planners and narrowed (`*_tiny` plans).
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from cli_command import NNPROG
from conftest import Workspace
from training_logs import interrupt_at_epoch, matches_per_epoch

from nnunet_progressive.nnunet.compat import install_in_this_process

install_in_this_process()  # before timm (Primus) imports torchvision on a CPU-only machine

from nnunet_progressive.core.knobs import settings_from_env  # noqa: E402
from nnunet_progressive.datasets.prepare import plan_and_preprocess, write_small_plans  # noqa: E402
from nnunet_progressive.datasets.synthetic import write_preset  # noqa: E402
from nnunet_progressive.nnunet.hooks.pgps import schedule_for_configuration  # noqa: E402
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders, TrainingRun, predict, run_logged, train  # noqa: E402

pytestmark = pytest.mark.e2e

FAST = {"NNPROG_ITERATIONS": "2", "NNPROG_VAL_ITERATIONS": "1", "NNPROG_FINAL_VALIDATION": "off"}
VALIDATES = {"NNPROG_FINAL_VALIDATION": "on"}  # nnU-Net's final validation (a prediction with the final weights)
STAGE_LINE = re.compile(r"PGPS stage (\d+)/(\d+) \| patch ([\dx]+) \| batch (\d+) \| [\d,]+ voxels/s")
GRID_LINE = re.compile(r"Position embeddings in use: token grid ([\dx]+) \(")
TINY_FEATURES = (4, 8, 16, 32, 32, 32, 32, 32)


@pytest.fixture(scope="session")
def small64(tmp_path_factory) -> Workspace:
    """5 cases of 64^3 (the demo preset, fewer cases): planned patch 64^3, so SwinUNETR has 3 PGPS stages."""
    root = tmp_path_factory.mktemp("small64")
    folders = NnunetFolders.under(root)
    name = write_preset("demo", folders.raw, 503, overwrite=True, num_cases=5).name
    plan_and_preprocess(503, folders, ("3d_fullres",), log_file=root / "plan.log")
    write_small_plans(folders.preprocessed / name / "nnUNetPlans.json", ("3d_fullres",), TINY_FEATURES)
    return Workspace(folders, 503, name, "3d_fullres")


def _trainer_class(name: str) -> type:
    import nnunet_progressive_trainers.nnprog_architectures as architectures
    import nnunet_progressive_trainers.nnprog_pgps as pgps

    return getattr(architectures, name, None) or getattr(pgps, name)


def _expected_schedule(ws: Workspace, trainer: str, knobs: dict[str, str], plans: str | None = None):
    """The schedule the trainer must follow, from the pure schedule and the trainer's network rule."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    trainer_class = _trainer_class(trainer)
    settings = settings_from_env(trainer_class.default_settings, environ=knobs)
    plans_file = ws.preprocessed_dataset / f"{plans or ws.plans}.json"
    plans_manager = PlansManager(json.loads(plans_file.read_text()))
    configuration = plans_manager.get_configuration(ws.configuration)
    dataset_json = json.loads((ws.preprocessed_dataset / "dataset.json").read_text())
    rule = trainer_class.network_patch_rule(
        configuration, determine_num_input_channels(plans_manager, configuration, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads)
    return schedule_for_configuration(configuration, trainer_class.pgps_mode, settings, settings.epochs, rule)


def _text(patch) -> str:
    return "x".join(map(str, patch))


def _assert_follows_schedule(fold: Path, schedule, token_size: int | None = None) -> None:
    """Every epoch trained its stage's patch and batch; transformers with stored grids used the stage's grid."""
    seen = {epoch: (int(m.group(1)) - 1, m.group(3), int(m.group(4)))
            for epoch, m in matches_per_epoch(fold, STAGE_LINE).items()}
    assert sorted(seen) == list(range(schedule.num_epochs))
    for epoch, (index, patch, batch) in seen.items():
        stage = schedule.stage_at_epoch(epoch)
        assert (index, patch, batch) == (stage.index, _text(stage.patch_size), stage.batch_size), epoch
    stages = json.loads((fold / "curriculum.json").read_text())["stages"]
    assert all(stage["network_voxels_per_second"] and stage["loader_voxels_per_second"] for stage in stages), (
        "every stage's step was timed (the PGPS step wraps the network's own)")
    if token_size is not None:
        grids = {m.group(1) for m in matches_per_epoch(fold, GRID_LINE).values()}
        assert grids == {_text(p // token_size for p in stage.patch_size) for stage in schedule.stages}


def _run(ws: Workspace, trainer: str, fold: int, knobs: dict[str, str], tmp_path: Path, plans: str | None = None,
         **kwargs) -> tuple[TrainingRun, Path]:
    run = TrainingRun(str(ws.dataset_id), ws.configuration, fold, trainer, plans or ws.plans, knobs={**FAST, **knobs})
    train(run, ws.folders, tmp_path / f"{trainer}.log", **kwargs)
    return run, run.output_folder(ws.folders, ws.dataset_name)


def _predict_two_cases(ws: Workspace, run: TrainingRun, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    for source in sorted((ws.folders.raw / ws.dataset_name / "imagesTr").glob("*_0000.nii.gz"))[:2]:
        shutil.copy(source, images / source.name)
    out = tmp_path / f"predictions_{run.trainer}"
    predict(images, out, run, ws.folders, tmp_path / "predict.log")
    for source in sorted(images.glob("*_0000.nii.gz")):
        predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(out / source.name.replace("_0000", ""))))
        assert predicted.shape == sitk.GetArrayFromImage(sitk.ReadImage(str(source))).shape
        assert set(np.unique(predicted)) <= {0, 1, 2}


def _saved_patch(fold: Path, configuration: str) -> list[int]:
    return json.loads((fold.parent / "plans.json").read_text())["configurations"][configuration]["patch_size"]


# --- UNETR ---------------------------------------------------------------------------------------------------
@pytest.mark.long
def test_tiny_unetr_efficiency_resumed_in_a_middle_stage_predicts_at_the_planned_patch(tiny3d, tmp_path):
    """Growing patches with the grid-following embeddings, --c in the middle stage, then prediction; the final
    checkpoint is MONAI's own UNETR at the planned patch."""
    trainer = "nnUNetTrainer_TinyUNETR_PGPS_Efficiency"
    knobs = {"NNPROG_EPOCHS": "6", "NNPROG_SAVE_EVERY": "1"}
    schedule = _expected_schedule(tiny3d, trainer, knobs)
    assert [s.patch_size for s in schedule.stages] == [(32, 16, 16), (32, 32, 16), (32, 32, 32)]
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 4, trainer, tiny3d.plans, knobs={**FAST, **knobs})
    log = tmp_path / "train.log"
    fold, resume_epoch = interrupt_at_epoch(run, tiny3d.folders, tiny3d.dataset_name, log, 3)
    assert 2 <= resume_epoch <= 4, "interrupted in the middle stage or just after it"
    train(replace(run, knobs={**FAST, "NNPROG_EPOCHS": "6"}), tiny3d.folders, log, extra=["--c"])
    stage = schedule.stage_at_epoch(resume_epoch)
    assert f"Continuing at epoch {resume_epoch}: PGPS stage {stage.index + 1}/3 | patch {_text(stage.patch_size)}" in (
        log.read_text())
    _assert_follows_schedule(fold, schedule, token_size=16)
    assert _saved_patch(fold, "3d_fullres") == [32, 32, 32]
    _predict_two_cases(tiny3d, run, tmp_path)
    # the checkpoint trained on growing patches is MONAI's UNETR at the planned patch
    from monai.networks.nets import UNETR

    from nnunet_progressive.architectures.specs import TINY_UNETR
    from nnunet_progressive.nnunet.networks.builders import build_network

    weights = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    grid_following = build_network(TINY_UNETR, 1, 3, (32, 32, 32))
    stock = UNETR(1, 3, (32, 32, 32), feature_size=4, hidden_size=48, mlp_dim=96, num_heads=4)
    grid_following.load_state_dict(weights), stock.load_state_dict(weights)
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.allclose(grid_following.eval()(x), stock.eval()(x), atol=1e-5)


def test_tiny_unetr_constant_and_performance(tiny3d, tmp_path):
    _, fold = _run(tiny3d, "nnUNetTrainer_TinyUNETR", 4, {"NNPROG_EPOCHS": "1"}, tmp_path)
    assert (fold / "checkpoint_final.pth").is_file()
    log = "\n".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert "UNETR recipe: adamw lr 0.0001, weight decay 1e-05, warmup_cosine" in log
    knobs = {"NNPROG_EPOCHS": "3"}  # the default path: no cap
    schedule = _expected_schedule(tiny3d, "nnUNetTrainer_TinyUNETR_PGPS_Performance", knobs)
    assert [s.batch_size for s in schedule.stages][0] > 2 and schedule.stages[-1].batch_size == 2
    _, fold = _run(tiny3d, "nnUNetTrainer_TinyUNETR_PGPS_Performance", 4, knobs, tmp_path)
    _assert_follows_schedule(fold, schedule, token_size=16)


@pytest.mark.long
def test_tiny_unetr_2d(tiny2d, tmp_path):
    trainer = "nnUNetTrainer_TinyUNETR_PGPS_Efficiency"
    stages = len(_expected_schedule(tiny2d, trainer, {"NNPROG_EPOCHS": "100"}).stages)
    knobs = {"NNPROG_EPOCHS": str(stages), **VALIDATES}
    schedule = _expected_schedule(tiny2d, trainer, knobs)
    assert len(schedule.planned_patch_size) == 2 and stages >= 3
    run, fold = _run(tiny2d, trainer, 3, knobs, tmp_path)
    _assert_follows_schedule(fold, schedule, token_size=16)
    assert (fold / "validation" / "summary.json").is_file()


# --- SwinUNETR -----------------------------------------------------------------------------------------------
def test_tiny_swin_unetr_constant_adjusts_the_planned_patch(tiny3d, tmp_path):
    run, fold = _run(tiny3d, "nnUNetTrainer_TinySwinUNETR", 3, {"NNPROG_EPOCHS": "1"}, tmp_path)
    assert _saved_patch(fold, "3d_fullres") == [64, 32, 32], "32^3 -> multiples of 32 with a 2-voxel bottleneck"
    assert tiny3d.plans_json()["configurations"]["3d_fullres"]["patch_size"] == [32, 32, 32], "source plans kept"
    log = "\n".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert "SwinUNETR: the planned patch [32, 32, 32] is adjusted to [64, 32, 32]" in log
    _predict_two_cases(tiny3d, run, tmp_path)


@pytest.mark.long
def test_tiny_swin_unetr_performance(small64, tmp_path):
    """3D Performance (window padding: small stages cost more than their voxels); Efficiency runs in 2D below."""
    trainer = "nnUNetTrainer_TinySwinUNETR_PGPS_Performance"
    knobs = {"NNPROG_EPOCHS": "3"}
    schedule = _expected_schedule(small64, trainer, knobs)
    assert [s.patch_size for s in schedule.stages] == [(64, 32, 32), (64, 64, 32), (64, 64, 64)]
    assert [s.batch_size for s in schedule.stages] == [6, 3, 2], "the voxel rule would give 8, 4, 2"
    run, fold = _run(small64, trainer, 0, knobs, tmp_path)
    _assert_follows_schedule(fold, schedule)
    _predict_two_cases(small64, run, tmp_path)


@pytest.mark.long
def test_tiny_swin_unetr_2d(tiny2d, tmp_path):
    knobs = {"NNPROG_EPOCHS": "2", **VALIDATES}  # the 2D SwinUNETR predicts in nnU-Net's final validation
    schedule = _expected_schedule(tiny2d, "nnUNetTrainer_TinySwinUNETR_PGPS_Efficiency", knobs)
    assert [s.patch_size for s in schedule.stages] == [(64, 32), (64, 64)]
    _, fold = _run(tiny2d, "nnUNetTrainer_TinySwinUNETR_PGPS_Efficiency", 4, knobs, tmp_path)
    _assert_follows_schedule(fold, schedule)
    assert (fold / "validation" / "summary.json").is_file()


# --- Primus --------------------------------------------------------------------------------------------------
def test_tiny_primus_constant_performance_and_resume(tiny3d, tmp_path):
    _, fold = _run(tiny3d, "nnUNetTrainer_TinyPrimus_ConstantPatch", 3, {"NNPROG_EPOCHS": "1"}, tmp_path)
    assert (fold / "checkpoint_final.pth").is_file()

    knobs = {"NNPROG_EPOCHS": "9"}  # the default path: no cap, the batch from Primus' memory estimate
    schedule = _expected_schedule(tiny3d, "nnUNetTrainer_TinyPrimus_PGPS_Performance", knobs)
    assert len(schedule.stages) == 9 and schedule.stages[0].patch_size == (16, 8, 8)
    assert schedule.stages[0].batch_size > 32, "the memory budget holds dozens of 16x8x8 samples"
    _, fold = _run(tiny3d, "nnUNetTrainer_TinyPrimus_PGPS_Performance", 3, knobs, tmp_path)
    _assert_follows_schedule(fold, schedule, token_size=8)
    log = "\n".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert "train whole net, default schedule" in log, "the warmup (5% of 9 epochs: 1) ended"

    # --c in a middle stage (nnU-Net 2.8.1's Primus base cannot load its own checkpoints without our fix)
    knobs = {"NNPROG_EPOCHS": "5", "NNPROG_SAVE_EVERY": "1", "NNPROG_MIN_PATCH": "32,16,16"}
    schedule = _expected_schedule(tiny3d, "nnUNetTrainer_TinyPrimus_PGPS_Efficiency", knobs)
    assert len(schedule.stages) == 5
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 4, "nnUNetTrainer_TinyPrimus_PGPS_Efficiency",
                      tiny3d.plans, knobs={**FAST, **knobs})
    log = tmp_path / "resume.log"
    fold, _ = interrupt_at_epoch(run, tiny3d.folders, tiny3d.dataset_name, log, 2)
    train(run, tiny3d.folders, log, extra=["--c"])
    assert "Continuing at epoch" in log.read_text()
    _assert_follows_schedule(fold, schedule, token_size=8)
    _predict_two_cases(tiny3d, run, tmp_path)


@pytest.mark.long
def test_nnunet_primus_s_performance(tiny3d, tmp_path):
    """nnU-Net's own Primus-S trainer (full size) with growing patches and batches; a short schedule keeps it quick
    (Efficiency's data path is the tiny Primus test's above)."""
    trainer = "nnUNet_Primus_S_Trainer_PGPS_Performance"
    knobs = {"NNPROG_EPOCHS": "3", "NNPROG_MIN_PATCH": "32,32,16", **VALIDATES}  # predicts at the planned grid
    schedule = _expected_schedule(tiny3d, trainer, knobs)
    assert [s.patch_size for s in schedule.stages] == [(32, 32, 16), (32, 32, 24), (32, 32, 32)]
    _, fold = _run(tiny3d, trainer, 3, knobs, tmp_path)
    _assert_follows_schedule(fold, schedule, token_size=8)
    assert (fold / "validation" / "summary.json").is_file()


def test_primus_on_2d_is_one_clear_error(tiny2d, tmp_path):
    run = TrainingRun(str(tiny2d.dataset_id), "2d", 0, "nnUNet_Primus_S_Trainer_PGPS_Efficiency", tiny2d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "2"})
    with pytest.raises(RuntimeError) as failure:
        train(run, tiny2d.folders, tmp_path / "train.log")
    assert "Primus is implemented for 3D patches only, but configuration '2d' has a 2D patch" in str(failure.value)
    import subprocess

    shown = subprocess.run([*NNPROG, "schedule", "-d", str(tiny2d.dataset_id), "-c", "2d", "-p", tiny2d.plans, "-tr",
                            "nnUNet_Primus_S_Trainer_PGPS_Performance"], capture_output=True, text=True,
                           env=tiny2d.folders.environment())
    assert shown.returncode == 2 and "Primus is implemented for 3D patches only" in shown.stderr, shown.stderr


# --- nnU-Net's ResEnc presets -------------------------------------------------------------------------------
@pytest.mark.parametrize(("preset", "mode"), [("M", "Efficiency"),
                                              pytest.param("L", "Performance", marks=pytest.mark.long),
                                              pytest.param("XL", "Efficiency", marks=pytest.mark.long)])
def test_resenc_plans_with_pgps(tiny3d, tmp_path, preset, mode):
    """nnU-Net's ResEnc planners (their data is nnU-Net's default preprocessing), narrowed for CPU."""
    plans = f"nnUNetResEncUNet{preset}Plans"
    source = tiny3d.preprocessed_dataset / f"{plans}.json"
    if not source.is_file():
        run_logged(["nnUNetv2_plan_experiment", "-d", str(tiny3d.dataset_id), "-pl", f"nnUNetPlannerResEnc{preset}"],
                   tiny3d.folders.environment(), tmp_path / "plan.log")
    planned = json.loads(source.read_text())["configurations"]["3d_fullres"]
    assert planned["architecture"]["network_class_name"].endswith("ResidualEncoderUNet")
    tiny_plans = f"{plans}_tiny"
    write_small_plans(source, ("3d_fullres",), TINY_FEATURES, plans_name=tiny_plans)
    trainer = f"nnUNetTrainer_PGPS_{mode}"
    knobs = {"NNPROG_EPOCHS": "3", "NNPROG_MIN_PATCH": "32,32,16", **VALIDATES}
    schedule = _expected_schedule(tiny3d, trainer, knobs, plans=tiny_plans)
    assert len(schedule.stages) == 3
    _, fold = _run(tiny3d, trainer, 3, knobs, tmp_path, plans=tiny_plans)
    _assert_follows_schedule(fold, schedule)
    assert (fold / "validation" / "summary.json").is_file()


# --- MONAI as an optional extra ------------------------------------------------------------------------------
def test_without_monai_the_trainer_says_how_to_install_it(tiny3d, tmp_path):
    fake = tmp_path / "no_monai" / "monai"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named monai (hidden by the test)')\n")
    import os

    from nnunet_progressive.nnunet.compat import pythonpath_with_compat

    pythonpath = os.pathsep.join(p for p in (str(fake.parent), pythonpath_with_compat(os.environ.get("PYTHONPATH")))
                                 if p)
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 4, "nnUNetTrainer_TinyUNETR", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "1", "PYTHONPATH": pythonpath})
    with pytest.raises(RuntimeError) as failure:
        train(run, tiny3d.folders, tmp_path / "train.log")
    assert "nnUNetTrainer_TinyUNETR needs MONAI" in str(failure.value)
    assert 'pip install "nnunet-progressive[transformers]"' in str(failure.value)


def test_nnprog_schedule_shows_the_architecture_schedule(tiny3d):
    import subprocess

    env = {**tiny3d.folders.environment(), "NNPROG_EPOCHS": "20"}
    command = [*NNPROG, "schedule", "-d", str(tiny3d.dataset_id), "-c", "3d_fullres", "-p", tiny3d.plans, "-tr"]
    result = subprocess.run([*command, "nnUNetTrainer_TinyUNETR_PGPS_Performance"], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    expected = _expected_schedule(tiny3d, "nnUNetTrainer_TinyUNETR_PGPS_Performance", {"NNPROG_EPOCHS": "20"})
    for stage in expected.stages:
        assert re.search(rf"{_text(stage.patch_size)}\s+{stage.batch_size}\s", result.stdout), stage
    result = subprocess.run([*command, "nnUNetTrainer_TinySwinUNETR_PGPS_Efficiency"], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0 and "constant patch 64x32x32" in result.stdout, result.stdout + result.stderr
