"""The nnU-Net hooks of Progressive Growing of Patch Size (PGPS) and its RPSS ablation.

Thin by design: the schedule is computed by :mod:`nnunet_progressive.pgps.schedule`; loaders and
transforms are nnU-Net's own (``get_dataloaders`` is called with the stage's patch and batch in the
configuration, then the configuration is restored). Validation loaders, final validation, inference
and the saved plans.json always see the planned patch and batch.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nnunet_progressive.core.io import atomic_write_json
from nnunet_progressive.core.knobs import ProgressiveSettings
from nnunet_progressive.core.records import CURRICULUM_JSON, CURRICULUM_PNG
from nnunet_progressive.nnunet.compile import configure_dynamo_for_shapes
from nnunet_progressive.nnunet.loaders import (
    RandomPatchSizeLoader,
    inner_data_loader,
    replace_data_loader,
    shutdown_augmenter,
)
from nnunet_progressive.nnunet.staged_loader import StagedTrainingLoaderMixin
from nnunet_progressive.pgps.report import plot_schedule, stage_summaries
from nnunet_progressive.pgps.schedule import (
    Schedule,
    build_schedule,
    foreground_oversampling,
    random_patch_pool,
)

NNUNET_DEFAULT_EPOCHS = 1000

PERFORMANCE_MAX_BATCH = 64  # hard batch cap on top of the planned footprint (NNPROG_MAX_BATCH overrides)


@dataclass(frozen=True)
class NetworkPatchRule:
    """What the trained network asks of a patch, for the schedule (the plan's U-Net: its pooling strides).

    ``pool_op_kernel_sizes=None`` with ``input_multiple``: a network without nnU-Net's pooling (a transformer).
    ``sample_cost``: memory of one sample per patch where it is not linear in voxels (Performance batch).
    """

    planned_patch: tuple[int, ...]
    pool_op_kernel_sizes: Sequence[Sequence[int]] | None
    input_multiple: tuple[int, ...] | None = None
    sample_cost: Callable[[tuple[int, ...]], float] | None = None

    @classmethod
    def of_plan(cls, configuration_manager) -> NetworkPatchRule:
        """The plan's own U-Net (nnU-Net's or ResEnc): its patch and pooling strides."""
        return cls(tuple(configuration_manager.patch_size), configuration_manager.pool_op_kernel_sizes)


def schedule_for_configuration(
    configuration_manager, mode: str, settings: ProgressiveSettings, num_epochs: int,
    rule: NetworkPatchRule | None = None,
) -> Schedule:
    """The PGPS schedule of an nnU-Net configuration (plans) under ``settings``.

    ``rule``: what the network asks of a patch (default: the plan's U-Net). Performance mode caps the batch at
    ``PERFORMANCE_MAX_BATCH`` unless NNPROG_MAX_BATCH says otherwise.
    """
    rule = rule or NetworkPatchRule.of_plan(configuration_manager)
    max_batch = settings.max_batch
    if mode == "performance" and max_batch is None:
        max_batch = max(PERFORMANCE_MAX_BATCH, configuration_manager.batch_size)
    return build_schedule(
        planned_patch=rule.planned_patch,
        pool_op_kernel_sizes=rule.pool_op_kernel_sizes,
        input_multiple=rule.input_multiple,
        sample_cost=rule.sample_cost,
        planned_batch=configuration_manager.batch_size,
        num_epochs=num_epochs,
        mode=mode,
        min_patch=settings.min_patch,
        growth_share=settings.growth_share,
        max_batch=max_batch,
        batch_budget_factor=settings.batch_budget,
    )


class ProgressivePatchMixin(StagedTrainingLoaderMixin):
    """Put before ``nnUNetTrainer`` (or any of its variants) in the bases to train with PGPS."""

    pgps_mode = "efficiency"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.schedule = self._build_schedule()

    # --- schedule ------------------------------------------------------------------------------------
    @classmethod
    def network_patch_rule(cls, configuration_manager, num_input_channels: int,
                           num_output_channels: int) -> NetworkPatchRule:
        """What this trainer's network asks of a patch; trainers of other architectures override it."""
        return NetworkPatchRule.of_plan(configuration_manager)

    def _own_patch_rule(self) -> NetworkPatchRule:
        from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

        channels = determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)
        return self.network_patch_rule(self.configuration_manager, channels,
                                       self.label_manager.num_segmentation_heads)

    def _build_schedule(self) -> Schedule:
        return schedule_for_configuration(
            self.configuration_manager, self.pgps_mode, self.progressive_settings, self.num_epochs,
            self._own_patch_rule(),
        )

    def _num_training_shapes(self) -> int:
        return len(self.schedule.stages)

    def _stage_key(self, epoch: int) -> tuple:
        return super()._stage_key(epoch) + (("pgps", self.schedule.stage_at_epoch(epoch).index),)

    def _stage_description(self, epoch: int) -> tuple[str, int]:
        """Log text for the epoch's patch stage and the voxels one training iteration processes."""
        stage = self.schedule.stage_at_epoch(epoch)
        text = (
            f"PGPS stage {stage.index + 1}/{len(self.schedule.stages)} | patch "
            f"{'x'.join(map(str, stage.patch_size))} | batch {stage.batch_size}"
        )
        return text, stage.voxels_per_iteration

    def _stage_log_parts(self, epoch: int) -> list[str]:
        return super()._stage_log_parts(epoch) + [self._stage_description(epoch)[0]]

    # --- nnU-Net hooks ---------------------------------------------------------------------------------
    def initialize(self):
        self._planned_oversample = self.oversample_foreground_percent
        self._planned_probabilistic = self.probabilistic_oversampling
        super().initialize()
        if self._do_i_compile():
            applied = configure_dynamo_for_shapes(self._num_training_shapes())
            self.print_to_log_file(f"torch.compile with one graph per patch shape: {applied}")

    def on_train_start(self):
        super().on_train_start()  # builds nnU-Net's loaders at the planned patch; validation keeps them
        if self.local_rank == 0:
            self.print_to_log_file(f"Progressive settings: {self.progressive_settings.to_dict()}")
            plot_schedule(self.schedule, os.path.join(self.output_folder, CURRICULUM_PNG), self.current_epoch)

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)  # records the seconds of this epoch's training iterations
        train_seconds = self._train_seconds[self.current_epoch]
        text, voxels_per_iteration = self._stage_description(self.current_epoch)
        throughput = voxels_per_iteration * self.num_iterations_per_epoch / max(train_seconds, 1e-9)
        self.print_to_log_file(f"{text} | {throughput:,.0f} voxels/s")

    def on_epoch_end(self):
        super().on_epoch_end()
        self._write_curriculum(final=False)

    def on_train_end(self):
        super().on_train_end()
        self._write_curriculum(final=True)

    # --- loaders ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _stage_configuration(self, patch_size, batch_size: int):
        """Temporarily give the configuration the stage's patch and (global) batch.

        The per-rank batch and oversampling come from nnU-Net's own ``_set_batch_size_and_oversample``;
        oversampling becomes per-sample where nnU-Net's positional rule would change the planned share.
        """
        configuration = self.configuration_manager.configuration
        saved_config = (configuration["patch_size"], configuration["batch_size"])
        saved_attrs = (self.batch_size, self.oversample_foreground_percent, self.probabilistic_oversampling)
        try:
            configuration["patch_size"] = [int(p) for p in patch_size]
            configuration["batch_size"] = int(batch_size)
            self.oversample_foreground_percent = self._planned_oversample
            self.probabilistic_oversampling = self._planned_probabilistic
            self._set_batch_size_and_oversample()
            if not self._planned_probabilistic:
                share, probabilistic = foreground_oversampling(
                    batch_size, self.schedule.planned_batch_size, self._planned_oversample
                )
                if probabilistic:
                    self.oversample_foreground_percent, self.probabilistic_oversampling = share, True
            yield
        finally:
            configuration["patch_size"], configuration["batch_size"] = saved_config
            self.batch_size, self.oversample_foreground_percent, self.probabilistic_oversampling = saved_attrs

    def _make_training_augmenter(self, epoch: int):
        stage = self.schedule.stage_at_epoch(epoch)
        with self._stage_configuration(stage.patch_size, stage.batch_size):
            return super()._make_training_augmenter(epoch)

    # --- records ---------------------------------------------------------------------------------------
    def restore_progressive_state(self, state: dict) -> None:
        super().restore_progressive_state(state)
        self.schedule = self._build_schedule()
        if self._do_i_compile():
            configure_dynamo_for_shapes(self._num_training_shapes())
        self.print_to_log_file(
            f"Continuing at epoch {self.current_epoch}: {self._stage_description(self.current_epoch)[0]}"
        )

    def curriculum_record(self) -> dict:
        """curriculum.json: the schedule, per-stage epochs, wall and train time, throughput, switch cost."""
        from nnunet_progressive import __version__

        starts = self.logger.get_value("epoch_start_timestamps", step=None)
        ends = self.logger.get_value("epoch_end_timestamps", step=None)
        return {
            "package_version": __version__,
            "trainer": self.__class__.__name__,
            "mode": self.pgps_mode,
            "settings": self.progressive_settings.to_dict(),
            "num_iterations_per_epoch": self.num_iterations_per_epoch,
            "epochs_done": min(len(starts), len(ends)),
            "schedule": self.schedule.to_dict(),
            "stages": stage_summaries(self.schedule, starts, ends, self._train_seconds,
                                      self.num_iterations_per_epoch),
            "wall_seconds": float(np.sum(np.subtract(ends, starts[: len(ends)]))) if ends else 0.0,
            "train_seconds": float(sum(self._train_seconds.values())),
            "switch_seconds": self._switch_seconds,
            "total_switch_seconds": float(sum(self._switch_seconds.values())),
        }

    def _write_curriculum(self, final: bool) -> None:
        if self.local_rank != 0:
            return
        atomic_write_json(os.path.join(self.output_folder, CURRICULUM_JSON), self.curriculum_record())
        stage_changes = self._stage_key(self.current_epoch) != self._stage_key(max(self.current_epoch - 1, 0))
        if final or stage_changes:
            plot_schedule(self.schedule, os.path.join(self.output_folder, CURRICULUM_PNG),
                          min(self.current_epoch, self.num_epochs - 1))


class RandomPatchSizeMixin(ProgressivePatchMixin):
    """RPSS ablation: every batch uses one of the PGPS stage patch sizes, drawn uniformly; batch constant.

    There is no curriculum; the schedule is still built (it validates the knobs and gives the pool).
    """

    pgps_mode = "efficiency"

    def _patch_pool(self) -> list[tuple[int, ...]]:
        rule = self._own_patch_rule()
        return random_patch_pool(rule.planned_patch, rule.pool_op_kernel_sizes, self.progressive_settings.min_patch,
                                 rule.input_multiple)

    def _stage_key(self, epoch: int) -> tuple:
        return super(ProgressivePatchMixin, self)._stage_key(epoch) + (("rpss",),)

    def _stage_description(self, epoch: int) -> tuple[str, int]:
        pool = self._patch_pool()
        mean_voxels = float(np.mean([np.prod(p) for p in pool]))
        batch = self.schedule.planned_batch_size
        return f"RPSS: {len(pool)} patch sizes drawn per batch | batch {batch}", int(mean_voxels * batch)

    def curriculum_record(self) -> dict:
        record = super().curriculum_record()
        record["mode"] = "rpss"
        record["schedule"] = {"patch_pool": [list(p) for p in self._patch_pool()],
                              "batch_size": self.schedule.planned_batch_size}
        record["stages"] = []
        return record

    def _make_training_augmenter(self, epoch: int):
        pool = self._patch_pool()
        augmenters = []
        for patch in pool:
            with self._stage_configuration(patch, self.schedule.planned_batch_size):
                augmenters.append(super(ProgressivePatchMixin, self)._make_training_augmenter(epoch))
        loaders = [inner_data_loader(a) for a in augmenters]
        for augmenter in augmenters[:-1]:
            shutdown_augmenter(augmenter)
        replace_data_loader(augmenters[-1], RandomPatchSizeLoader(loaders))
        return augmenters[-1]
