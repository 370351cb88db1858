"""The nnU-Net hooks of Progressive Growing of Patch Size (PGPS) and its RPSS ablation.

Thin by design: the schedule and the batch layout are computed by :mod:`nnunet_progressive.pgps.schedule`;
transforms, datasets and augmenters are nnU-Net's own, built for the stage's patch (put into the configuration,
then restored) by :func:`nnunet_progressive.nnunet.hooks.loaders.training_loader`, with nnU-Net's data loader drawing
the planned number of cases per batch and several crops from each (:class:`PatchCropLoader`). Validation
loaders, final validation, inference and the saved plans.json always see the planned patch and batch.
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import numpy as np
import torch

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import PATCH_CURRICULUM, PATCH_SIZES, PERFORMANCE_BATCH, ProgressiveSettings
from nnunet_progressive.core.records import (
    CURRICULUM_JSON,
    CURRICULUM_PNG,
    AugmentationCost,
    Curriculum,
    write_record,
)
from nnunet_progressive.nnunet.hooks.compile import configure_dynamo_for_shapes
from nnunet_progressive.nnunet.hooks.loaders import (
    FORCED_CROPS_KEY,
    LOADER_SECONDS_KEY,
    PATCH_SIZE_KEY,
    RandomPatchSizeLoader,
    loader_workers,
    training_loader,
)
from nnunet_progressive.nnunet.hooks.staged_loader import StagedTrainingLoaderMixin
from nnunet_progressive.nnunet.plan_schedule import schedule_of_plan
from nnunet_progressive.nnunet.resolve import PlannedConfiguration
from nnunet_progressive.pgps.report import plot_schedule, stage_summaries
from nnunet_progressive.pgps.run_length import epoch_weights, rescaled_schedule
from nnunet_progressive.pgps.sampling import RULE_SAMPLINGS, rule_layout, stage_checkpoint_name
from nnunet_progressive.pgps.schedule import (
    BatchLayout,
    Schedule,
    batch_layout,
    ddp_stage_batch,
    random_patch_pool,
    settings_of_version,
)
from nnunet_progressive.pgps.throughput import Throughput, combined

NNUNET_DEFAULT_EPOCHS = 1000


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
    rule: NetworkPatchRule | None = None, planned_memory=None,
) -> Schedule:
    """The PGPS schedule of an nnU-Net configuration (plans) under ``settings``.

    ``rule``: what the network asks of a patch (default: the plan's U-Net). Performance mode's batch is limited by
    the voxel budget (or, for networks with a ``sample_cost``, the estimated memory) alone unless NNPROG_MAX_BATCH
    sets a cap. ``planned_memory``: the planned stage's memory estimate, for NNPROG_MEMORY_TARGET (Performance).
    """
    rule = rule or NetworkPatchRule.of_plan(configuration_manager)
    if mode == "performance":
        from nnunet_progressive.nnunet.hooks.memory_target import settings_for_schedule

        settings, _ = settings_for_schedule(settings, planned_memory)
    return schedule_of_plan(rule.planned_patch, rule.pool_op_kernel_sizes, configuration_manager.batch_size, mode,
                            settings, num_epochs, rule.input_multiple, rule.sample_cost)


def schedule_of_new_run(trainer_class: type, planned: PlannedConfiguration,
                        environ: Mapping[str, str] | None = None) -> Schedule | None:
    """The schedule a new run of ``trainer_class`` would train on the planned configuration with the
    ``NNPROG_*`` knobs of ``environ`` (default: the process environment); None for a trainer without patch stages.

    Raises the trainer's own :class:`ProgressiveConfigError` where it would stop at start (knobs, too few epochs).
    """
    import json

    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    from nnunet_progressive.nnunet.hooks.run_state import settings_for_new_run

    if not issubclass(trainer_class, PatchSizeMixin):
        return None
    settings = settings_for_new_run(trainer_class, environ)  # as the trainer reads its environment: strictly
    dataset_json = json.loads((planned.preprocessed_dataset_folder / "dataset.json").read_text())
    inputs = determine_num_input_channels(planned.plans_manager, planned.configuration_manager, dataset_json)
    outputs = planned.plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    rule = trainer_class.network_patch_rule(planned.configuration_manager, inputs, outputs, planned.configuration)
    memory = None
    if trainer_class.pgps_mode == "performance" and settings.memory_target is not None:
        from nnunet_progressive.nnunet.hooks.memory_target import planned_stage_memory

        memory = planned_stage_memory(trainer_class, planned.plans_manager, planned.configuration_manager, inputs,
                                      outputs, rule, settings, f"{trainer_class.__name__} on {planned.configuration}")
    return schedule_for_configuration(planned.configuration_manager, trainer_class.pgps_mode, settings,
                                      settings.epochs or NNUNET_DEFAULT_EPOCHS, rule, memory)


class PatchSizeMixin(StagedTrainingLoaderMixin):
    """What PGPS and its RPSS ablation share: the stage schedule of the plan, the stage configuration of the
    loaders, the per-epoch throughput log and curriculum.json. Use :class:`ProgressivePatchMixin` or
    :class:`RandomPatchSizeMixin`; each says how an epoch picks its patch sizes (``_stage_key``,
    ``_stage_description``, ``_make_training_augmenter``)."""

    pgps_mode = "efficiency"

    def settings_of_older_version(self, settings: ProgressiveSettings, stored: Mapping[str, Any],
                                  package_version: str | None) -> ProgressiveSettings:
        """What a run started before the published batching trained with (``pgps.schedule.settings_of_version``)."""
        settings = super().settings_of_older_version(settings, stored, package_version)
        settings, notes = settings_of_version(settings, stored, package_version, self.pgps_mode == "performance",
                                              int(self.configuration_manager.batch_size))
        for note in notes:
            self.print_to_log_file(note)
        return settings

    @classmethod
    def knob_features(cls) -> frozenset[str]:
        return super().knob_features() | {PATCH_SIZES}

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.schedule: Schedule | None = None  # built from the run's settings in derive_from_settings()
        self._batch_layout: BatchLayout | None = None  # set while a stage's loader is built
        self._active_layout: BatchLayout | None = None  # the layout of the training loader in use
        self._planned_augmentation: tuple | None = None  # (rotation, dummy 2D) of the planned patch
        self._throughput: dict[int, Throughput] = {}  # epoch -> loader/network counters
        self._epoch_throughput = Throughput()
        self._last_step_end = 0.0

    # --- schedule ------------------------------------------------------------------------------------
    def derive_from_settings(self) -> None:
        super().derive_from_settings()  # run length first: the schedule splits num_epochs
        self.schedule = self._build_schedule()

    @classmethod
    def network_patch_rule(cls, configuration_manager, num_input_channels: int, num_output_channels: int,
                           configuration: str = "this configuration") -> NetworkPatchRule:
        """What this trainer's network asks of a patch (``configuration``: its name, for messages); trainers of
        other architectures override it."""
        return NetworkPatchRule.of_plan(configuration_manager)

    def _own_patch_rule(self) -> NetworkPatchRule:
        from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

        channels = determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)
        return self.network_patch_rule(self.configuration_manager, channels,
                                       self.label_manager.num_segmentation_heads, self.configuration_name)

    def _build_schedule(self) -> Schedule:
        rule = self._own_patch_rule()
        return schedule_for_configuration(
            self.configuration_manager, self.pgps_mode, self.progressive_settings, self.num_epochs,
            rule, self._planned_stage_memory(rule),
        )

    def _planned_stage_memory(self, rule: NetworkPatchRule):
        """With NNPROG_MEMORY_TARGET (Performance): the planned stage's estimate, kept for the peak check."""
        self._memory_check = None
        if self.pgps_mode != "performance" or self.progressive_settings.memory_target is None:
            return None
        from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

        from nnunet_progressive.nnunet.hooks.memory_target import (
            StagePeakCheck,
            planned_stage_memory,
            settings_for_schedule,
        )

        inputs = determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)
        memory = planned_stage_memory(type(self), self.plans_manager, self.configuration_manager, inputs,
                                      self.label_manager.num_segmentation_heads, rule, self.progressive_settings,
                                      f"{type(self).__name__} on {self.configuration_name}")
        _, factor = settings_for_schedule(self.progressive_settings, memory)  # raises here, at start, if it fails
        self._memory_check = StagePeakCheck.of(self.progressive_settings.memory_target, memory, factor)
        self._memory_rule = rule
        return memory

    def _num_training_shapes(self) -> int:
        return len(self.schedule.stages)

    def _stage_description(self, epoch: int) -> tuple[str, int]:
        """Log text for the epoch's patch stage and the voxels one training iteration processes."""
        raise NotImplementedError

    def _stage_log_parts(self, epoch: int) -> list[str]:
        return super()._stage_log_parts(epoch) + [self._stage_description(epoch)[0]]

    def _layout_text(self) -> str:
        layout = self._active_layout
        if layout is None:
            return ""
        crops = (f"{layout.crops[0]}" if len(set(layout.crops)) == 1 else
                 f"{min(layout.crops)}-{max(layout.crops)}")
        drawn = (f"{layout.batch_size} cases x 1 crop" if layout.distinct_cases else
                 f"{layout.volumes} case{'s' if layout.volumes > 1 else ''} x {crops} "
                 f"crop{'s' if max(layout.crops) > 1 else ''}")
        return f"{drawn}, {100 * layout.foreground_share:.0f}% foreground-forced"

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
        if getattr(self, "_memory_check", None) is not None:
            for line in self._memory_check.start_lines(self.device):
                self.print_to_log_file(line)
        if self.local_rank == 0:
            plot_schedule(self.schedule, os.path.join(self.output_folder, CURRICULUM_PNG), self.current_epoch)

    def on_train_epoch_start(self):
        super().on_train_epoch_start()  # the stage's loader is in place now
        if getattr(self, "_memory_check", None) is not None:
            self._memory_check.epoch_start(self.schedule.stage_at_epoch(self.current_epoch).index, self.device)
        self._epoch_throughput = Throughput(workers=loader_workers(self.dataloader_train),
                                            augment_on=self.progressive_settings.augment_on)
        self._last_step_end = perf_counter()

    def train_step(self, batch: dict) -> dict:
        """nnU-Net's step, timed: the wait for this batch, the step itself, the loader's build time and the
        augmentation in the training process (NNPROG_AUGMENT_ON=device; kept out of the step); also counts the
        cases and foreground-forced crops the loader put into the batch."""
        start = perf_counter()
        loader_seconds = batch.pop(LOADER_SECONDS_KEY, None)
        forced = batch.pop(FORCED_CROPS_KEY, None)
        samples = int(batch["data"].shape[0])
        patch = batch.get(PATCH_SIZE_KEY) or batch["data"].shape[2:]  # the crops are larger until augmented
        voxels = samples * math.prod(int(n) for n in patch)
        cases = len({str(key) for key in batch.get("keys", ())})
        result = super().train_step(batch)
        end = perf_counter()
        augment_seconds = self.last_augment_seconds
        self._epoch_throughput = self._epoch_throughput.plus_iteration(
            samples, voxels, start - self._last_step_end, end - start - (augment_seconds or 0.0),
            None if loader_seconds is None else float(loader_seconds), cases,
            None if forced is None else int(sum(bool(f) for f in forced)), augment_seconds)
        self._last_step_end = end
        if getattr(self, "_memory_check", None) is not None:
            self._log_memory_peak()
        return result

    def _log_memory_peak(self) -> None:
        from nnunet_progressive.nnunet.hooks.memory_target import stage_estimate_bytes

        stage = self.schedule.stage_at_epoch(self.current_epoch)
        estimate = stage_estimate_bytes(self._memory_check.planned, self._memory_rule, self.schedule.planned_batch_size,
                                        stage.patch_size, stage.batch_size)
        for line in self._memory_check.after_step(self.device, len(self.schedule.stages), estimate,
                                                  self.num_iterations_per_epoch):
            self.print_to_log_file(line)

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)  # records the seconds of this epoch's training iterations
        self._throughput[self.current_epoch] = self._epoch_throughput
        train_seconds = self._train_seconds[self.current_epoch]
        text, voxels_per_iteration = self._stage_description(self.current_epoch)
        throughput = voxels_per_iteration * self.num_iterations_per_epoch / max(train_seconds, 1e-9)
        processes = f"{len(multiprocessing.active_children())} loader processes"
        parts = [text, f"{throughput:,.0f} voxels/s", self._layout_text(), self._epoch_throughput.log_text(), processes]
        self.print_to_log_file(" | ".join(part for part in parts if part))

    def on_epoch_end(self):
        super().on_epoch_end()
        self._write_curriculum(final=False)

    def on_train_end(self):
        super().on_train_end()
        self._write_curriculum(final=True)

    # --- loaders ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _stage_configuration(self, patch_size, batch_size: int):
        """Temporarily give the configuration the stage's patch and (global) batch, and the trainer the batch
        layout of this rank (``pgps.schedule.batch_layout``: the planned cases, several crops from each, the
        planned foreground share, split over DDP ranks as nnU-Net splits the planned batch)."""
        configuration = self.configuration_manager.configuration
        saved_config = (configuration["patch_size"], configuration["batch_size"])
        saved_attrs = (self.batch_size, self._batch_layout)
        world_size, rank = self._ddp_world()
        batch_size = ddp_stage_batch(int(batch_size), self.schedule.planned_batch_size, world_size)
        try:
            configuration["patch_size"] = [int(p) for p in patch_size]
            configuration["batch_size"] = batch_size
            self._batch_layout = self._layout_for(batch_size, world_size, rank)
            self.batch_size = self._batch_layout.batch_size
            yield
        finally:
            configuration["patch_size"], configuration["batch_size"] = saved_config
            self.batch_size, self._batch_layout = saved_attrs

    def _ddp_world(self) -> tuple[int, int]:
        """(world size, rank); (1, 0) without DDP."""
        if not self.is_ddp:
            return 1, 0
        import torch.distributed as dist

        return dist.get_world_size(), dist.get_rank()

    def _layout_for(self, batch_size: int, world_size: int, rank: int) -> BatchLayout:
        sampling = self.progressive_settings.batch_sampling if self.pgps_mode == "performance" else "volumes"
        if sampling in RULE_SAMPLINGS:  # the published _SQRT and _SingleVolume batching
            return rule_layout(batch_size, self.schedule.planned_batch_size, self._planned_oversample,
                               self._planned_probabilistic, sampling, world_size, rank)
        return batch_layout(batch_size, self.schedule.planned_batch_size, self._planned_oversample,
                            self._planned_probabilistic, sampling, world_size, rank)

    def _epoch_configuration(self, epoch: int):
        """The configuration context in which ``epoch``'s training loader is built."""
        stage = self.schedule.stage_at_epoch(epoch)
        return self._stage_configuration(stage.patch_size, stage.batch_size)

    def _make_training_augmenter(self, epoch: int):
        with self._epoch_configuration(epoch):
            return super()._make_training_augmenter(epoch)

    def _make_training_loader(self):
        if self._batch_layout is None:
            return super()._make_training_loader()
        self._active_layout = self._batch_layout
        return training_loader(self, self._batch_layout)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """nnU-Net's augmentation set-up for the current patch.

        While a stage's loader is built, the dummy-2D decision and rotation range stay the PLANNED patch's (the
        crop is enlarged for them by nnU-Net's formula), unless NNPROG_AUGMENTATION=per_patch asks for nnU-Net's
        rule applied to the stage's patch.
        """
        set_up = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        rotation, dummy_2d, initial_patch, mirror_axes = set_up
        if self._batch_layout is None or self.progressive_settings.augmentation == "per_patch":
            return rotation, dummy_2d, initial_patch, mirror_axes
        planned_rotation, planned_dummy_2d = self._planned_augmentation_regime()
        patch = [int(p) for p in self.configuration_manager.patch_size]
        if (_rotation_key(rotation), bool(dummy_2d)) == (_rotation_key(planned_rotation), bool(planned_dummy_2d)):
            return rotation, dummy_2d, initial_patch, mirror_axes
        if [int(p) for p in initial_patch] != patch:  # the trainer enlarges the crop for spatial augmentation
            initial_patch = _initial_patch_size(patch, planned_rotation, planned_dummy_2d)
        self.print_to_log_file(
            f"Augmentation at patch {'x'.join(map(str, patch))}: the planned regime (dummy 2D "
            f"{bool(planned_dummy_2d)}, rotation {_rotation_text(planned_rotation)}) instead of nnU-Net's rule for "
            f"this patch (dummy 2D {bool(dummy_2d)}, rotation {_rotation_text(rotation)}); initial patch "
            f"{'x'.join(str(int(p)) for p in initial_patch)}")
        return planned_rotation, planned_dummy_2d, initial_patch, mirror_axes

    def _planned_augmentation_regime(self) -> tuple:
        """(rotation range, dummy 2D) that nnU-Net's rule gives the PLANNED patch (computed once)."""
        if self._planned_augmentation is None:
            configuration = self.configuration_manager.configuration
            stage_patch = configuration["patch_size"]
            try:
                configuration["patch_size"] = list(self.schedule.planned_patch_size)
                rotation, dummy_2d, _, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
            finally:
                configuration["patch_size"] = stage_patch
            self._planned_augmentation = (rotation, bool(dummy_2d))
        return self._planned_augmentation

    # --- records ---------------------------------------------------------------------------------------
    def progressive_state(self) -> dict:
        state = super().progressive_state()
        state["throughput"] = {str(k): v.to_dict() for k, v in self._throughput.items()}
        return state

    def restore_progressive_state(self, state: dict) -> None:
        super().restore_progressive_state(state)
        self._throughput = {int(k): Throughput.from_dict(v) for k, v in state.get("throughput", {}).items()
                            if int(k) < self.current_epoch}
        self.print_to_log_file(
            f"Continuing at epoch {self.current_epoch}: {self._stage_description(self.current_epoch)[0]}"
        )

    def curriculum_record(self) -> Curriculum:
        """curriculum.json: the schedule, per-stage epochs, wall and train time, throughput, switch cost."""
        from nnunet_progressive import __version__

        starts, _ = self.epoch_timestamps()
        # epoch ends moved back by the time spent outside training (Dice checks): wall times are training times
        ends = [start + seconds for start, seconds in zip(starts, self.epoch_training_seconds())]
        return Curriculum(
            package_version=__version__,
            trainer=self.__class__.__name__,
            mode=self.pgps_mode,
            settings=self.progressive_settings.to_dict(),
            num_iterations_per_epoch=self.num_iterations_per_epoch,
            epochs_done=len(ends),
            schedule=self.schedule.to_dict(),
            stages=stage_summaries(self.schedule, starts, ends, self._train_seconds,
                                   self.num_iterations_per_epoch, self._throughput),
            wall_seconds=self.training_wall_seconds(),
            train_seconds=float(sum(self._train_seconds.values())),
            switch_seconds=self._switch_seconds,
            total_switch_seconds=float(sum(self._switch_seconds.values())),
            augmentation=self.augmentation_record(),
        )

    def augmentation_record(self, loader_seconds: float = 0.0, loader_batches: int = 0) -> AugmentationCost:
        """Where the augmentation ran and its cost per batch; with ``workers`` the PGPS loaders' time per batch."""
        total = combined(self._throughput.values())
        return super().augmentation_record(loader_seconds + total.loader_seconds,
                                           loader_batches + total.loader_batches)

    def _write_curriculum(self, final: bool) -> None:
        if self.local_rank != 0:
            return
        write_record(os.path.join(self.output_folder, CURRICULUM_JSON), self.curriculum_record())
        stage_changes = self._stage_key(self.current_epoch) != self._stage_key(max(self.current_epoch - 1, 0))
        if final or stage_changes:
            plot_schedule(self.schedule, os.path.join(self.output_folder, CURRICULUM_PNG),
                          min(self.current_epoch, self.num_epochs - 1))


class ProgressivePatchMixin(PatchSizeMixin):
    """Put before ``nnUNetTrainer`` (or any of its variants) in the bases to train with PGPS."""

    pgps_mode = "efficiency"

    @classmethod
    def knob_features(cls) -> frozenset[str]:
        features = super().knob_features() | {PATCH_CURRICULUM}
        return features | {PERFORMANCE_BATCH} if cls.pgps_mode == "performance" else features

    def _stage_key(self, epoch: int) -> tuple:
        return super()._stage_key(epoch) + (("pgps", self.schedule.stage_at_epoch(epoch).index),)

    # --- the published variants: stage checkpoints (2024 code), LAMB (2025 code) -----------------------------
    def derive_from_settings(self) -> None:
        super().derive_from_settings()
        settings = self.progressive_settings
        if settings.optimizer != "lamb" and "NNPROG_LAMB_LR" in settings.set_knobs():
            raise ProgressiveConfigError(
                f"NNPROG_LAMB_LR={settings.lamb_lr:g} is set but the optimiser is {settings.optimizer!r}; set "
                f"NNPROG_OPTIMIZER=lamb or unset NNPROG_LAMB_LR")

    def on_epoch_end(self):
        """nnU-Net's epoch end; with NNPROG_STAGE_CHECKPOINTS=on, the checkpoint of a stage that ends here."""
        finished = self.current_epoch
        super().on_epoch_end()  # nnU-Net counts the epoch as done (current_epoch + 1) at its very end
        stage = self.schedule.stage_at_epoch(finished)
        if (self.progressive_settings.stage_checkpoints == "on" and finished == stage.last_epoch - 1
                and stage.index < len(self.schedule.stages) - 1):
            name = stage_checkpoint_name(stage.index, stage.patch_size)
            self.current_epoch = finished  # as nnU-Net's own checkpoints of this epoch record it
            try:
                self.save_checkpoint(os.path.join(self.output_folder, name))  # atomic, with its checksum sidecar
            finally:
                self.current_epoch = finished + 1
            self.print_to_log_file(f"Stage {stage.index + 1} ended: {name}")

    def configure_optimizers(self, *args, **kwargs):
        """nnU-Net's (or the network recipe's) optimiser, or LAMB with poly decay (NNPROG_OPTIMIZER=lamb).

        Arguments are handed on: nnU-Net's warm-up trainers (Primus) call it with their phase."""
        if self.progressive_settings.optimizer != "lamb":
            return super().configure_optimizers(*args, **kwargs)
        from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

        from nnunet_progressive.nnunet.hooks.lamb import Lamb

        lr = self.progressive_settings.lamb_lr
        optimizer = Lamb(self.network.parameters(), lr=lr, weight_decay=self.weight_decay)
        self.print_to_log_file(f"Optimiser: LAMB, lr {lr:g}, weight decay {self.weight_decay:g}, poly decay")
        return optimizer, PolyLRScheduler(optimizer, lr, self.num_epochs)

    def _stage_description(self, epoch: int) -> tuple[str, int]:
        """Log text for the epoch's patch stage and the voxels one training iteration processes."""
        stage = self.schedule.stage_at_epoch(epoch)
        text = (
            f"PGPS stage {stage.index + 1}/{len(self.schedule.stages)} | patch "
            f"{'x'.join(map(str, stage.patch_size))} | batch {stage.batch_size}"
        )
        return text, stage.voxels_per_iteration


    # --- the measured schedule (NNPROG_MEASURED_SCHEDULE; nnunet/hooks/measured_schedule.py) ---------------------
    def _build_schedule(self) -> Schedule:
        return self._measured_or_voxel_schedule(super()._build_schedule())

    def _measured_or_voxel_schedule(self, voxel_schedule: Schedule) -> Schedule:
        """The voxel schedule, or with NNPROG_MEASURED_SCHEDULE=on the run's recorded measured schedule, or one
        chosen from a matching profile file; where none matches, the run profiles itself in ``on_train_start``."""
        self._voxel_schedule = voxel_schedule
        self._started_schedule: Schedule | None = None  # before the time budget's first change of the run length
        self._measured_pending: dict | None = None  # the record to write before the first epoch
        self._profile_at_start = False
        self._step_seconds: dict | None = None  # (patch, batch) -> measured step seconds (the time budget's weights)
        if self.progressive_settings.measured_schedule != "on":
            return voxel_schedule
        from nnunet_progressive.nnunet.hooks.measured_schedule import (
            choose_from_profile_file,
            recorded_schedule,
            step_seconds_of,
        )

        recorded = recorded_schedule(self, voxel_schedule)
        if recorded is not None:
            schedule, profile = recorded
            self._step_seconds = step_seconds_of(profile)
            return schedule
        chosen = choose_from_profile_file(self, voxel_schedule)
        if chosen is None:
            self._profile_at_start = True
            return voxel_schedule
        schedule, self._measured_pending = chosen
        self._step_seconds = step_seconds_of(self._measured_pending["profile"])
        return schedule

    def on_train_start(self):
        super().on_train_start()
        self._settle_measured_schedule()

    def _settle_measured_schedule(self) -> None:
        """Profile the run's stages where no profile matched (the network is built now), then record the choice."""
        from nnunet_progressive.nnunet.hooks.measured_schedule import profile_at_start, step_seconds_of, write_choice

        if self._profile_at_start:
            self.schedule, self._measured_pending = profile_at_start(self, self._voxel_schedule)
            self._step_seconds = step_seconds_of(self._measured_pending["profile"])
            self._profile_at_start = False
            if self.local_rank == 0:
                plot_schedule(self.schedule, os.path.join(self.output_folder, CURRICULUM_PNG), self.current_epoch)
        if self._measured_pending is not None:
            write_choice(self, self._measured_pending)
            self._measured_pending = None

    # --- the time budget's run length (NNPROG_TIME_BUDGET; pgps/run_length.py) ---------------------------
    def _set_run_length(self, num_epochs: int, epochs_done: int) -> None:
        """The stage boundaries scale with the run length; the stages of epochs trained stay."""
        if self._started_schedule is None:
            self._started_schedule = self.schedule
        super()._set_run_length(num_epochs, epochs_done)
        self.schedule = rescaled_schedule(self._started_schedule, self.schedule, num_epochs, epochs_done)

    def _past_epoch_weights(self, epochs_done: int) -> list[float]:
        return epoch_weights(self.schedule, 0, epochs_done, self._step_seconds)

    def _future_epoch_weights(self, num_epochs: int, epochs_done: int) -> list[float]:
        started = self._started_schedule if self._started_schedule is not None else self.schedule
        return epoch_weights(rescaled_schedule(started, self.schedule, num_epochs, epochs_done), epochs_done,
                             num_epochs, self._step_seconds)


class RandomPatchSizeMixin(PatchSizeMixin):
    """RPSS ablation: every batch uses one of the PGPS stage patch sizes, drawn uniformly; batch constant.

    There is no curriculum; the schedule is still built (it validates the knobs and gives the pool). One
    augmenter holds one single-threaded loader per patch size, so its worker processes do not multiply with
    the number of sizes.
    """

    pgps_mode = "efficiency"

    def _patch_pool(self) -> list[tuple[int, ...]]:
        rule = self._own_patch_rule()
        return random_patch_pool(rule.planned_patch, rule.pool_op_kernel_sizes, self.progressive_settings.min_patch,
                                 self.progressive_settings.growth_order, rule.input_multiple)

    def _stage_key(self, epoch: int) -> tuple:
        return super()._stage_key(epoch) + (("rpss",),)

    def _stage_description(self, epoch: int) -> tuple[str, int]:
        pool = self._patch_pool()
        mean_voxels = float(np.mean([np.prod(p) for p in pool]))
        batch = self.schedule.planned_batch_size
        return f"RPSS: {len(pool)} patch sizes drawn per batch | batch {batch}", int(mean_voxels * batch)

    def curriculum_record(self) -> Curriculum:
        return super().curriculum_record().model_copy(update=dict(
            mode="rpss", schedule={"patch_pool": [list(p) for p in self._patch_pool()],
                                   "batch_size": self.schedule.planned_batch_size},
            stages=[], throughput=combined(self._throughput.values()).summary()))

    def _epoch_configuration(self, epoch: int):
        return contextlib.nullcontext()  # the patch sizes are set per inner loader

    def _make_training_loader(self):
        loaders = []
        for patch in self._patch_pool():
            with self._stage_configuration(patch, self.schedule.planned_batch_size):
                loaders.append(super()._make_training_loader())
        return RandomPatchSizeLoader(loaders)


def _rotation_key(rotation) -> tuple:
    """A comparable form of nnU-Net's rotation setting (a (low, high) range in radians, or a scalar/None)."""
    if rotation is None:
        return (None,)
    if isinstance(rotation, tuple | list):
        return tuple(round(float(r), 6) for r in rotation)
    return (round(float(rotation), 6),)


def _rotation_text(rotation) -> str:
    key = _rotation_key(rotation)
    if key == (None,):
        return "none"
    if len(key) == 2 and math.isclose(-key[0], key[1]):
        return f"+-{math.degrees(key[1]):.0f} deg"
    return f"{tuple(round(math.degrees(k), 1) for k in key)} deg"


def _initial_patch_size(patch: list[int], rotation, dummy_2d: bool) -> list[int]:
    """nnU-Net's enlarged crop for spatial augmentation (its formula in ``configure_rotation_dummyDA_...``)."""
    from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size

    dims = len(patch)
    initial = get_patch_size(patch[-dims:], rotation, rotation, rotation, (0.85, 1.25))
    if dummy_2d:
        initial[0] = patch[0]
    return [int(i) for i in initial]
