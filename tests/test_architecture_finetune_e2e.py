"""Fine-tuning composes with the architectures' recipes: a tiny UNETR and a tiny Primus through the real
``nnUNetv2_train ... -device cpu -pretrained_weights CKPT``.

The fine-tuning recipe's parameter groups, freezing and warmup must sit on the architecture's optimiser family and
base learning rate (AdamW with the recipe's betas and weight decay), not be lost to the recipe's own optimiser
(UNETR) nor to nnU-Net's Primus warmup switching its optimiser mid-run. The pre-trained checkpoints are the same
networks with other (seeded) weights, saved as nnU-Net saves them (``network_weights``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import Workspace
from training_logs import matches_per_epoch

from nnunet_progressive.nnunet.compat import install_in_this_process

install_in_this_process()  # before timm (Primus) imports torchvision on a CPU-only machine

from nnunet_progressive.architectures.recipes import PRIMUS_RECIPE, UNETR_RECIPE  # noqa: E402
from nnunet_progressive.nnunet.orchestration.runner import TrainingRun, train  # noqa: E402
from nnunet_progressive.transfer.finetune import build_finetune_schedule  # noqa: E402
from nnunet_progressive.transfer.mapping import parameter_role  # noqa: E402

pytestmark = pytest.mark.e2e

FAST = {"NNPROG_ITERATIONS": "1", "NNPROG_VAL_ITERATIONS": "1", "NNPROG_SAVE_EVERY": "1",
        "NNPROG_FINAL_VALIDATION": "off"}
UNETR_KNOBS = {"NNPROG_EPOCHS": "3", "NNPROG_WARMUP_EPOCHS": "1", "NNPROG_FROZEN_EPOCHS": "1"}
PHASE_LINE = re.compile(r"(Fine-tuning phase \d+/\d+ .*?)\s*$")
PRIMUS_KNOBS = {"NNPROG_EPOCHS": "3", "NNPROG_WARMUP_EPOCHS": "1", "NNPROG_HEAD_EPOCHS": "1"}


def _pretrained_checkpoint(ws: Workspace, trainer_name: str, path: Path) -> Path:
    """The trainer's network with seeded weights, saved as nnU-Net saves a checkpoint's weights."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_progressive.nnunet.orchestration.discovery import find_trainer_class

    trainer = find_trainer_class(trainer_name)
    plans_manager = PlansManager(str(ws.preprocessed_dataset / f"{ws.plans}.json"))
    configuration = plans_manager.get_configuration(ws.configuration)
    dataset_json = json.loads((ws.preprocessed_dataset / "dataset.json").read_text())
    torch.manual_seed(11)
    network = trainer.build_network_architecture(
        plans_manager, configuration, determine_num_input_channels(plans_manager, configuration, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads, False)
    torch.save({"network_weights": network.state_dict()}, path)
    return path


def _finetune(ws: Workspace, trainer: str, knobs: dict, root: Path, **kwargs) -> Path:
    pretrained = _pretrained_checkpoint(ws, trainer, root / f"{trainer}_pretrained.pth")
    run = TrainingRun(str(ws.dataset_id), ws.configuration, "all", trainer, ws.plans, knobs={**FAST, **knobs})
    train(run, ws.folders, root / f"{trainer}.log", extra=("-pretrained_weights", str(pretrained)), **kwargs)
    return run.output_folder(ws.folders, ws.dataset_name)


@pytest.fixture(scope="module")
def unetr_frozen(tiny3d_dataset, tmp_path_factory) -> tuple[Path, Path]:
    """TinyUNETR fine-tuned with its encoder frozen, stopped once epoch 0 (the frozen phase) is checkpointed."""
    root = tmp_path_factory.mktemp("unetr_finetune")
    ws = tiny3d_dataset.with_results(root / "nnUNet_results")
    trainer = "nnUNetTrainer_TinyUNETR_Finetune_FrozenEncoder"
    knobs = {**UNETR_KNOBS, "NNPROG_ITERATIONS": "8"}  # epoch 1, the window of the kill, lasts seconds
    fold = _finetune(ws, trainer, knobs, root, stop_when=lambda output: "Epoch 1" in output.split(trainer)[-1])
    return fold, root / f"{trainer}_pretrained.pth"


@pytest.fixture(scope="module")
def primus_head_first(tiny3d_dataset, tmp_path_factory) -> Path:
    """TinyPrimus fine-tuned heads first, to the end (past nnU-Net's Primus warmup, which switches optimisers)."""
    root = tmp_path_factory.mktemp("primus_finetune")
    ws = tiny3d_dataset.with_results(root / "nnUNet_results")
    return _finetune(ws, "nnUNetTrainer_TinyPrimus_Finetune_HeadFirst", PRIMUS_KNOBS, root)


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _groups(checkpoint: dict) -> dict[str, dict]:
    return {g["nnprog_role"]: g for g in checkpoint["optimizer_state"]["param_groups"]}


def test_unetr_finetune_keeps_adamw_and_freezes_its_encoder(unetr_frozen):
    fold, pretrained = unetr_frozen
    checkpoint = _checkpoint(fold / "checkpoint_latest.pth")
    assert checkpoint["current_epoch"] == 1, "the checkpoint after the frozen epoch"
    groups = _groups(checkpoint)
    assert {"heads", "decoder", "encoder"} <= set(groups)
    for group in groups.values():  # the recipe's AdamW, split into the fine-tuning groups
        assert tuple(group["betas"]) == UNETR_RECIPE.betas and group["weight_decay"] == UNETR_RECIPE.weight_decay
    schedule = build_finetune_schedule("frozen_encoder", 3, UNETR_RECIPE.learning_rate, 1, frozen_epochs=1)
    rates = schedule.learning_rates(0)
    assert rates["encoder"] == 0 and rates["heads"] > 0
    assert {role: g["lr"] for role, g in groups.items()} == {role: rates[role] for role in groups}
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "Fine-tuning optimiser: AdamW, groups heads" in log
    assert matches_per_epoch(fold, PHASE_LINE)[0].group(1) == schedule.describe(0)
    before = torch.load(pretrained, weights_only=False)["network_weights"]
    after = checkpoint["network_weights"]
    for name, value in after.items():
        role = parameter_role(name)
        if role == "encoder" and value.is_floating_point() and name in before:
            assert torch.equal(value, before[name]), f"{name} moved while the encoder was frozen"
    moved = [n for n, v in after.items() if parameter_role(n) != "encoder" and v.is_floating_point()
             and not torch.equal(v, before[n])]
    assert moved, "decoder and heads trained in the frozen phase"


def test_primus_finetune_keeps_its_groups_past_nnunets_warmup_switch(primus_head_first):
    fold = primus_head_first
    checkpoint = _checkpoint(fold / "checkpoint_final.pth")
    groups = _groups(checkpoint)
    assert {"heads", "decoder", "encoder"} <= set(groups)
    for group in groups.values():  # nnU-Net's Primus AdamW (betas 0.9, 0.98; weight decay 5e-2)
        assert tuple(group["betas"]) == PRIMUS_RECIPE.betas and group["weight_decay"] == PRIMUS_RECIPE.weight_decay
    schedule = build_finetune_schedule("head_first", 3, PRIMUS_RECIPE.learning_rate, 1, 1,
                                       PRIMUS_RECIPE.learning_rate / 2)
    lines = {epoch: match.group(1) for epoch, match in matches_per_epoch(fold, PHASE_LINE).items()}
    phases = {epoch: line.split(" | optimiser")[0] for epoch, line in lines.items()}
    assert phases == {epoch: schedule.describe(epoch) for epoch in range(3)}
    assert "frozen: decoder, new, encoder" in phases[0]
    assert lines[1].endswith("optimiser state reset for: decoder, new, encoder")  # AdamW moments of the new roles
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "Fine-tuning optimiser: AdamW, groups heads" in log
    assert "train whole net, default schedule" not in log, "nnU-Net's warmup replaced the fine-tuning schedule"
    last = schedule.learning_rates(2)
    assert {role: g["lr"] for role, g in groups.items()} == {role: last[role] for role in groups}
