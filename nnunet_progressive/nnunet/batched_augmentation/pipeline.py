"""nnU-Net 2.8.1's training augmentation (``nnUNetTrainer.get_training_transforms``) as a batched pipeline.

:func:`build_training_pipeline` takes the same arguments and returns the same steps in the same order, with the
same probabilities and ranges, each a batched transform (per-sample draws, whole-batch application). The
intensity steps come from :mod:`nnunet_progressive.nnunet.batched_augmentation.intensity`, imported when the
pipeline is built (:func:`intensity_module`). The two cascade-only morphology steps
(``ApplyRandomBinaryOperatorTransform``, ``RemoveRandomConnectedComponentFromOneHotEncodingTransform``) have no
batched version yet: they run as bgv2's own transforms, sample by sample on the CPU (:class:`PerSampleTransform`).
"""
from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.nnunet.batched_augmentation.base import (
    Batch,
    BatchedCompose,
    BatchedRandomTransform,
    BatchedTransform,
    batch_size_of,
)
from nnunet_progressive.nnunet.batched_augmentation.spatial import (
    BatchedConvert2DTo3D,
    BatchedConvert3DTo2D,
    BatchedDownsampleSegForDS,
    BatchedMirror,
    BatchedSpatialTransform,
)

INTENSITY_MODULE = "nnunet_progressive.nnunet.batched_augmentation.intensity"


def intensity_module() -> ModuleType:
    """The module with the batched intensity and label steps (tests replace this function to isolate the
    spatial structure)."""
    return importlib.import_module(INTENSITY_MODULE)


class PerSampleTransform(BatchedTransform):
    """A batchgeneratorsv2 transform run on each sample of the batch in turn, on the CPU (a fallback for steps
    without a batched version; same draws and results as bgv2, at bgv2's per-sample cost)."""

    def __init__(self, transform: Any):
        self.transform = transform

    def __call__(self, batch: Batch) -> Batch:
        keys = [key for key in ("image", "segmentation") if isinstance(batch.get(key), torch.Tensor)]
        devices = {key: batch[key].device for key in keys}
        samples = []
        for b in range(batch_size_of(batch)):
            sample = {key: batch[key][b].cpu() for key in keys}
            samples.append(self.transform(**sample))
        out = dict(batch)
        for key in keys:
            out[key] = torch.stack([sample[key] for sample in samples]).to(devices[key])
        return out


def build_training_pipeline(
        patch_size: Sequence[int],
        rotation_for_DA: Any,
        deep_supervision_scales: Sequence[Any] | None,
        mirror_axes: Sequence[int] | None,
        do_dummy_2d_data_aug: bool,
        use_mask_for_norm: Sequence[bool] | None = None,
        is_cascaded: bool = False,
        foreground_labels: Sequence[int] | None = None,
        regions: Sequence[Any] | None = None,
        ignore_label: int | None = None,
) -> BatchedCompose:
    """The batched counterpart of ``nnUNetTrainer.get_training_transforms`` (nnU-Net 2.8.1), step for step."""
    from batchgeneratorsv2.transforms.intensity.contrast import BGContrast

    intensity = intensity_module()
    steps: list[BatchedTransform] = []
    if do_dummy_2d_data_aug:
        ignore_axes: tuple[int, ...] | None = (0,)
        steps.append(BatchedConvert3DTo2D())
        patch_size_spatial = tuple(patch_size)[1:]
    else:
        patch_size_spatial = tuple(patch_size)
        ignore_axes = None
    steps.append(BatchedSpatialTransform(
        patch_size_spatial, patch_center_dist_from_border=0, random_crop=False, p_elastic_deform=0,
        p_rotation=0.2, rotation=rotation_for_DA, p_scaling=0.2, scaling=(0.7, 1.4),
        p_synchronize_scaling_across_axes=1, bg_style_seg_sampling=False, border_mode_seg="constant",
        padding_value_seg=-1))
    if do_dummy_2d_data_aug:
        steps.append(BatchedConvert2DTo3D())

    steps.append(BatchedRandomTransform(intensity.BatchedGaussianNoise(
        noise_variance=(0, 0.1), p_per_channel=1, synchronize_channels=True), apply_probability=0.1))
    steps.append(BatchedRandomTransform(intensity.BatchedGaussianBlur(
        blur_sigma=(0.5, 1.), synchronize_channels=False, synchronize_axes=False, p_per_channel=0.5,
        benchmark=True), apply_probability=0.2))
    steps.append(BatchedRandomTransform(intensity.BatchedMultiplicativeBrightness(
        multiplier_range=BGContrast((0.75, 1.25)), synchronize_channels=False, p_per_channel=1),
        apply_probability=0.15))
    steps.append(BatchedRandomTransform(intensity.BatchedContrast(
        contrast_range=BGContrast((0.75, 1.25)), preserve_range=True, synchronize_channels=False,
        p_per_channel=1), apply_probability=0.15))
    steps.append(BatchedRandomTransform(intensity.BatchedSimulateLowResolution(
        scale=(0.5, 1), synchronize_channels=False, synchronize_axes=True, ignore_axes=ignore_axes,
        allowed_channels=None, p_per_channel=0.5), apply_probability=0.25))
    steps.append(BatchedRandomTransform(intensity.BatchedGamma(
        gamma=BGContrast((0.7, 1.5)), p_invert_image=1, synchronize_channels=False, p_per_channel=1,
        p_retain_stats=1), apply_probability=0.1))
    steps.append(BatchedRandomTransform(intensity.BatchedGamma(
        gamma=BGContrast((0.7, 1.5)), p_invert_image=0, synchronize_channels=False, p_per_channel=1,
        p_retain_stats=1), apply_probability=0.3))
    if mirror_axes is not None and len(mirror_axes) > 0:
        steps.append(BatchedMirror(allowed_axes=mirror_axes))

    if use_mask_for_norm is not None and any(use_mask_for_norm):
        steps.append(intensity.BatchedMaskImage(
            apply_to_channels=[i for i in range(len(use_mask_for_norm)) if use_mask_for_norm[i]],
            channel_idx_in_seg=0, set_outside_to=0))

    steps.append(intensity.BatchedRemoveLabel(-1, 0))
    if is_cascaded:
        if foreground_labels is None:
            raise ProgressiveConfigError("build_training_pipeline: is_cascaded=True needs foreground_labels (the "
                                         "labels of the previous stage's segmentation), as nnU-Net's does")
        from batchgeneratorsv2.transforms.nnunet.random_binary_operator import ApplyRandomBinaryOperatorTransform
        from batchgeneratorsv2.transforms.nnunet.remove_connected_components import (
            RemoveRandomConnectedComponentFromOneHotEncodingTransform,
        )
        from batchgeneratorsv2.transforms.utils.random import RandomTransform

        steps.append(intensity.BatchedMoveSegAsOneHotToData(
            source_channel_idx=1, all_labels=foreground_labels, remove_channel_from_source=True))
        one_hot_channels = list(range(-len(foreground_labels), 0))
        steps.append(PerSampleTransform(RandomTransform(ApplyRandomBinaryOperatorTransform(
            channel_idx=one_hot_channels, strel_size=(1, 8), p_per_label=0.5), apply_probability=0.4)))
        steps.append(PerSampleTransform(RandomTransform(RemoveRandomConnectedComponentFromOneHotEncodingTransform(
            channel_idx=one_hot_channels, fill_with_other_class_p=0, dont_do_if_covers_more_than_x_percent=0.15,
            p_per_label=0.5), apply_probability=0.2)))

    if regions is not None:
        # the ignore label must also be converted
        steps.append(intensity.BatchedConvertSegmentationToRegions(
            regions=list(regions) + [ignore_label] if ignore_label is not None else regions, channel_in_seg=0))

    if deep_supervision_scales is not None:
        steps.append(BatchedDownsampleSegForDS(ds_scales=deep_supervision_scales))
    return BatchedCompose(steps)
