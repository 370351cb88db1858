"""Torch's own accounting of what a forward pass keeps for backward (checks the pure memory estimates)."""
from __future__ import annotations

import torch
from torch import nn


def saved_activation_bytes(model: nn.Module, inputs: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves for backward in one forward pass of ``model`` on ``inputs``.

    Counts each storage once and leaves out parameters and the input (present whatever the batch). This is the
    part of training memory that grows with batch and patch; weights, gradients and optimiser state do not.
    """
    fixed = {p.untyped_storage().data_ptr() for p in model.parameters()}
    fixed |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    fixed.add(inputs.untyped_storage().data_ptr())
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in fixed:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = model(inputs)
    del output
    return sum(storages.values())
