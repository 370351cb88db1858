"""Build a transformer from its spec (``architectures.specs``) for a planned patch; MONAI is checked first."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nnunet_progressive.architectures.specs import PrimusSpec, SwinUNETRSpec, UNETRSpec
from nnunet_progressive.nnunet.networks.optional import require_monai


def build_network(spec: UNETRSpec | SwinUNETRSpec | PrimusSpec, in_channels: int, out_channels: int,
                  planned_patch: Sequence[int], follow_grid: bool = True) -> nn.Module:
    """The network of ``spec`` for ``planned_patch`` (its stored position grid, where it has one).

    ``follow_grid``: embeddings follow the input's token grid (PGPS); False builds the published fixed-shape
    network (Primus) where that differs. UNETR always follows (at the planned grid it is MONAI's UNETR).
    """
    planned_patch = tuple(int(p) for p in planned_patch)
    if isinstance(spec, UNETRSpec):
        require_monai(spec.name)
        from nnunet_progressive.nnunet.networks.unetr import GridUNETR

        return GridUNETR(spec, in_channels, out_channels, planned_patch)
    if isinstance(spec, SwinUNETRSpec):
        require_monai(spec.name)
        from nnunet_progressive.nnunet.networks.swin_unetr import build_swin_unetr

        return build_swin_unetr(spec, in_channels, out_channels, len(planned_patch))
    if isinstance(spec, PrimusSpec):
        from dynamic_network_architectures.architectures.primus import Primus

        model = Primus(in_channels, spec.embed_dim, (spec.patch_embed_size,) * 3, out_channels, spec.depth,
                       spec.num_heads, planned_patch, drop_path_rate=spec.drop_path_rate,
                       scale_attn_inner=spec.scale_attn_inner, init_values=spec.init_values)
        if follow_grid:
            from nnunet_progressive.nnunet.networks.primus import follow_token_grid

            follow_token_grid(model, planned_patch, spec.patch_embed_size)
        return model
    raise TypeError(f"no builder for {type(spec).__name__}")
