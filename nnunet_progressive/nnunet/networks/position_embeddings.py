"""Position embeddings that follow a token grid: learned tables resized, rotary embeddings rebuilt.

A transformer built for the planned patch stores its learned position table for the planned token grid. At a
PGPS stage with a smaller patch the table is resized to the stage's grid by (bi|tri)linear interpolation (the
usual method for ViTs at a new input size, e.g. DeiT, timm, nnssl fine-tuning), every forward pass, from the
stored parameter, so the gradient reaches the stored table and the planned grid, used at inference, is
untouched. Cost: one interpolation of a (channels x planned grid) tensor per forward pass (and its backward),
tiny next to the attention. Rotary embeddings are relative: they are rebuilt for the stage's grid with the
same step per token as at the planned grid, so two neighbouring tokens are as far apart as they are at
inference (a stage patch is a crop at the same spacing, not a rescaled image).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def resize_position_table(table: torch.Tensor, stored_grid: Sequence[int], grid: Sequence[int],
                          prefix_tokens: int = 0) -> torch.Tensor:
    """A learned position table for ``grid`` from the one stored for ``stored_grid``.

    Args:
        table: (1, prefix_tokens + prod(stored_grid), C); tokens in C order over the grid axes.
        stored_grid: the grid the table was built for (the planned patch's tokens).
        grid: the grid wanted (2 or 3 axes, as ``stored_grid``).
        prefix_tokens: leading tokens without a position (cls or register tokens), kept as they are.
    Returns:
        (1, prefix_tokens + prod(grid), C); ``table`` itself when the grids are equal.
    """
    stored_grid, grid = tuple(int(g) for g in stored_grid), tuple(int(g) for g in grid)
    if grid == stored_grid:
        return table
    if len(grid) != len(stored_grid) or len(grid) not in (2, 3):
        raise ValueError(f"token grid {grid} does not match the stored grid {stored_grid} (2 or 3 axes each)")
    expected = prefix_tokens + int(torch.tensor(stored_grid).prod())
    if table.ndim != 3 or table.shape[0] != 1 or table.shape[1] != expected:
        raise ValueError(f"position table of shape {tuple(table.shape)} does not hold {expected} tokens "
                         f"({prefix_tokens} prefix + grid {stored_grid})")
    channels = table.shape[-1]
    prefix, body = table[:, :prefix_tokens], table[:, prefix_tokens:]
    volume = body.reshape(1, *stored_grid, channels).movedim(-1, 1)
    mode = "trilinear" if len(grid) == 3 else "bilinear"
    resized = F.interpolate(volume.float(), size=grid, mode=mode, align_corners=False).to(table.dtype)
    return torch.cat([prefix, resized.movedim(1, -1).reshape(1, -1, channels)], dim=1)


def rotary_embedding_for_grid(rope, grid: Sequence[int], device: torch.device | None = None) -> torch.Tensor:
    """timm ``RotaryEmbeddingCat`` sin/cos table for ``grid`` with one step per token (no rescaling).

    Equals ``rope.pos_embed`` for the grid the module was built for (its reference grid); for another grid it
    is the same embedding over that grid's tokens (the relative phase between neighbours unchanged).
    """
    from timm.layers import build_rotary_pos_embed

    if rope.in_pixels:
        raise ValueError("only rotary embeddings in token units (in_pixels=False, as Primus) can follow a grid")
    sin, cos = build_rotary_pos_embed(
        feat_shape=[int(g) for g in grid], dim=rope.dim, max_res=rope.max_res, temperature=rope.temperature,
        linear_bands=rope.linear_bands, in_pixels=rope.in_pixels, ref_feat_shape=None,
        grid_offset=rope.grid_offset, grid_indexing=rope.grid_indexing, device=device)
    return torch.cat([sin, cos], -1)
