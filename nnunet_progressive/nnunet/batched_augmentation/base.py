"""The shape every batched transform takes (batchgeneratorsv2's, for a whole batch).

A batch is a dict of tensors with the batch as the first axis: ``image`` (B, C, *spatial) float32 and
``segmentation`` (B, Cs, *spatial) integer, as nnU-Net's loader stacks them with ``transforms=None``; after
deep-supervision downsampling ``segmentation`` is a list of such tensors, one per scale.
``get_parameters`` draws what batchgeneratorsv2 draws, per sample (and per channel where it does), as tensors
with the batch as the first axis; ``apply`` applies them to the whole batch in a few torch calls. Tests feed
both with the same parameters.
"""
from __future__ import annotations

from typing import Any

import torch

Batch = dict[str, Any]


class BatchedTransform:
    """One augmentation step on a whole batch: draw per sample (``get_parameters``), then ``apply``."""

    def __call__(self, batch: Batch) -> Batch:
        return self.apply(batch, self.get_parameters(batch))

    def get_parameters(self, batch: Batch) -> dict[str, Any]:
        return {}

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        raise NotImplementedError


def batch_size_of(batch: Batch) -> int:
    return int(batch["image"].shape[0])


class BatchedRandomTransform(BatchedTransform):
    """batchgeneratorsv2's ``RandomTransform``: each sample gets ``transform`` with ``apply_probability``.

    The selected samples are gathered, transformed together and written back; the others are untouched.
    """

    def __init__(self, transform: BatchedTransform, apply_probability: float):
        self.transform = transform
        self.apply_probability = apply_probability

    def get_parameters(self, batch: Batch) -> dict[str, Any]:
        selected = torch.rand(batch_size_of(batch)) < self.apply_probability
        return {"selected": selected.nonzero().flatten()}

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        selected = params["selected"]
        if selected.numel() == 0:
            return batch
        if selected.numel() == batch_size_of(batch):
            return self.transform(batch)
        index = selected.to(batch["image"].device)
        sub = {key: value[index] if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
        sub = self.transform(sub)
        out = dict(batch)
        for key, value in sub.items():
            if not isinstance(value, torch.Tensor) or not isinstance(batch.get(key), torch.Tensor):
                continue  # nnU-Net's 'keys', counts and the like pass through unchanged
            if value.shape[1:] != batch[key].shape[1:]:
                raise ValueError(f"BatchedRandomTransform: {type(self.transform).__name__} changed the shape of "
                                 f"'{key}'; only shape-preserving transforms can be applied to part of a batch")
            merged = batch[key].clone()
            merged[index] = value.to(merged.dtype)
            out[key] = merged
        return out


class BatchedCompose(BatchedTransform):
    """Applies transforms in order (batchgeneratorsv2's ``ComposeTransforms``)."""

    def __init__(self, transforms: list[BatchedTransform]):
        self.transforms = list(transforms)

    def __call__(self, batch: Batch) -> Batch:
        for transform in self.transforms:
            batch = transform(batch)
        return batch
