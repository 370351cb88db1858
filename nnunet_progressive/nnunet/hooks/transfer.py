"""The nnU-Net hooks of fine-tuning: learning-rate phases and freezing, on nnU-Net's own optimiser.

Thin by design: the phases are :mod:`nnunet_progressive.transfer.finetune` (pure); the pre-trained weights come
through nnU-Net's own ``-pretrained_weights`` (``load_pretrained_weights``), so any checkpoint that stock nnU-Net
loads works, including the output of ``nnprog transfer adapt``. Which file the run started from is read from its
run identity (``nnprog_run.json``, :mod:`nnunet_progressive.nnunet.hooks.pretrained`), not the command line.

How freezing is done, and why this way:

- nnU-Net's optimiser (``super().configure_optimizers()``: SGD, or whatever a base trainer builds) is split into
  one parameter group per role (heads, decoder, new, encoder; heads first because nnU-Net logs group 0's rate);
  the scheduler sets each group's rate from the phase, 0 for frozen roles.
- Frozen parameters still get a gradient, which a hook on each parameter replaces by zeros. So every parameter
  receives a gradient in every iteration on every rank: DDP's reducer and its buckets are unchanged (no
  ``find_unused_parameters``, no unused-parameter errors), torch.compile's graphs stay the same (``requires_grad``
  never changes, so no recompilation), the gradient scaler sees the usual gradients, and nnU-Net's gradient
  clipping measures only the parameters that train. With a rate of 0 neither SGD nor Adam(W) moves a parameter
  (weight decay included). The cost: the frozen encoder's gradients are still computed (no speed-up).
- When a frozen role starts to train, its optimiser state (momentum, Adam moments) is reset, as if new.
- The phase is a pure function of the epoch and the run's stored settings, so ``--c`` continues in the right phase
  with the same learning rate; the roles (which encoder tensors were adapted or fresh) are stored beside each
  checkpoint and read back before nnU-Net rebuilds the optimiser.
- Segmentation heads: nnU-Net's ``load_pretrained_weights`` skips them. When ``nnprog transfer adapt`` kept head
  rows of the source for matching labels (its record says which), they are loaded here at the start of training
  (never on ``--c`` from a checkpoint, which holds the trained heads; ``--c`` of a run stopped before its first
  checkpoint starts it again, recorded weights and heads included).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import (
    FINETUNE_SCHEDULE,
    FROZEN_PHASE,
    HEAD_PHASE,
    RUN_LENGTH,
    ProgressiveSettings,
)
from nnunet_progressive.core.records import CheckpointState, FineTuningState
from nnunet_progressive.nnunet.catalogue import FINETUNE_EPOCHS
from nnunet_progressive.nnunet.hooks.run_state import RunLengthMixin
from nnunet_progressive.transfer.finetune import (
    DECODER,
    ENCODER,
    HEADS,
    ROLES,
    FinetuneSchedule,
    build_finetune_schedule,
)
from nnunet_progressive.transfer.mapping import frozen_roles, parameter_role

RECIPE_FEATURES = {"finetune": (), "head_first": (HEAD_PHASE,), "frozen_encoder": (FROZEN_PHASE,)}


def split_by_role(optimizer: torch.optim.Optimizer, network: torch.nn.Module, role_of: dict[str, str]) -> None:
    """Replace each parameter group by one group per role (same options, key ``nnprog_role``), in ROLES order."""
    names = {id(p): n for n, p in network.named_parameters()}
    groups = []
    for group in optimizer.param_groups:
        options = {k: v for k, v in group.items() if k != "params"}
        for role in ROLES:
            params = [p for p in group["params"] if role_of.get(names.get(id(p), ""), DECODER) == role]
            if params:
                groups.append({**options, "params": params, "nnprog_role": role})
    optimizer.param_groups = []
    optimizer.state.clear()
    for group in groups:
        optimizer.add_param_group(group)


def register_freezing_hooks(network: torch.nn.Module, role_of: dict[str, str],
                            frozen: Callable[[], frozenset[str]]) -> list:
    """A gradient hook per parameter: zeros while its role is in ``frozen()``; returns the handles."""
    handles = []
    for name, parameter in network.named_parameters():
        if parameter.requires_grad:
            role = role_of[name]
            handles.append(parameter.register_hook(
                lambda grad, role=role: torch.zeros_like(grad) if role in frozen() else grad))
    return handles


class FinetuneLRScheduler:
    """What nnU-Net asks of a scheduler (``step(epoch)``): each group's rate from the fine-tuning phase."""

    def __init__(self, optimizer: torch.optim.Optimizer, trainer: FineTuningMixin):
        self.optimizer = optimizer
        self.trainer = trainer
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def step(self, current_step: int | None = None) -> None:
        epoch = self.trainer.current_epoch if current_step is None else int(current_step)
        schedule = self.trainer.finetune_schedule
        rates = schedule.learning_rates(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = rates[group["nnprog_role"]]
        self.trainer._frozen_roles = frozenset(r for r in ROLES if r not in schedule.phase_at(epoch).trains)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class FineTuningMixin(RunLengthMixin):
    """Put before ``nnUNetTrainer`` (or a PGPS mixin) in the bases; train with ``-pretrained_weights FILE``."""

    finetune_recipe = "finetune"
    default_settings = ProgressiveSettings(epochs=FINETUNE_EPOCHS)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._frozen_roles: frozenset[str] = frozenset()
        self._gradient_hooks: list = []
        self._finetune_optimizer: torch.optim.Optimizer | None = None
        self._role_of: dict[str, str] = {}
        self._fresh_checksums: list[float] | None = None
        self._sidecar_pretrained: str | None = None  # the file a checkpoint's sidecar names (runs of older versions)
        self._statuses_known = False  # from the checkpoint's sidecar, else read from the file once
        self._statuses: dict[str, str] | None = None

    @property
    def _pretrained_file(self) -> str | None:
        """The file the run started from: its run identity's (the sidecar's for a run of an older version)."""
        return self.pretrained_weights or self._sidecar_pretrained

    @property
    def _parameter_statuses(self) -> dict[str, str] | None:
        if not self._statuses_known:
            self._statuses = self._statuses_of(self._pretrained_file)
            self._statuses_known = True
        return self._statuses

    @classmethod
    def knob_features(cls) -> frozenset[str]:
        parent = getattr(super(), "knob_features", None)
        features = set(parent()) if parent is not None else {RUN_LENGTH}
        return frozenset(features | {FINETUNE_SCHEDULE, *RECIPE_FEATURES[cls.finetune_recipe]})

    # --- schedule -------------------------------------------------------------------------------------------
    @property
    def finetune_schedule(self) -> FinetuneSchedule:
        settings = self.progressive_settings
        return build_finetune_schedule(self.finetune_recipe, self.num_epochs, settings.finetune_lr,
                                       settings.warmup_epochs, settings.head_epochs, settings.head_lr,
                                       settings.frozen_epochs)

    def derive_from_settings(self) -> None:
        super().derive_from_settings()  # run length first: the phases split num_epochs
        self.initial_lr = self.progressive_settings.finetune_lr
        self.finetune_schedule  # noqa: B018 - phases that leave no poly epoch stop here, before training

    @staticmethod
    def _statuses_of(pretrained_file: str | None) -> dict[str, str] | None:
        """Which target tensors ``nnprog transfer adapt`` loaded, adapted or left fresh (None: a plain checkpoint)."""
        if not pretrained_file or not Path(pretrained_file).is_file():
            return None
        from nnunet_progressive.nnunet.offline.transfer.weights import read_transfer_record

        record = read_transfer_record(pretrained_file)
        return None if record is None else record.statuses()

    # --- optimiser: one group per role, rates from the phase ------------------------------------------------------
    def configure_optimizers(self, *args, **kwargs):
        """The next class's optimiser (nnU-Net's SGD, an architecture recipe's AdamW, Primus' AdamW) split into one
        group per role, with the fine-tuning phases as its schedule. Built once: trainers that switch optimisers
        between their own stages (nnU-Net's warmup and Primus trainers) keep this one, as the phases replace theirs."""
        if self._finetune_optimizer is not None and getattr(self, "optimizer", None) is self._finetune_optimizer:
            return self.optimizer, self.lr_scheduler
        optimizer, _ = super().configure_optimizers(*args, **kwargs)
        self._role_of = frozen_roles([n for n, _ in self.network.named_parameters()], self._parameter_statuses)
        split_by_role(optimizer, self.network, self._role_of)
        present = {g["nnprog_role"] for g in optimizer.param_groups}
        if HEADS not in present:
            raise ProgressiveConfigError(f"{type(self).__name__}: no segmentation head found among the network's "
                                         f"parameters (expected names with '.seg_layers.'); this network is not "
                                         f"supported by the fine-tuning trainers")
        if self.finetune_recipe == "frozen_encoder" and ENCODER not in present:
            raise ProgressiveConfigError(f"{type(self).__name__}: no pre-trained encoder parameter to freeze (names "
                                         f"starting with encoder., vit., swinViT., ...); use nnUNetTrainer_Finetune")
        for handle in self._gradient_hooks:
            handle.remove()
        self._gradient_hooks = register_freezing_hooks(self.network, self._role_of, lambda: self._frozen_roles)
        self._finetune_optimizer = optimizer
        self.print_to_log_file(f"Fine-tuning optimiser: {type(optimizer).__name__}, groups "
                               + ", ".join(f"{g['nnprog_role']} ({len(g['params'])} tensors, weight decay "
                                           f"{g.get('weight_decay', 0):g})" for g in optimizer.param_groups))
        return optimizer, FinetuneLRScheduler(optimizer, self)

    def _parameters_of(self, roles: tuple[str, ...]) -> list[torch.nn.Parameter]:
        return [p for g in self.optimizer.param_groups if g["nnprog_role"] in roles for p in g["params"]]

    # --- nnU-Net hooks -------------------------------------------------------------------------------------------
    def initialize(self):
        super().initialize()
        self._fresh_checksums = self._checksums()

    def _checksums(self) -> list[float]:
        """Sums of three non-head parameters: they all change when pre-trained weights are loaded."""
        body = [p for n, p in self.network.named_parameters() if parameter_role(n) != HEADS]
        picked = [body[0], body[len(body) // 2], body[-1]] if body else []
        return [float(p.detach().double().sum()) for p in picked]

    def on_train_start(self):
        if not self.was_initialized:
            self.initialize()  # as nnU-Net's on_train_start would; here so a missing checkpoint stops before loaders
        if self.current_epoch == 0 and not self._pretrained_loaded_here and self._fresh_checksums is not None and \
                self._checksums() == self._fresh_checksums:
            raise ProgressiveConfigError(
                f"{type(self).__name__} fine-tunes pre-trained weights, but none were loaded: pass "
                f"-pretrained_weights FILE to nnUNetv2_train (a checkpoint of the same network, or the output of "
                f"`nnprog transfer adapt`), or train from scratch with nnUNetTrainer")
        if self.current_epoch == 0 and self._pretrained_file:
            self._load_kept_heads()
        super().on_train_start()
        counts = {role: sum(1 for r in self._role_of.values() if r == role) for role in ROLES}
        self.print_to_log_file(f"Fine-tuning ({self.finetune_recipe}) from {self._pretrained_file or 'the checkpoint'}"
                               f"; parameters per role: {counts}; phases: "
                               + "; ".join(f"{p.name} epochs {p.start}-{p.end - 1}" for p in
                                           self.finetune_schedule.phases))

    def _load_kept_heads(self) -> None:
        """The segmentation-head tensors of an adapted checkpoint whose record kept source rows (nnU-Net's loader
        skips heads); nothing for other checkpoints."""
        from nnunet_progressive.nnunet.offline.transfer.weights import read_transfer_record

        record = read_transfer_record(self._pretrained_file)
        kept = record.kept_head_labels() if record is not None else {}
        if not kept:
            return
        weights = torch.load(self._pretrained_file, map_location="cpu", weights_only=False)["network_weights"]
        network = self.network.module if hasattr(self.network, "module") else self.network
        network = getattr(network, "_orig_mod", network)  # torch.compile
        state = network.state_dict()
        heads = {name: value for name, value in weights.items() if parameter_role(name) == HEADS and name in state}
        for name, value in heads.items():
            if tuple(value.shape) != tuple(state[name].shape):
                raise ProgressiveConfigError(
                    f"{self._pretrained_file}: head {name} has shape {tuple(value.shape)}, the network's is "
                    f"{tuple(state[name].shape)}; adapt the checkpoint for this dataset and configuration again")
        network.load_state_dict(heads, strict=False)
        self.print_to_log_file(f"Segmentation heads: {len(heads)} tensors loaded from {self._pretrained_file} (rows of "
                               f"the source kept for {', '.join(kept)}; fresh for "
                               f"{', '.join(record.head_rows.get('fresh') or []) or 'none'})")

    def on_train_epoch_start(self):
        newly = self.finetune_schedule.newly_trained(self.current_epoch)
        for parameter in self._parameters_of(newly):
            self.optimizer.state.pop(parameter, None)
        super().on_train_epoch_start()  # steps the scheduler: rates and frozen roles of this epoch
        self.print_to_log_file(self.finetune_schedule.describe(self.current_epoch)
                               + (f" | optimiser state reset for: {', '.join(newly)}" if newly else ""))

    # --- records -----------------------------------------------------------------------------------------------
    def progressive_state(self) -> dict:
        state = super().progressive_state()
        state["finetune"] = FineTuningState(recipe=self.finetune_recipe, pretrained_weights=self._pretrained_file,
                                            parameter_statuses=self._parameter_statuses,
                                            schedule=self.finetune_schedule.to_dict()).to_json()
        return state

    def adopt_checkpoint_state(self, state: CheckpointState | None) -> None:
        """Roles first (of the checkpoint being loaded): nnU-Net rebuilds the optimiser from them."""
        super().adopt_checkpoint_state(state)
        if state is not None and state.finetune is not None:
            self._statuses, self._statuses_known = state.finetune.parameter_statuses, True
            self._sidecar_pretrained = state.finetune.pretrained_weights

    def restore_progressive_state(self, state: dict) -> None:
        super().restore_progressive_state(state)
        self.print_to_log_file(f"Continuing at epoch {self.current_epoch}: "
                               f"{self.finetune_schedule.describe(self.current_epoch)}")
