"""Activation memory of one training sample of UNETR, SwinUNETR and Primus, as a pure function of the patch.

PGPS Performance enlarges the batch while patches are small and keeps batch x (memory of one sample) within
the planned footprint. For nnU-Net's U-Nets a sample's activation memory is proportional to its voxels; for the
transformers it is not: MONAI's UNETR and SwinUNETR keep full attention matrices (heads x tokens^2 per layer, or
per window), and SwinUNETR pads every stage's token grid to whole 7-voxel windows, which costs most on small
patches. These functions count, layer by layer, the values autograd keeps for backward in one forward pass
(what grows with batch and patch; weights, gradients and optimiser state do not), following the modules of
MONAI 1.5/1.6 and dynamic_network_architectures 0.4. ``tests/test_nnunet_networks.py`` checks them against
torch's own accounting (``saved_tensors_hooks``) on small networks.

What saved tensors do not show: on an H200 (torch 2.11, fp16 autocast; BENCHMARKS.md "PGPS on a GPU") the peak of
every measured Performance stage followed this estimate except the very first of UNETR-B (32x16x16, batch 575: 2
tokens per sample) and Primus-S (16x8x8, batch 4096: 2 tokens), which peaked 10% and 16% above the planned stage.
``unmodelled_sample_bytes`` adds that excess back as a cost per sample (fitted there, scaled to other widths), so
``sample_cost`` keeps the first stage within the planned peak; it lowers the batch of the next two stages by 3-8%
and of every later one by under 3%.
The mechanism is not identified (candidates: attention kernels padding a 2-token sequence to their block size,
convolution workspaces at batches of hundreds); re-check with ``scripts/gpu_check_architectures.py`` on a GPU.

Precision: in fp32 every value takes 4 bytes. Under fp16 autocast (nnU-Net's default on CUDA) activations take 2
bytes but attention probabilities stay fp32 (autocast runs softmax in fp32), so the attention share grows; pass
``mixed_precision=True`` to weigh them so. Primus uses PyTorch's fused attention (memory linear in tokens).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nnunet_progressive.architectures.input_rules import check_patch
from nnunet_progressive.architectures.specs import PrimusSpec, SwinUNETRSpec, UNETRSpec

Spec = UNETRSpec | SwinUNETRSpec | PrimusSpec


@dataclass(frozen=True)
class ActivationCount:
    """Values kept for backward by one sample: ``activations`` (feature maps, tokens) and ``attention``
    (attention probabilities, fp32 even under autocast)."""

    activations: int
    attention: int

    def bytes(self, mixed_precision: bool = False) -> int:
        return (2 if mixed_precision else 4) * self.activations + 4 * self.attention

    def __add__(self, other: ActivationCount) -> ActivationCount:
        return ActivationCount(self.activations + other.activations, self.attention + other.attention)


def _res_block(in_channels: int, out_channels: int, voxels: int, count_input: bool = False) -> int:
    """MONAI ``UnetResBlock``: conv outputs before both norms, two activations, a 1x1 residual conv if the
    channel count changes; the block input only when nothing else keeps it (``count_input``)."""
    kept = 4 * out_channels * voxels + (out_channels * voxels if in_channels != out_channels else 0)
    return kept + (in_channels * voxels if count_input else 0)


def _up_block(in_channels: int, out_channels: int, voxels: int) -> int:
    """MONAI ``UnetrUpBlock`` at its output resolution: the concatenation (2 x out) and a residual block on it."""
    return 2 * out_channels * voxels + _res_block(2 * out_channels, out_channels, voxels)


def unetr_activations(spec: UNETRSpec, patch: Sequence[int], in_channels: int, out_channels: int) -> ActivationCount:
    """One sample of MONAI's UNETR on ``patch`` (2D or 3D, multiples of 16)."""
    check_patch(patch, spec.rule)
    ndim = len(patch)
    voxels = math.prod(patch)
    up = 2**ndim  # voxel ratio between two resolutions of the decoder
    tokens = voxels // spec.rule.token_size**ndim
    f, hidden, heads = spec.feature_size, spec.hidden_size, spec.num_heads
    per_layer = 7 * tokens * hidden + 2 * tokens * spec.mlp_dim + 4 * tokens  # norms, qkv, q/k/v, proj, mlp
    vit = spec.num_layers * per_layer + tokens * hidden + 2 * tokens  # + final norm
    feature_maps = 4 * hidden * tokens  # token sequences reshaped to maps for encoder2-4 and decoder5
    cnn = (
        _res_block(in_channels, f, voxels)  # encoder1 at full resolution
        + 2 * f * (5 * voxels // up + 5 * voxels // up**2 + voxels // up**3)  # encoder2: 3 upsamplings
        + 4 * f * (5 * voxels // up**2 + voxels // up**3)  # encoder3: 2 upsamplings
        + _up_block(hidden, 8 * f, voxels // up**3)  # decoder5
        + _up_block(8 * f, 4 * f, voxels // up**2)  # decoder4
        + _up_block(4 * f, 2 * f, voxels // up)  # decoder3
        + _up_block(2 * f, f, voxels)  # decoder2
    )
    attention = spec.num_layers * heads * tokens**2
    return ActivationCount(vit + feature_maps + cnn, attention)


def _swin_windows(grid: Sequence[int], window: int) -> tuple[int, int]:
    """(padded tokens, tokens per window) of one stage: windows clipped to the grid, the grid padded to them."""
    clipped = [min(window, g) for g in grid]
    padded = math.prod(math.ceil(g / w) * w for g, w in zip(grid, clipped, strict=True))
    return padded, math.prod(clipped)


def swin_unetr_activations(spec: SwinUNETRSpec, patch: Sequence[int], in_channels: int,
                           out_channels: int) -> ActivationCount:
    """One sample of MONAI's SwinUNETR on ``patch`` (2D or 3D, multiples of 32)."""
    check_patch(patch, spec.rule)
    ndim = len(patch)
    voxels = math.prod(patch)
    f = spec.feature_size
    grids = [tuple(p // (spec.patch_size * 2**stage) for p in patch) for stage in range(5)]
    tokens = [math.prod(g) for g in grids]
    channels = [f * 2**stage for stage in range(5)]
    activations = tokens[0] * channels[0] + sum(2 * t for t in tokens)  # patch embedding; proj_out statistics
    attention = 0
    for stage, (depth, heads) in enumerate(zip(spec.depths, spec.num_heads, strict=True)):
        t, c = tokens[stage], channels[stage]
        padded, per_window = _swin_windows(grids[stage], spec.window_size)
        mlp = int(spec.mlp_ratio * c)
        # windows into qkv, q (scaled), k, v, attention output into proj; with one head k and v stay views of
        # the qkv output, which is then kept whole (3 values per token) besides the scaled q
        attention_path = (5 + (1 if heads == 1 else 0)) * padded * c
        block = attention_path + 2 * t * c + 4 * t + t * c + 2 * t * mlp  # + norm statistics, norm2, mlp
        activations += depth * block + (depth - 1) * t * c  # later blocks keep their input
        attention += depth * heads * (padded // per_window) * per_window**2
        activations += 2 * t * c + 2 * (t // 2**ndim)  # patch merging: norm and reduction inputs
        activations += tokens[stage + 1] * channels[stage + 1] * (2 if stage < 3 else 1)  # proj_out, next input
    activations += (
        _res_block(in_channels, f, voxels)  # encoder1
        + _res_block(f, f, tokens[0], count_input=True)  # encoder2 .. encoder4, encoder10 on hidden states
        + _res_block(2 * f, 2 * f, tokens[1], count_input=True)
        + _res_block(4 * f, 4 * f, tokens[2], count_input=True)
        + _res_block(16 * f, 16 * f, tokens[4], count_input=True)
        + _up_block(16 * f, 8 * f, tokens[3])  # decoder5 .. decoder1
        + _up_block(8 * f, 4 * f, tokens[2])
        + _up_block(4 * f, 2 * f, tokens[1])
        + _up_block(2 * f, f, tokens[0])
        + _up_block(f, f, voxels)
    )
    return ActivationCount(activations, attention)


def primus_decoder_channels(embed_dim: int, out_channels: int, stages: int) -> list[int]:
    """Channels of Primus' patch decoder, embedding first (dynamic_network_architectures' PatchDecode rule:
    geometric steps from the embedding to twice the classes, rounded to multiples of 8, the last = classes)."""
    ratio = (embed_dim / (2 * out_channels)) ** (1 / stages)
    channels = [embed_dim] + [int(max(8, round((embed_dim / ratio ** (k + 1) + 1e-6) / 8) * 8))
                              for k in range(stages)]
    channels[-1] = out_channels
    return channels


def primus_activations(spec: PrimusSpec, patch: Sequence[int], in_channels: int,
                       out_channels: int) -> ActivationCount:
    """One sample of nnU-Net's Primus on ``patch`` (3D, multiples of 8); fused attention keeps no matrix."""
    check_patch(patch, spec.rule)
    tokens = math.prod(patch) // spec.patch_embed_size**3
    e, heads = spec.embed_dim, spec.num_heads
    mlp = int(spec.mlp_ratio * e)
    # norm1 (input, statistics), q/k/v input, q, k, v, attention output, proj input, norm2, fc1 input
    block = 9 * tokens * e + 6 * tokens + heads * tokens  # (+ the fused attention's log-sum-exp per head)
    block += 5 * tokens * mlp  # SwiGLU: activation input, gate x value (both kept), its norm, fc2 input
    block += tokens * e + 2 * tokens if spec.scale_attn_inner else 0  # norm inside attention
    block += 2 * tokens * e if spec.init_values is not None else 0  # layer scale after attention and mlp
    encoder = spec.depth * block + tokens * e + 2 * tokens  # + final norm
    stages = int(math.log2(spec.patch_embed_size))
    channels = primus_decoder_channels(e, out_channels, stages)
    decoder = tokens * e  # the token map into the first transposed convolution
    for stage in range(1, stages):
        stage_voxels = tokens * 8**stage
        decoder += 5 * channels[stage] * stage_voxels + stage_voxels  # norm (3 + statistics), activation
    return ActivationCount(encoder + decoder, 0)


def activations(spec: Spec, patch: Sequence[int], in_channels: int, out_channels: int) -> ActivationCount:
    """Values one sample keeps for backward in ``spec``'s network at ``patch``."""
    if isinstance(spec, UNETRSpec):
        return unetr_activations(spec, patch, in_channels, out_channels)
    if isinstance(spec, SwinUNETRSpec):
        return swin_unetr_activations(spec, patch, in_channels, out_channels)
    if isinstance(spec, PrimusSpec):
        return primus_activations(spec, patch, in_channels, out_channels)
    raise TypeError(f"no memory estimate for {type(spec).__name__}")


MIB = 2**20
# Excess peak per sample at the first Performance stage on the H200, in the estimate's units (bytes of values kept
# under fp16 autocast): (peak - fitted peak) / batch / k, with k the slope of the measured peak over the estimate
# across the Efficiency stages (1.34 UNETR-B, 1.52 Primus-S)
# from docs/results/gpu_h200_2026-11-30/gpu_check_architectures.csv. Widths in between scale linearly.
UNETR_B_SAMPLE_EXCESS = 0.48 * MIB  # hidden 768, 12 layers
PRIMUS_S_SAMPLE_EXCESS = 0.082 * MIB  # embedding 396, depth 12


def unmodelled_sample_bytes(spec: Spec) -> float:
    """GPU memory per sample beyond the values autograd keeps, as measured (see the module docstring); scaled by the
    ViT's width x depth from the measured size. SwinUNETR showed none."""
    if isinstance(spec, UNETRSpec):
        return UNETR_B_SAMPLE_EXCESS * spec.hidden_size * spec.num_layers / (768 * 12)
    if isinstance(spec, PrimusSpec):
        return PRIMUS_S_SAMPLE_EXCESS * spec.embed_dim * spec.depth / (396 * 12)
    return 0.0


def sample_cost(spec: Spec, in_channels: int, out_channels: int,
                mixed_precision: bool = True) -> Callable[[tuple[int, ...]], float]:
    """The memory of one sample as a function of the patch (bytes), for the PGPS schedule's Performance batch:
    the values it keeps for backward plus the measured per-sample excess."""
    excess = unmodelled_sample_bytes(spec)

    def cost(patch: tuple[int, ...]) -> float:
        return float(activations(spec, patch, in_channels, out_channels).bytes(mixed_precision)) + excess

    return cost
