"""Hyperparameters of the transformer networks, as plain data (the builders in ``nnunet/networks`` read them).

The defaults are the published configurations (sources in each docstring). The ``TINY_*`` specs are the same
architectures shrunk for CPU tests and the offline CPU benchmark; their trainers say "Tiny" in their names.
"""
from __future__ import annotations

from dataclasses import dataclass

from nnunet_progressive.architectures.input_rules import PRIMUS, SWIN_UNETR, UNETR, InputRule


@dataclass(frozen=True)
class UNETRSpec:
    """MONAI ``UNETR`` (Hatamizadeh et al., WACV 2022): a 12-layer ViT on 16-voxel patches and a CNN decoder.

    Defaults: UNETR-B as published (feature size 16, hidden 768, MLP 3072, 12 heads, residual blocks, instance
    norm); MONAI fixes 12 layers and takes skip features after layers 3, 6 and 9. ``proj_type`` "conv" is
    MONAI's default patch projection (the reference script's "perceptron" is the same linear map per patch).
    """

    feature_size: int = 16
    hidden_size: int = 768
    mlp_dim: int = 3072
    num_heads: int = 12
    num_layers: int = 12  # fixed by MONAI's UNETR
    proj_type: str = "conv"
    norm_name: str = "instance"
    res_block: bool = True
    conv_block: bool = True
    dropout_rate: float = 0.0
    qkv_bias: bool = False
    name: str = "UNETR"

    @property
    def rule(self) -> InputRule:
        return UNETR


@dataclass(frozen=True)
class SwinUNETRSpec:
    """MONAI ``SwinUNETR`` (Hatamizadeh et al., BrainLes 2021; Tang et al., CVPR 2022).

    Defaults: feature size 48, depths (2, 2, 2, 2), heads (3, 6, 12, 24), window 7, patch 2, merging
    downsampling, normalised hidden states, as in the authors' BTCV and BraTS reference scripts; no gradient
    checkpointing (it trades compute for memory and would distort time comparisons).
    """

    feature_size: int = 48
    depths: tuple[int, ...] = (2, 2, 2, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    patch_size: int = 2
    mlp_ratio: float = 4.0
    normalize: bool = True
    norm_name: str = "instance"
    use_checkpoint: bool = False
    use_v2: bool = False
    name: str = "SwinUNETR"

    @property
    def rule(self) -> InputRule:
        return SWIN_UNETR


@dataclass(frozen=True)
class PrimusSpec:
    """nnU-Net's ``Primus`` (dynamic_network_architectures): 8^3 patch embedding, an EVA ViT, a patch decoder.

    Defaults: Primus-S as in nnU-Net 2.8.1's ``nnUNet_Primus_S_Trainer`` (embedding 396, depth 12, 6 heads,
    drop path 0.2, attention-inner scaling, layer-scale 0.1, SwiGLU MLP ratio 8/3, rotary and absolute position
    embeddings).
    """

    embed_dim: int = 396
    depth: int = 12
    num_heads: int = 6
    patch_embed_size: int = 8
    mlp_ratio: float = 4 * 2 / 3
    drop_path_rate: float = 0.2
    init_values: float | None = 0.1
    scale_attn_inner: bool = True
    name: str = "Primus-S"

    @property
    def rule(self) -> InputRule:
        return PRIMUS


UNETR_B = UNETRSpec()
SWIN_UNETR_48 = SwinUNETRSpec()
PRIMUS_S = PrimusSpec()
PRIMUS_B = PrimusSpec(embed_dim=792, depth=12, num_heads=12, name="Primus-B")
PRIMUS_M = PrimusSpec(embed_dim=864, depth=16, num_heads=12, name="Primus-M")
PRIMUS_L = PrimusSpec(embed_dim=1056, depth=24, num_heads=16, name="Primus-L")
PRIMUS_SIZES = {"S": PRIMUS_S, "B": PRIMUS_B, "M": PRIMUS_M, "L": PRIMUS_L}

# shrunk for CPU tests and the offline CPU benchmark (same architecture, few features)
TINY_UNETR = UNETRSpec(feature_size=4, hidden_size=48, mlp_dim=96, num_heads=4, name="TinyUNETR")
TINY_SWIN_UNETR = SwinUNETRSpec(feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4), name="TinySwinUNETR")
TINY_PRIMUS = PrimusSpec(embed_dim=48, depth=2, num_heads=2, drop_path_rate=0.0, name="TinyPrimus")
