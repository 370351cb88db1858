"""MONAI's UNETR with a position table that follows the input's token grid (any multiple of 16 per axis).

``GridUNETR`` keeps MONAI's modules and parameter names (a state dict loads into MONAI's ``UNETR`` built for the
planned patch and back); only the patch embedding resizes the stored table to the input's grid, and the token
sequences are reshaped to that grid instead of the one fixed at construction. Imports MONAI: import this module
only through :func:`nnunet_progressive.nnunet.networks.builders.build_network` (which checks for it first).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import UNETR
from torch import nn

from nnunet_progressive.architectures.specs import UNETRSpec
from nnunet_progressive.nnunet.networks.position_embeddings import resize_position_table

# the transformer layers whose outputs feed encoder2, encoder3 and encoder4 (MONAI's UNETR wiring)
SKIP_LAYERS = (3, 6, 9)


def token_grid_of(spatial_shape: Sequence[int], token_size: Sequence[int], network: str) -> tuple[int, ...]:
    """The token grid of an input, or a ValueError saying which axes are no multiple of the token size."""
    bad = [axis for axis, (s, t) in enumerate(zip(spatial_shape, token_size, strict=True)) if s % t or s < t]
    if bad:
        raise ValueError(f"{network}: input of spatial shape {tuple(spatial_shape)} is not a multiple of the token "
                         f"size {tuple(token_size)} on axes {bad}")
    return tuple(int(s) // int(t) for s, t in zip(spatial_shape, token_size, strict=True))


class GridPatchEmbedding(nn.Module):
    """MONAI's ``PatchEmbeddingBlock`` (its own submodules and parameter names) for any token grid."""

    def __init__(self, block: nn.Module, stored_grid: Sequence[int], token_size: Sequence[int]):
        super().__init__()
        if block.pos_embed_type != "learnable":
            raise ValueError(f"only learnable position embeddings are resized, got {block.pos_embed_type!r}")
        self.proj_type = block.proj_type
        self.patch_embeddings = block.patch_embeddings
        self.position_embeddings = block.position_embeddings
        self.dropout = block.dropout
        self.stored_grid = tuple(int(g) for g in stored_grid)
        self.token_size = tuple(int(t) for t in token_size)
        self.grid_in_use: tuple[int, ...] | None = None  # the last forward's grid (for logs; not when compiling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = token_grid_of(x.shape[2:], self.token_size, "UNETR")
        tokens = self.patch_embeddings(x)
        if self.proj_type == "conv":
            tokens = tokens.flatten(2).transpose(-1, -2)
        positions = resize_position_table(self.position_embeddings, self.stored_grid, grid)
        if not torch.compiler.is_compiling():
            self.grid_in_use = grid
        return self.dropout(tokens + positions)


class GridUNETR(UNETR):
    """UNETR built for ``planned_patch`` (its stored position grid) that runs on any multiple of 16 per axis.

    Input: (B, in_channels, *spatial) with 2 or 3 spatial axes, each a multiple of 16. Output: (B, out_channels,
    *spatial) logits.
    """

    def __init__(self, spec: UNETRSpec, in_channels: int, out_channels: int, planned_patch: Sequence[int]):
        super().__init__(
            in_channels=in_channels, out_channels=out_channels, img_size=tuple(int(p) for p in planned_patch),
            feature_size=spec.feature_size, hidden_size=spec.hidden_size, mlp_dim=spec.mlp_dim,
            num_heads=spec.num_heads, proj_type=spec.proj_type, norm_name=spec.norm_name,
            conv_block=spec.conv_block, res_block=spec.res_block, dropout_rate=spec.dropout_rate,
            spatial_dims=len(planned_patch), qkv_bias=spec.qkv_bias)
        self.vit.patch_embedding = GridPatchEmbedding(self.vit.patch_embedding, self.feat_size, self.patch_size)

    @property
    def stored_grid(self) -> tuple[int, ...]:
        """The token grid of the planned patch (the one the position table is stored for)."""
        return tuple(self.feat_size)

    def token_grid(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        return token_grid_of(spatial_shape, self.patch_size, "UNETR")

    def _to_feature_map(self, tokens: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """(B, prod(grid), hidden) tokens -> (B, hidden, *grid) feature map."""
        return tokens.reshape(tokens.shape[0], *grid, self.hidden_size).permute(self.proj_axes).contiguous()

    def forward(self, x_in: torch.Tensor) -> torch.Tensor:
        grid = self.token_grid(x_in.shape[2:])
        tokens, layer_outputs = self.vit(x_in)
        skips = [self.encoder1(x_in)] + [
            encoder(self._to_feature_map(layer_outputs[layer], grid))
            for encoder, layer in zip((self.encoder2, self.encoder3, self.encoder4), SKIP_LAYERS, strict=True)
        ]
        features = self._to_feature_map(tokens, grid)
        for decoder, skip in zip((self.decoder5, self.decoder4, self.decoder3, self.decoder2), reversed(skips),
                                 strict=True):
            features = decoder(features, skip)
        return self.out(features)
