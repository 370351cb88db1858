"""Activation footprint of nnU-Net's convolutional U-Nets (PlainConvUNet, ResidualEncoderUNet), pure.

What autograd keeps for the backward pass of one training forward pass, counted tensor by tensor (a storage
shared by several ops counts once), for the blocks of ``dynamic_network_architectures`` as nnU-Net plans them
(convolution, instance norm, in-place LeakyReLU; no dropout):

- every conv -> norm -> LeakyReLU unit keeps its conv output (for the norm) and its norm output (for the
  in-place non-linearity, which also serves as the next unit's conv input): 2 x channels per voxel;
  without a non-linearity (the second conv of a residual block) the norm output is kept by the in-place
  residual addition's non-linearity: still 2 x channels;
- a residual block's projection skip keeps the pooled input (when it pools) and its 1x1 conv output;
- a decoder stage keeps the concatenation of upsampled and skip features (2 x channels) for its first conv;
- the network input is kept by the first conv; each instance norm keeps a mean, an inverse std and its weight
  repeated per sample (3 float32 values per sample and channel).

Everything else is proportional to the voxels of a resolution level, and a level's voxels are the patch
voxels divided by the level's total stride, so the footprint is proportional to batch x patch voxels (up to
the small per-sample norm statistics): 2 x 128^3 and 64 x (64x32x32) keep the same activations. This is why
PGPS Performance bounds memory by a voxel budget. Checked against torch's own accounting of saved tensors
(tests/test_memory.py). Weights, gradients, optimizer state, the loss and cuDNN workspaces are not included.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nnunet_progressive.core.errors import ProgressiveConfigError

PLAIN_UNET = "PlainConvUNet"
RESIDUAL_ENCODER_UNET = "ResidualEncoderUNet"
SUPPORTED = (PLAIN_UNET, RESIDUAL_ENCODER_UNET)
# bytes per activation element: nnU-Net trains with mixed precision on CUDA (float16 activations) and in
# float32 on the CPU
BYTES_FLOAT16 = 2
BYTES_FLOAT32 = 4
NORM_VALUES_PER_CHANNEL = 3  # an instance norm keeps mean, inverse std and its weight, per sample and channel
NORM_VALUE_BYTES = 4  # in float32, also under mixed precision


@dataclass(frozen=True)
class ConvUNet:
    """The parts of a plan's convolutional U-Net that decide its activation footprint.

    ``blocks_per_stage`` are convolutions per encoder stage (PlainConvUNet) or residual blocks per stage
    (ResidualEncoderUNet); ``strides`` are per stage, nnU-Net's ``arch_kwargs['strides']``.
    """

    kind: str
    input_channels: int
    features_per_stage: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]
    blocks_per_stage: tuple[int, ...]
    convs_per_decoder_stage: tuple[int, ...]

    def __post_init__(self) -> None:
        stages = len(self.features_per_stage)
        if self.kind not in SUPPORTED:
            raise ProgressiveConfigError(f"no activation estimate for {self.kind!r}; supported: {SUPPORTED}")
        if not (len(self.strides) == len(self.blocks_per_stage) == stages and
                len(self.convs_per_decoder_stage) == stages - 1):
            raise ProgressiveConfigError(
                f"inconsistent U-Net description: {stages} stages of features, {len(self.strides)} of strides, "
                f"{len(self.blocks_per_stage)} of blocks, {len(self.convs_per_decoder_stage)} decoder stages "
                f"(expected {stages - 1})")

    @property
    def dims(self) -> int:
        return len(self.strides[0])

    def level_strides(self) -> list[tuple[int, ...]]:
        """The total stride of each resolution level (level 0: the input resolution)."""
        levels, current = [], [1] * self.dims
        for stride in self.strides:
            current = [c * int(s) for c, s in zip(current, stride, strict=True)]
            levels.append(tuple(current))
        return levels

    def saved_channels_per_level(self) -> list[int]:
        """Activation elements kept per voxel of each level and per sample (the input and norm stats excluded)."""
        features = self.features_per_stage
        saved = [0] * len(features)
        if self.kind == RESIDUAL_ENCODER_UNET:
            saved[0] += 2 * features[0]  # the stem: one conv-norm-nonlin unit at the input resolution
        for stage, (channels, blocks) in enumerate(zip(features, self.blocks_per_stage, strict=True)):
            if self.kind == PLAIN_UNET:
                saved[stage] += 2 * channels * blocks
                continue
            saved[stage] += 4 * channels * blocks  # two conv-norm units per residual block
            in_channels = features[stage - 1] if stage > 0 else features[0]
            pools = any(int(s) != 1 for s in self.strides[stage])
            if in_channels != channels:  # projection skip: [avg pool ->] 1x1 conv -> norm
                saved[stage] += channels + (in_channels if pools else 0)
        for decoder_stage, convs in enumerate(self.convs_per_decoder_stage):
            level = len(features) - 2 - decoder_stage
            saved[level] += 2 * features[level] + 2 * features[level] * convs  # concatenation + conv units
        return saved

    def norm_layers_channels(self) -> int:
        """Sum of the channels of every normalisation layer."""
        features = self.features_per_stage
        total = 0
        if self.kind == RESIDUAL_ENCODER_UNET:
            total += features[0]
        for stage, (channels, blocks) in enumerate(zip(features, self.blocks_per_stage, strict=True)):
            if self.kind == PLAIN_UNET:
                total += channels * blocks
            else:
                in_channels = features[stage - 1] if stage > 0 else features[0]
                total += 2 * channels * blocks + (channels if in_channels != channels else 0)
        for decoder_stage, convs in enumerate(self.convs_per_decoder_stage):
            total += features[len(features) - 2 - decoder_stage] * convs
        return total


def conv_unet_from_plan(architecture: Mapping, input_channels: int) -> ConvUNet:
    """A :class:`ConvUNet` from a plan's ``configurations[C]['architecture']`` (nnU-Net >= 2.4 format)."""
    name = str(architecture.get("network_class_name", "")).rsplit(".", 1)[-1]
    kwargs = architecture.get("arch_kwargs", {})
    if name not in SUPPORTED:
        raise ProgressiveConfigError(
            f"no activation estimate for the network class {architecture.get('network_class_name')!r}; "
            f"supported: {SUPPORTED} (nnU-Net's default U-Net and its ResEnc presets)")
    blocks_key = "n_conv_per_stage" if name == PLAIN_UNET else "n_blocks_per_stage"
    try:
        stages = int(kwargs["n_stages"])
        return ConvUNet(
            kind=name,
            input_channels=int(input_channels),
            features_per_stage=_per_stage(kwargs["features_per_stage"], stages),
            strides=tuple(tuple(int(s) for s in stride) for stride in kwargs["strides"]),
            blocks_per_stage=_per_stage(kwargs[blocks_key], stages),
            convs_per_decoder_stage=_per_stage(kwargs["n_conv_per_stage_decoder"], stages - 1),
        )
    except KeyError as missing:
        raise ProgressiveConfigError(f"the plan's arch_kwargs lack {missing}; is it an nnU-Net >= 2.4 plan?") from None


def _per_stage(value, stages: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (int(value),) * stages
    return tuple(int(v) for v in value)


def activation_elements(network: ConvUNet, patch_size: Sequence[int], batch_size: int) -> int:
    """Activation elements kept for backward in one training forward pass (norm statistics excluded)."""
    if len(patch_size) != network.dims:
        raise ProgressiveConfigError(
            f"patch {tuple(patch_size)} has {len(patch_size)} axes, the network {network.dims}")
    per_sample = network.input_channels * math.prod(patch_size)
    for level_stride, channels in zip(network.level_strides(), network.saved_channels_per_level(), strict=True):
        bad = [a for a, (p, s) in enumerate(zip(patch_size, level_stride)) if p % s]
        if bad:
            raise ProgressiveConfigError(
                f"patch {tuple(patch_size)} is not divisible by the total stride {level_stride} on axes {bad}")
        per_sample += channels * math.prod(p // s for p, s in zip(patch_size, level_stride))
    return int(batch_size) * per_sample


def activation_bytes(network: ConvUNet, patch_size: Sequence[int], batch_size: int,
                     bytes_per_element: int = BYTES_FLOAT16) -> int:
    """Bytes of activations kept for backward: elements x ``bytes_per_element`` plus the norm statistics."""
    stats = NORM_VALUES_PER_CHANNEL * int(batch_size) * network.norm_layers_channels() * NORM_VALUE_BYTES
    return activation_elements(network, patch_size, batch_size) * bytes_per_element + stats


def stage_footprints(network: ConvUNet, stages: Sequence[tuple[Sequence[int], int]],
                     bytes_per_element: int = BYTES_FLOAT16) -> list[dict]:
    """Per ``(patch, batch)`` stage: activation bytes and their ratio to the last (planned) stage."""
    sizes = [activation_bytes(network, patch, batch, bytes_per_element) for patch, batch in stages]
    planned = sizes[-1]
    return [{"patch_size": [int(p) for p in patch], "batch_size": int(batch), "activation_bytes": size,
             "relative_to_planned": size / planned} for (patch, batch), size in zip(stages, sizes, strict=True)]
