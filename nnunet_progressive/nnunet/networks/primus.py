"""nnU-Net's Primus (dynamic_network_architectures) with embeddings that follow the input's token grid.

Primus is built for one input shape: its EVA encoder stores a learned absolute position table and a rotary
embedding (a non-persistent buffer) for the planned token grid, and would fail on any other. ``follow_token_grid``
adapts a Primus built by nnU-Net's own trainer (any of its sizes), in place: a forward pre-hook records the input's
token grid, and the encoder (the same module, its class swapped for a subclass that overrides only how position
embeddings are made) resizes the stored table and rebuilds the rotary embedding for that grid. Parameters, buffers
and the state dict are unchanged, so a checkpoint loads into nnU-Net's stock Primus and predicts the same at the
planned patch.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from dynamic_network_architectures.architectures.primus import Primus
from dynamic_network_architectures.building_blocks.eva import Eva
from timm.layers import apply_keep_indices_nlc
from torch import nn

from nnunet_progressive.nnunet.networks.position_embeddings import (
    resize_position_table,
    rotary_embedding_for_grid,
)


class GridFollowingEva(Eva):
    """Primus' EVA encoder whose position embeddings are made for ``token_grid`` (set before each forward)."""

    stored_grid: tuple[int, ...]
    token_size: tuple[int, ...]
    token_grid: tuple[int, ...] | None = None

    def _pos_embed(self, x):
        grid = self.token_grid
        if grid is None or grid == self.stored_grid:
            return super()._pos_embed(x)
        if self.pos_embed is not None:
            x = x + resize_position_table(self.pos_embed, self.stored_grid, grid, self.num_prefix_tokens)
        rotary = None
        if self.rope is not None:
            cache = self.__dict__.setdefault("_rotary_cache", {})
            key = (grid, x.device)
            if key not in cache:
                cache[key] = rotary_embedding_for_grid(self.rope, grid, x.device)
            rotary = cache[key]
        x = self.pos_drop(x)
        if self.patch_drop is None:
            return x, rotary, None
        x, keep_indices = self.patch_drop(x)
        if rotary is not None and keep_indices is not None:
            rotary = apply_keep_indices_nlc(x, rotary, keep_indices)
        return x, rotary, keep_indices


def _record_token_grid(model: nn.Module, args: tuple) -> None:
    """Forward pre-hook: tell the encoder the token grid of this input."""
    token_size = model.eva.token_size
    shape = args[0].shape[2:]
    bad = [axis for axis, (s, t) in enumerate(zip(shape, token_size, strict=True)) if s % t or s < t]
    if bad:
        raise ValueError(f"Primus: input of spatial shape {tuple(shape)} is not a multiple of the token size "
                         f"{tuple(token_size)} on axes {bad}")
    model.eva.token_grid = tuple(int(s) // int(t) for s, t in zip(shape, token_size, strict=True))


def follow_token_grid(model: nn.Module, planned_patch: Sequence[int], token_size: int = 8) -> nn.Module:
    """Make a Primus built for ``planned_patch`` run on any multiple of its token size (in place; returns it).

    ``token_size``: voxels per token along each axis (nnU-Net's Primus trainers: 8).
    """
    if not isinstance(model, Primus) or type(model.eva) is not Eva:
        raise TypeError(f"expected a dynamic_network_architectures Primus with its Eva encoder, got "
                        f"{type(model).__name__} with {type(getattr(model, 'eva', None)).__name__}")
    model.eva.__class__ = GridFollowingEva
    model.eva.token_size = (int(token_size),) * len(planned_patch)
    model.eva.stored_grid = tuple(int(p) // int(token_size) for p in planned_patch)
    model.register_forward_pre_hook(_record_token_grid)
    return model


def primus_token_grid_in_use(model: nn.Module) -> tuple[int, ...] | None:
    """The token grid the last forward pass used (None before the first one)."""
    return getattr(model.eva, "token_grid", None)


def position_table_in_use(model: nn.Module) -> torch.Tensor | None:
    """The absolute position table the encoder adds at its current token grid (for checks and logs)."""
    eva = model.eva
    if eva.pos_embed is None:
        return None
    grid = eva.token_grid or eva.stored_grid
    return resize_position_table(eva.pos_embed, eva.stored_grid, grid, eva.num_prefix_tokens)
