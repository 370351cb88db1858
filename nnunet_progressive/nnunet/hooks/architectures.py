"""Trainer hooks for networks other than the plan's U-Net: UNETR, SwinUNETR and nnU-Net's Primus.

Small mixins, composed by the variant factory (``nnunet/variants.py``) in the order of ``MIXIN_ORDER``: the network
mixins first, then fine-tuning, PGPS or run length, then :class:`RecipeMixin` and :class:`RecipeStepMixin` (they
replace nnU-Net's optimiser and training step, so they sit innermost, directly above nnU-Net's trainer, where every
mixin that extends those hooks runs around them), then nnU-Net's trainer:

- :class:`NetworkInputMixin`: the planned patch adjusted to the network's input rule, once, in the plans nnU-Net
  is given (so the plans.json it saves, final validation and ``nnUNetv2_predict`` use the adjusted patch); the
  rule and memory estimate the PGPS schedule needs; the token grid in use logged per stage.
- :class:`RecipeMixin`: optimiser, learning-rate schedule, precision and deep supervision as published
  (``architectures.recipes``); nnU-Net's loss and data pipeline unchanged. Fine-tuning (``FineTuningMixin``, before
  it) splits the recipe's optimiser into its parameter groups and replaces the schedule by its phases.
  :class:`RecipeStepMixin`: the training step with the recipe's precision and clipping, innermost (it replaces
  nnU-Net's step, so the PGPS step wraps it).
- :class:`TransformerNetworkMixin` (MONAI UNETR / SwinUNETR) and :class:`PrimusGridMixin` (nnU-Net's own Primus,
  with embeddings that follow the stage's token grid) build the network, in training and in the predictor.
"""
from __future__ import annotations

import contextlib
import os
import re
from typing import ClassVar

import torch
from torch import autocast
from torch.optim.lr_scheduler import _LRScheduler

from nnunet_progressive.architectures.input_rules import (
    PRIMUS,
    InputRule,
    adjust_patch,
    check_dimensions,
    token_grid,
)
from nnunet_progressive.architectures.recipes import PRIMUS_RECIPE, Recipe
from nnunet_progressive.architectures.specs import PRIMUS_SIZES, PrimusSpec, SwinUNETRSpec, UNETRSpec
from nnunet_progressive.architectures.transformer_memory import sample_cost
from nnunet_progressive.nnunet.hooks.pgps import NetworkPatchRule
from nnunet_progressive.nnunet.resolve import configuration_value


def adjust_plans_patch(plans: dict, configuration: str, rule: InputRule) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Set the configuration's patch to ``rule``'s (in ``plans``, in place); returns (planned, adjusted).

    Idempotent, so `--c`, `--val` and a second trainer on the same plans get the same patch.
    """
    planned = tuple(int(p) for p in configuration_value(plans, configuration, "patch_size"))
    check_dimensions(rule, len(planned), configuration)
    adjusted = adjust_patch(planned, rule)
    if adjusted != planned:
        plans["configurations"][configuration]["patch_size"] = list(adjusted)
    return planned, adjusted


def unwrap_network(network: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    if isinstance(network, torch.nn.parallel.DistributedDataParallel):
        network = network.module
    return getattr(network, "_orig_mod", network)


def token_grid_in_use(network: torch.nn.Module) -> tuple[int, ...] | None:
    """The token grid the network's position embeddings were made for in its last forward pass (None: unknown)."""
    module = unwrap_network(network)
    embedding = getattr(getattr(module, "vit", None), "patch_embedding", None)
    if embedding is not None and hasattr(embedding, "grid_in_use"):
        return embedding.grid_in_use
    eva = getattr(module, "eva", None)
    if eva is not None:
        return getattr(eva, "token_grid", None)
    return None


class NetworkInputMixin:
    """The planned patch follows the network's input rule; PGPS stages follow it too.

    Subclasses set ``input_rule`` and, for the Performance batch, ``memory_spec`` (None: memory linear in voxels).
    """

    input_rule: ClassVar[InputRule]
    memory_spec: ClassVar[UNETRSpec | SwinUNETRSpec | PrimusSpec | None] = None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        self._patch_adjustment = adjust_plans_patch(plans, configuration, self.input_rule)
        self._check_network_available()
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._logged_grids: set[tuple[int, ...]] = set()
        planned, adjusted = self._patch_adjustment
        rule = self.input_rule
        if adjusted != planned:
            self.print_to_log_file(
                f"{rule.architecture}: the planned patch {list(planned)} is adjusted to {list(adjusted)} (every axis a "
                f"multiple of {rule.multiple}: {rule.source}); batch size {self.configuration_manager.batch_size} as "
                f"planned. plans.json, final validation and nnUNetv2_predict use {list(adjusted)}.")
        else:
            self.print_to_log_file(f"{rule.architecture}: the planned patch {list(planned)} fits its input rule "
                                   f"(multiples of {rule.multiple})")

    def _check_network_available(self) -> None:
        """Fail before any work if the network's package is missing (MONAI networks override)."""

    @classmethod
    def network_patch_rule(cls, configuration_manager, num_input_channels: int, num_output_channels: int,
                           configuration: str = "this configuration") -> NetworkPatchRule:
        """The network's own rule for PGPS: its input multiple (no nnU-Net pooling) and its memory per sample; an
        architecture without an implementation for the patch's dimensions is refused (Primus on 2D)."""
        check_dimensions(cls.input_rule, len(configuration_manager.patch_size), configuration)
        planned = adjust_patch(configuration_manager.patch_size, cls.input_rule)
        cost = None
        if cls.memory_spec is not None:
            cost = sample_cost(cls.memory_spec, num_input_channels, num_output_channels, mixed_precision=True)
        return NetworkPatchRule(planned, None, cls.input_rule.per_axis(len(planned)), cost)

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)
        self._log_token_grid()

    def _log_token_grid(self) -> None:
        """Once per grid: the token grid the embeddings were made for, against the stored (planned) one."""
        if not self.input_rule.fixed_grid:
            return
        grid = token_grid_in_use(self.network)
        if grid is None or grid in self._logged_grids:
            return
        self._logged_grids.add(grid)
        stored = token_grid(self.configuration_manager.patch_size, self.input_rule)
        how = "the stored table" if tuple(grid) == stored else "the stored table resized"
        self.print_to_log_file(f"Position embeddings in use: token grid {'x'.join(map(str, grid))} ({how}; stored "
                               f"for the planned grid {'x'.join(map(str, stored))})")


class RecipeLRScheduler(_LRScheduler):
    """The recipe's learning rate as a pure function of the epoch (nnU-Net calls ``step(current_epoch)``).

    Reads the run length from the trainer at each step, so a resumed run that restores its epochs stays exact.
    """

    def __init__(self, optimizer, recipe: Recipe, num_epochs):
        self.recipe = recipe
        self.num_epochs = num_epochs  # a callable returning the trainer's current num_epochs
        self.ctr = 0
        super().__init__(optimizer, -1)

    def step(self, current_step=None):
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        lr = self.recipe.learning_rate_at(int(current_step), int(self.num_epochs()))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        return self._last_lr


class RecipeMixin:
    """Optimiser, schedule, precision and deep supervision of ``recipe`` (its clipping: :class:`RecipeStepMixin`);
    the rest is nnU-Net's. It replaces nnU-Net's ``configure_optimizers`` (no ``super()``), so it stands after every
    mixin that extends that hook (fine-tuning's parameter groups)."""

    recipe: ClassVar[Recipe]
    replaces_hooks: ClassVar[frozenset[str]] = frozenset({"configure_optimizers", "set_deep_supervision_enabled"})

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        recipe = self.recipe
        self.initial_lr = recipe.learning_rate
        self.weight_decay = recipe.weight_decay
        self.enable_deep_supervision = recipe.deep_supervision
        if not recipe.mixed_precision:
            self.grad_scaler = None

    def configure_optimizers(self):
        recipe = self.recipe
        parameters = self.network.parameters()
        if recipe.optimizer == "adamw":
            optimizer = torch.optim.AdamW(parameters, lr=recipe.learning_rate, weight_decay=recipe.weight_decay,
                                          betas=recipe.betas, eps=recipe.eps)
        else:
            optimizer = torch.optim.SGD(parameters, recipe.learning_rate, weight_decay=recipe.weight_decay,
                                        momentum=0.99, nesterov=True)
        scheduler = RecipeLRScheduler(optimizer, recipe, lambda: self.num_epochs)
        self.print_to_log_file(
            f"{recipe.architecture} recipe: {recipe.optimizer} lr {recipe.learning_rate:g}, weight decay "
            f"{recipe.weight_decay:g}, {recipe.lr_schedule} ({recipe.warmup_epochs(self.num_epochs)} warmup epochs), "
            f"gradient clipping {recipe.grad_clip or 'none'}, "
            f"{'fp16 autocast on CUDA' if recipe.mixed_precision else 'fp32'}, deep supervision "
            f"{'on' if recipe.deep_supervision else 'off'}")
        return optimizer, scheduler

    def set_deep_supervision_enabled(self, enabled: bool):
        """The transformers have a single output; nothing to switch."""
        if self.recipe.deep_supervision:
            super().set_deep_supervision_enabled(enabled)


class RecipeStepMixin:
    """nnU-Net's training step with the recipe's precision and gradient clipping.

    It replaces nnU-Net's ``train_step`` instead of extending it, so it sits last, directly above
    ``nnUNetTrainer``: every mixin that wraps the step (PGPS's timing and batch counts, PDL's cases seen) runs
    around it.
    """

    recipe: ClassVar[Recipe]
    replaces_hooks: ClassVar[frozenset[str]] = frozenset({"train_step"})

    def train_step(self, batch: dict) -> dict:
        """nnU-Net's training step with the recipe's precision and gradient clipping."""
        recipe = self.recipe
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        if isinstance(target, list):
            target = [t.to(self.device, non_blocking=True) for t in target]
        else:
            target = target.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        # as nnU-Net: autocast only on CUDA (slow on CPU, refused on MPS even when disabled)
        use_autocast = recipe.mixed_precision and self.device.type == "cuda"
        with autocast(self.device.type) if use_autocast else contextlib.nullcontext():
            loss = self.loss(self.network(data), target)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            if recipe.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), recipe.grad_clip)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            if recipe.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), recipe.grad_clip)
            self.optimizer.step()
        return {"loss": loss.detach().cpu().numpy()}


class TransformerNetworkMixin(NetworkInputMixin):
    """A MONAI transformer (``network_spec``); its trainers add :class:`RecipeMixin` for the published recipe."""

    network_spec: ClassVar[UNETRSpec | SwinUNETRSpec | PrimusSpec]
    replaces_hooks: ClassVar[frozenset[str]] = frozenset({"build_network_architecture"})

    def _check_network_available(self) -> None:
        if isinstance(self.network_spec, UNETRSpec | SwinUNETRSpec):
            from nnunet_progressive.nnunet.networks.optional import require_monai

            require_monai(self.__class__.__name__)

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        """The network for the configuration's (adjusted) patch; called by the trainer and by the predictor."""
        from nnunet_progressive.nnunet.networks.builders import build_network

        return build_network(cls.network_spec, num_input_channels, num_output_channels,
                             configuration_manager.patch_size)


class PrimusInputMixin(NetworkInputMixin):
    """nnU-Net's own Primus trainers: the patch adjusted to multiples of 8, the warmup scaled to the run, `--c`.

    nnU-Net 2.8.1's warmup trainer (Primus' base) loads checkpoints with torch's weights-only default, which fails
    on the numpy values nnU-Net's own checkpoints hold; loading is allowed here for the run's own checkpoints.
    Performance batch: Primus' saved values are linear in voxels, plus a per-sample excess measured on a GPU
    (``transformer_memory.unmodelled_sample_bytes``); the generated trainers set ``memory_spec`` to their size's spec
    (``primus_memory_spec``).
    """

    input_rule = PRIMUS

    def derive_from_settings(self) -> None:
        """nnU-Net's Primus warms up for 50 of its 1000 epochs; shorter runs (NNPROG_EPOCHS, `_Xepochs`) keep 5%."""
        super().derive_from_settings()
        self.warmup_duration_whole_net = max(1, PRIMUS_RECIPE.warmup_epochs(self.num_epochs))  # nnU-Net divides by it

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        with trusted_checkpoint_loading():
            super().load_checkpoint(filename_or_checkpoint)


class PrimusGridMixin(PrimusInputMixin):
    """Primus with embeddings that follow the token grid of each PGPS stage (the network nnU-Net's trainer builds,
    any size, made grid-following in place; parameters and state dict unchanged)."""

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        from nnunet_progressive.nnunet.networks.primus import follow_token_grid

        network = super().build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                     num_output_channels, enable_deep_supervision)
        return follow_token_grid(network, configuration_manager.patch_size, cls.input_rule.token_size)


def primus_memory_spec(trainer_name: str) -> PrimusSpec:
    """The Primus size of one of nnU-Net's Primus trainers, by its name (``nnUNet_Primus_B_Trainer``,
    ``nnUNet_PrimusV2B_Trainer``, ... -> Primus-B; V2/V3 blocks differ slightly, the memory follows the size)."""
    found = re.fullmatch(r"nnUNet_Primus(?:V\d)?_?([SBML])_Trainer", trainer_name)
    if found is None:
        raise ValueError(f"{trainer_name} is not one of nnU-Net's Primus trainers "
                         f"(nnUNet_Primus[V2|V3]_[SBML]_Trainer)")
    return PRIMUS_SIZES[found.group(1)]


def primus_builder(spec: PrimusSpec):
    """A ``build_network_architecture`` (nnU-Net 2.8 signature) building ``spec``'s Primus at the planned patch,
    as nnU-Net's own Primus trainers do (fixed shape; ``PrimusGridMixin`` makes it follow the grid)."""

    def build_network_architecture(plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        from nnunet_progressive.nnunet.networks.builders import build_network

        return build_network(spec, num_input_channels, num_output_channels, configuration_manager.patch_size,
                             follow_grid=False)

    return staticmethod(build_network_architecture)


@contextlib.contextmanager
def trusted_checkpoint_loading():
    """Let ``torch.load`` calls that do not choose ``weights_only`` read nnU-Net's own checkpoints (numpy values).

    Only around loading this run's own checkpoint files (nnU-Net's base trainer loads them with
    ``weights_only=False`` itself; its 2.8.1 warmup trainer forgot to).
    """
    variable = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    saved = os.environ.get(variable)
    os.environ[variable] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = saved
