"""MONAI's SwinUNETR (>= 1.5: no input size at construction; any multiple of 32 per axis).

Nothing in it is tied to the input grid (windows and their relative position biases are local; the shifted-window
masks are built per input), so the same module trains every PGPS stage. Imports MONAI: import this module only
through :func:`nnunet_progressive.nnunet.networks.builders.build_network`.
"""
from __future__ import annotations

from monai.networks.nets import SwinUNETR
from torch import nn

from nnunet_progressive.architectures.specs import SwinUNETRSpec


def build_swin_unetr(spec: SwinUNETRSpec, in_channels: int, out_channels: int, ndim: int) -> nn.Module:
    """MONAI's SwinUNETR as ``spec`` says (2D or 3D)."""
    extra = {} if spec.patch_size == 2 else {"patch_size": spec.patch_size}
    return SwinUNETR(
        in_channels=in_channels, out_channels=out_channels, feature_size=spec.feature_size, depths=spec.depths,
        num_heads=spec.num_heads, window_size=spec.window_size, mlp_ratio=spec.mlp_ratio,
        norm_name=spec.norm_name, normalize=spec.normalize, use_checkpoint=spec.use_checkpoint,
        spatial_dims=ndim, downsample="merging", use_v2=spec.use_v2, **extra)
