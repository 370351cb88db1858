"""Training data loaders built from nnU-Net's own parts, and helpers around nnU-Net's augmenters.

- :func:`training_loader` is the training half of ``nnUNetTrainer.get_dataloaders()``: the trainer's own
  ``configure_rotation_dummyDA_mirroring_and_inital_patch_size``, ``get_training_transforms`` and
  ``get_tr_and_val_datasets`` (so trainer variants and PDL's case subsets keep working), for the configuration
  as it stands now, without starting a validation loader.
- :class:`PatchCropLoader` is nnU-Net's ``nnUNetDataLoader`` drawing a batch by a
  :class:`~nnunet_progressive.pgps.schedule.BatchLayout`: the planned number of cases, several crops from each
  (the published PGPS Performance batching), with nnU-Net's own cropping, padding, foreground sampling and
  transforms.
- :func:`training_augmenter` wraps a loader in the augmenter nnU-Net would use (worker processes per
  ``nnUNet_n_proc_DA``); :class:`RandomPatchSizeLoader` mixes several loaders inside ONE augmenter (RPSS).
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from time import perf_counter

import numpy as np
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader

from nnunet_progressive.pgps.sampling import crop_start_bounds, jittered_start, random_crop_starts
from nnunet_progressive.pgps.schedule import BatchLayout

# keys a PatchCropLoader adds to a batch (read and removed by the PGPS trainers' train_step): the seconds a
# loader worker took to build it, and which of its crops were forced to contain foreground
LOADER_SECONDS_KEY = "nnprog_loader_seconds"
FORCED_CROPS_KEY = "nnprog_forced_crops"
# the network patch of the batch (its crops are the larger initial patch until augmented), read by the PGPS trainers'
# throughput and the augmentation on the device (nnunet/hooks/augmentation_placement.py), removed by the latter
PATCH_SIZE_KEY = "nnprog_patch_size"


def shutdown_augmenter(augmenter) -> None:
    """Stop the worker processes of an nnU-Net/batchgenerators augmenter (no-op for single-threaded)."""
    finish = getattr(augmenter, "_finish", None)
    if finish is None:
        return
    with contextlib.redirect_stdout(io.StringIO()):
        finish()


def inner_data_loader(augmenter):
    """The data loader an augmenter draws from (``generator`` for multi-process, ``data_loader`` else)."""
    for attribute in ("generator", "data_loader"):
        loader = getattr(augmenter, attribute, None)
        if loader is not None:
            return loader
    raise TypeError(f"cannot find the data loader inside {type(augmenter).__name__}")


def loader_workers(augmenter) -> int:
    """How many processes build batches for ``augmenter`` (1 for a single-threaded one)."""
    return int(getattr(augmenter, "num_processes", 1) or 1)


class _LastCaseCache:
    """A dataset view that keeps the last loaded case, so consecutive crops of one case load it once."""

    def __init__(self, dataset):
        self._dataset = dataset
        self._last: tuple[str, tuple] | None = None

    def load_case(self, identifier):
        if self._last is None or self._last[0] != identifier:
            self._last = (identifier, self._dataset.load_case(identifier))
        return self._last[1]

    def clear(self) -> None:
        self._last = None

    def __getattr__(self, name):
        if name in ("_dataset", "_last"):  # not set yet (while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self._dataset, name)

    def __getstate__(self):
        return {"_dataset": self._dataset, "_last": None}

    def __setstate__(self, state):
        self.__dict__.update(state)


class PatchCropLoader(nnUNetDataLoader):
    """nnU-Net's training loader with a batch drawn as ``layout`` says.

    Each batch draws ``layout.volumes`` cases (``layout.batch_size`` if ``layout.distinct_cases``) with nnU-Net's
    sampling, loads each case once and takes ``layout.crops`` crops from it; ``layout`` decides which crops are
    forced to contain foreground. Cropping, padding, the foreground-centred box, 2D handling, cascades and the
    per-sample transforms are nnU-Net's (``nnUNetDataLoader.generate_train_batch``). Each batch also carries
    the seconds it took to build (``LOADER_SECONDS_KEY``), its foreground-forced crops (``FORCED_CROPS_KEY``) and
    its network patch (``PATCH_SIZE_KEY``).

    Args:
        data: an nnU-Net dataset (``nnUNetDatasetBlosc2`` / ``nnUNetDatasetNumpy``).
        layout: how this rank's batch is drawn (``pgps.schedule.batch_layout``).
        patch_size: the crop size before spatial augmentation (nnU-Net's "initial patch size").
        final_patch_size: the patch the network sees.
        label_manager, transforms, sampling_probabilities, pad_sides: as for ``nnUNetDataLoader``.
        random_crops: where a case's random crops lie (``NNPROG_RANDOM_CROPS``: ``pgps.sampling.random_crop_starts``;
            per group of crops from one case, so ``uniform`` wherever every crop has its own case).
        foreground_jitter: shift share of foreground-centred crops (``NNPROG_FOREGROUND_JITTER``:
            ``pgps.sampling.jittered_start``).
    """

    def __init__(self, data, layout: BatchLayout, patch_size: Sequence[int], final_patch_size: Sequence[int],
                 label_manager, transforms=None, sampling_probabilities=None, pad_sides=None,
                 random_crops: str = "uniform", foreground_jitter: float = 0.0):
        super().__init__(data, layout.batch_size, patch_size, final_patch_size, label_manager,
                         oversample_foreground_percent=0.0, sampling_probabilities=sampling_probabilities,
                         pad_sides=pad_sides, probabilistic_oversampling=False, transforms=transforms)
        self.layout = layout
        self.network_patch = tuple(int(p) for p in final_patch_size)
        self.random_crops = random_crops
        self.foreground_jitter = float(foreground_jitter)
        self._data = _LastCaseCache(self._data)
        self._forced: tuple[bool, ...] = ()
        self._groups = layout.groups()
        self._sample = 0  # the sample whose crop is being drawn (nnU-Net asks get_do_oversample before get_bbox)
        self._random_starts: dict[int, list[tuple[int, ...]]] = {}  # group -> starts of its random crops left
        self.get_do_oversample = self._forced_by_layout  # nnU-Net's __init__ set its own rule as an attribute

    def _forced_by_layout(self, sample_idx: int) -> bool:
        self._sample = sample_idx
        return self._forced[sample_idx]

    def get_bbox(self, data_shape, force_fg: bool, class_locations, overwrite_class=None, verbose: bool = False):
        """nnU-Net's crop box, with a case's random crops placed by ``random_crops`` and foreground-centred crops
        shifted by ``foreground_jitter`` (both off: nnU-Net's own box)."""
        spread = (self.random_crops != "uniform" and not force_fg and not self.has_ignore
                  and not self.layout.distinct_cases)
        if spread:
            start = self._next_random_start(data_shape)
        else:
            lbs, _ = super().get_bbox(data_shape, force_fg, class_locations, overwrite_class, verbose)
            start = tuple(int(b) for b in lbs)
            if force_fg and self.foreground_jitter > 0:
                lower, upper = crop_start_bounds(data_shape, self.patch_size, self.need_to_pad)
                start = jittered_start(start, lower, upper, self.final_patch_size, self.foreground_jitter,
                                       self._rng())
        return list(start), [s + int(p) for s, p in zip(start, self.patch_size)]

    def _next_random_start(self, data_shape) -> tuple[int, ...]:
        """The next of the precomputed random crop starts of the current sample's case (drawn at its first one)."""
        group = self._groups[self._sample]
        if group not in self._random_starts:
            members = [j for j, g in enumerate(self._groups) if g == group]
            count = sum(1 for j in members if not self._forced[j])
            self._random_starts[group] = random_crop_starts(self.random_crops, data_shape, self.patch_size,
                                                            self.need_to_pad, count, self._rng())
        return self._random_starts[group].pop(0)

    @staticmethod
    def _rng() -> np.random.Generator:
        """A generator seeded from numpy's global stream (which nnU-Net's augmenter seeds per worker)."""
        return np.random.default_rng(np.random.randint(2**31 - 1))

    def set_thread_id(self, thread_id: int) -> None:
        super().set_thread_id(thread_id)
        self._data.clear()

    def get_indices(self):
        layout = self.layout
        draws = layout.batch_size if layout.distinct_cases else layout.volumes
        cases = np.random.choice(self.indices, draws, replace=True, p=self.sampling_probabilities)
        self._forced = layout.forced_crops(np.random.uniform(size=layout.volumes))
        self._random_starts = {}
        if layout.distinct_cases:
            return list(cases)
        return [cases[group] for group in layout.groups()]

    def generate_train_batch(self):
        start = perf_counter()
        batch = super().generate_train_batch()
        batch[LOADER_SECONDS_KEY] = perf_counter() - start
        batch[FORCED_CROPS_KEY] = list(self._forced)
        batch[PATCH_SIZE_KEY] = self.network_patch
        return batch


def training_loader(trainer, layout: BatchLayout | None = None):
    """The training data loader ``trainer.get_dataloaders()`` would build for the configuration as it is now.

    With ``layout`` the loader is a :class:`PatchCropLoader` drawing batches by it; without, nnU-Net's own
    ``nnUNetDataLoader`` at ``trainer.batch_size``.
    """
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    if trainer.dataset_class is None:
        trainer.dataset_class = infer_dataset_class(trainer.preprocessed_dataset_folder)
    patch_size = trainer.configuration_manager.patch_size
    rotation, dummy_2d, initial_patch_size, mirror_axes = (
        trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size())
    label_manager = trainer.label_manager
    transforms = trainer.get_training_transforms(
        patch_size, rotation, trainer._get_deep_supervision_scales(), mirror_axes, dummy_2d,
        use_mask_for_norm=trainer.configuration_manager.use_mask_for_norm, is_cascaded=trainer.is_cascaded,
        foreground_labels=label_manager.foreground_labels,
        regions=label_manager.foreground_regions if label_manager.has_regions else None,
        ignore_label=label_manager.ignore_label)
    dataset_tr, _ = trainer.get_tr_and_val_datasets()
    if layout is None:
        return nnUNetDataLoader(dataset_tr, trainer.batch_size, initial_patch_size, patch_size, label_manager,
                                oversample_foreground_percent=trainer.oversample_foreground_percent,
                                sampling_probabilities=None, pad_sides=None, transforms=transforms,
                                probabilistic_oversampling=trainer.probabilistic_oversampling)
    settings = trainer.progressive_settings
    return PatchCropLoader(dataset_tr, layout, initial_patch_size, patch_size, label_manager, transforms=transforms,
                           random_crops=settings.random_crops, foreground_jitter=settings.foreground_jitter)


def training_augmenter(trainer, loader):
    """``loader`` inside the training augmenter nnU-Net's ``get_dataloaders()`` uses (same worker count, cache
    and pinning), started with one batch as nnU-Net starts it."""
    from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
    from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
    from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

    workers = get_allowed_n_proc_DA()
    if workers == 0:
        augmenter = SingleThreadedAugmenter(loader, None)
    else:
        augmenter = NonDetMultiThreadedAugmenter(data_loader=loader, transform=None, num_processes=workers,
                                                 num_cached=max(6, workers // 2), seeds=None,
                                                 pin_memory=trainer.device.type == "cuda", wait_time=0.002)
    next(augmenter)
    return augmenter


class RandomPatchSizeLoader:
    """Yields each batch from one of several data loaders drawn uniformly (RPSS ablation).

    Every inner loader has its own patch size, initial (rotation) patch size, batch size and transforms; they
    all live inside ONE augmenter, so its workers hold them all and the number of processes does not grow with
    the number of patch sizes. Draws use numpy's global RNG, which the augmenter seeds per worker.
    """

    def __init__(self, loaders: Sequence):
        if len(loaders) == 0:
            raise ValueError("RandomPatchSizeLoader needs at least one data loader")
        self.loaders = list(loaders)

    def set_thread_id(self, thread_id: int) -> None:
        for loader in self.loaders:
            loader.set_thread_id(thread_id)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.loaders[np.random.randint(len(self.loaders))])
