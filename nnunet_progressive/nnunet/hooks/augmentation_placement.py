"""Where nnU-Net's training augmentation runs (``NNPROG_AUGMENT_ON``), hooked in once for every trainer.

- ``workers`` (the default): nnU-Net's loader workers build augmented batches, per sample, as nnU-Net does.
- ``device``: the trainer's ``get_training_transforms`` hands the training loader ``transforms=None`` (its workers
  only load, crop the enlarged "initial patch" and stack) and keeps, for that loader's patch, the batched pipeline
  built from the SAME arguments nnU-Net passed (:func:`~nnunet_progressive.nnunet.batched_augmentation.pipeline.
  build_training_pipeline`); ``train_step`` moves the batch to the training device, applies the pipeline to the
  whole batch and hands the augmented batch to the next training step. Validation loaders are nnU-Net's.

Which pipeline a batch needs: loaders that draw batches of several patch sizes (RPSS, the PGPS loaders) tag each
batch with its network patch (``PATCH_SIZE_KEY``); an untagged batch comes from the training loader built last
(a staged trainer always stops the previous training loader before it builds the next one).

A trainer whose ``get_training_transforms`` is not nnU-Net's own (nnU-Net's NoDA, DA5, DAOrd0 variants, a user's
subclass) is refused with ``device``: the batched pipeline reproduces nnU-Net's default augmentation only, and a
run must never silently train with another augmentation than its trainer's.

:class:`AugmentationPlacementMixin` sits directly under :class:`~.run_state.RunLengthMixin` (its
base), so every trainer of the package has it and its ``train_step`` is the innermost of the package's
(PGPS's timing and PDL's case count run around it; an architecture's ``RecipeStepMixin`` step runs after it).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import Any

import torch

from nnunet_progressive.core.errors import NnprogError, ProgressiveConfigError
from nnunet_progressive.core.records import AugmentationCost
from nnunet_progressive.nnunet.hooks.loaders import PATCH_SIZE_KEY

DEVICE = "device"
WORKERS = "workers"
WORKER_COST_MEANING = "loader workers' seconds per batch: loading, cropping and augmentation"
DEVICE_COST_MEANING = "training process's seconds per batch: the batched augmentation alone"


def patch_key(patch_size: Sequence[int]) -> tuple[int, ...]:
    """The key of a pipeline (a network patch as ints)."""
    return tuple(int(p) for p in patch_size)


def own_transform_classes(trainer_class: type) -> list[type]:
    """The classes of ``trainer_class``'s method resolution order that define their own ``get_training_transforms``
    (nnU-Net's ``nnUNetTrainer`` and this module's hook are the default and do not count)."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    return [c for c in trainer_class.__mro__ if "get_training_transforms" in vars(c)
            and c not in (nnUNetTrainer, AugmentationPlacementMixin)]


def transforms_refusal(trainer_class: type, augment_on: str) -> str | None:
    """Why ``trainer_class`` cannot run with ``NNPROG_AUGMENT_ON=augment_on``, or None if it can."""
    if augment_on != DEVICE:
        return None
    own = own_transform_classes(trainer_class)
    if not own:
        return None
    where = ", ".join(f"{c.__module__}.{c.__qualname__}" for c in own)
    return (f"NNPROG_AUGMENT_ON=device cannot run {trainer_class.__name__}: its get_training_transforms is its own "
            f"(defined in {where}), not nnU-Net's default pipeline, and the batched augmentation on the device only "
            f"reproduces nnU-Net's default; the run would silently train with another augmentation. Fix: "
            f"NNPROG_AUGMENT_ON=workers (or unset NNPROG_AUGMENT_ON) for this trainer")


def augmentation_cost(augment_on: str, device: str, seconds: Mapping[int, float], batches: Mapping[int, int],
                      loader_seconds: float = 0.0, loader_batches: int = 0) -> AugmentationCost:
    """Where a run's augmentation ran and its cost per batch.

    ``device``: ``seconds``/``batches`` (per epoch) are the training process's augmentation. ``workers``: the cost
    is the loader workers' time per batch (``loader_seconds`` over ``loader_batches``, measured by the PGPS
    loaders; augmentation included), None where no loader measures it.
    """
    if augment_on == DEVICE:
        total_batches = int(sum(batches.values()))
        total_seconds = float(sum(seconds.values()))
        return AugmentationCost(on=DEVICE, device=device, batches=total_batches, measured=DEVICE_COST_MEANING,
                                seconds_per_batch=total_seconds / total_batches if total_batches else None)
    return AugmentationCost(on=WORKERS, device=None, batches=int(loader_batches), measured=WORKER_COST_MEANING,
                            seconds_per_batch=loader_seconds / loader_batches if loader_batches else None)


class AugmentationPlacementMixin:
    """Runs nnU-Net's training augmentation where ``NNPROG_AUGMENT_ON`` says (the base of ``RunLengthMixin``)."""

    progressive_settings: Any  # set by RunLengthMixin

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._batched_pipelines: dict[tuple[int, ...], Any] = {}  # network patch -> batched pipeline
        self._latest_pipeline: Any = None  # of the training loader built last (for untagged batches)
        self._augment_seconds: dict[int, float] = {}  # epoch -> training-process seconds of augmentation
        self._augment_batches: dict[int, int] = {}  # epoch -> batches augmented
        self.last_augment_seconds: float | None = None  # of the latest train_step (None: augmented by workers)

    @property
    def augments_on_device(self) -> bool:
        settings = getattr(self, "progressive_settings", None)
        return settings is not None and settings.augment_on == DEVICE

    def check_augmentation_placement(self) -> None:
        """Stop a run whose trainer has its own ``get_training_transforms`` under ``NNPROG_AUGMENT_ON=device``."""
        refusal = transforms_refusal(type(self), self.progressive_settings.augment_on)
        if refusal is not None:
            raise ProgressiveConfigError(refusal)

    # --- nnU-Net hooks ----------------------------------------------------------------------------------
    def get_training_transforms(self, patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, use_mask_for_norm=None, is_cascaded=False,
                                foreground_labels=None, regions=None, ignore_label=None):
        """nnU-Net's per-sample pipeline (``workers``), or None for the loader and the batched pipeline kept for
        ``train_step`` (``device``), built from the same arguments."""
        if not self.augments_on_device:
            return super().get_training_transforms(
                patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes, do_dummy_2d_data_aug,
                use_mask_for_norm=use_mask_for_norm, is_cascaded=is_cascaded, foreground_labels=foreground_labels,
                regions=regions, ignore_label=ignore_label)
        from nnunet_progressive.nnunet.batched_augmentation.pipeline import build_training_pipeline

        pipeline = build_training_pipeline(
            patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes, do_dummy_2d_data_aug,
            use_mask_for_norm=use_mask_for_norm, is_cascaded=is_cascaded, foreground_labels=foreground_labels,
            regions=regions, ignore_label=ignore_label)
        self._batched_pipelines[patch_key(patch_size)] = pipeline
        self._latest_pipeline = pipeline
        return None

    def train_step(self, batch: dict) -> dict:
        """With ``device``: the batch moved to the training device and augmented there, then the next step."""
        patch = batch.pop(PATCH_SIZE_KEY, None)
        if not self.augments_on_device:
            self.last_augment_seconds = None
            return super().train_step(batch)
        pipeline = self._pipeline_for(patch)
        if isinstance(batch["target"], list):
            raise NnprogError(
                f"{type(self).__name__}: NNPROG_AUGMENT_ON=device got a batch that was already augmented (its target "
                f"is a list of deep-supervision scales): the training loader was built with transforms. Fix: build "
                f"training loaders through the trainer's get_training_transforms, or use NNPROG_AUGMENT_ON=workers")
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"].to(self.device, non_blocking=True)
        self._synchronize()
        start = perf_counter()
        with torch.no_grad():
            augmented = pipeline({"image": data, "segmentation": target})
        self._synchronize()
        seconds = perf_counter() - start
        self.last_augment_seconds = seconds
        epoch = int(self.current_epoch)
        self._augment_seconds[epoch] = self._augment_seconds.get(epoch, 0.0) + seconds
        self._augment_batches[epoch] = self._augment_batches.get(epoch, 0) + 1
        return super().train_step({**batch, "data": augmented["image"], "target": augmented["segmentation"]})

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)
        if self.augments_on_device:
            epoch = int(self.current_epoch)
            batches = self._augment_batches.get(epoch, 0)
            per_batch = self._augment_seconds.get(epoch, 0.0) / batches if batches else 0.0
            self.print_to_log_file(f"Augmentation on device {self.device}: {1000 * per_batch:.1f} ms per batch in "
                                   f"the training process ({batches} batches, NNPROG_AUGMENT_ON=device)")

    # --- records ----------------------------------------------------------------------------------------
    def augmentation_record(self, loader_seconds: float = 0.0, loader_batches: int = 0) -> AugmentationCost:
        """Where this run's augmentation ran and its cost per batch so far (see :func:`augmentation_cost`)."""
        return augmentation_cost(self.progressive_settings.augment_on, str(self.device), self._augment_seconds,
                                 self._augment_batches, loader_seconds, loader_batches)

    def augmentation_state(self) -> dict:
        """The per-epoch augmentation cost, kept beside checkpoints: epoch -> [seconds, batches]."""
        return {str(e): [s, self._augment_batches.get(e, 0)] for e, s in self._augment_seconds.items()}

    def restore_augmentation_state(self, state: Mapping[str, Sequence[float]], current_epoch: int) -> None:
        kept = {int(e): v for e, v in state.items() if int(e) < current_epoch}
        self._augment_seconds = {e: float(v[0]) for e, v in kept.items()}
        self._augment_batches = {e: int(v[1]) for e, v in kept.items()}

    # --- helpers ----------------------------------------------------------------------------------------
    def _pipeline_for(self, patch: Sequence[int] | None):
        if patch is not None and patch_key(patch) in self._batched_pipelines:
            return self._batched_pipelines[patch_key(patch)]
        if patch is None and self._latest_pipeline is not None:
            return self._latest_pipeline
        raise NnprogError(
            f"{type(self).__name__}: no batched augmentation pipeline for a batch of patch {patch} (pipelines for "
            f"{sorted(self._batched_pipelines)}); the training loader was not built through get_training_transforms. "
            f"Fix: use NNPROG_AUGMENT_ON=workers")

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
