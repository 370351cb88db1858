"""Which input patches each architecture accepts, and the planned patch adjusted to that rule.

nnU-Net plans a patch for its own U-Net (every axis a multiple of that axis' total pooling stride). The
transformers have their own rule: MONAI's UNETR cuts 16-voxel ViT patches, MONAI's SwinUNETR (>= 1.5) needs
every axis divisible by ``patch_size ** 5`` = 32, and nnU-Net's Primus embeds 8^3-voxel tokens and is built for
one input shape. The planned patch is adjusted once, here, by the rule nnU-Net's own planner uses to make a
patch divisible (``pad_shape``: each axis up to the next multiple), which is also what the published nnU-Net
ports of UNETR and SwinUNETR do.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from nnunet_progressive.core.errors import ProgressiveConfigError


@dataclass(frozen=True)
class InputRule:
    """The patches an architecture accepts.

    Attributes:
        architecture: its name in messages.
        multiple: every spatial axis must be a positive multiple of this many voxels.
        spatial_dims: the dimensionalities it is implemented for (2 and/or 3).
        token_size: voxels per token along each axis (the grid its attention runs on).
        fixed_grid: the published network is built for one input shape (learned position embeddings, rotary
            embeddings or reshapes tied to the planned token grid), so growing patches need embeddings that
            follow each stage's grid.
        source: where the rule comes from.
        coarsest_min_voxels: voxels the coarsest grid (patch / multiple) needs in training: 2 where an instance
            norm runs on it (SwinUNETR's bottleneck block), else 1.
    """

    architecture: str
    multiple: int
    spatial_dims: tuple[int, ...]
    token_size: int
    fixed_grid: bool
    source: str
    coarsest_min_voxels: int = 1

    def per_axis(self, ndim: int) -> tuple[int, ...]:
        """The multiple for each of ``ndim`` axes."""
        return (self.multiple,) * ndim


UNETR = InputRule("UNETR", 16, (2, 3), 16, True,
                  "MONAI UNETR: non-overlapping 16-voxel ViT patches, learned position embeddings per patch")
SWIN_UNETR = InputRule("SwinUNETR", 32, (2, 3), 2, False,
                       "MONAI SwinUNETR (>= 1.5): 2-voxel patches merged 4 times, every axis divisible by 2**5",
                       coarsest_min_voxels=2)
PRIMUS = InputRule("Primus", 8, (3,), 8, True,
                   "nnU-Net Primus (dynamic_network_architectures): 8^3-voxel tokens, input shape fixed at "
                   "construction, learned absolute and 3D rotary position embeddings")

RULES = {rule.architecture: rule for rule in (UNETR, SWIN_UNETR, PRIMUS)}


def check_dimensions(rule: InputRule, ndim: int, configuration: str) -> None:
    """Raise if ``rule``'s architecture has no ``ndim``-D implementation (e.g. Primus on ``2d``)."""
    if ndim not in rule.spatial_dims:
        supported = " or ".join(f"{d}D" for d in rule.spatial_dims)
        raise ProgressiveConfigError(
            f"{rule.architecture} is implemented for {supported} patches only, but configuration "
            f"{configuration!r} has a {ndim}D patch; train a "
            f"{'3d_fullres (or 3d_lowres)' if 3 in rule.spatial_dims else '2d'} configuration instead"
        )


def adjust_patch(planned_patch: Sequence[int], rule: InputRule) -> tuple[int, ...]:
    """The planned patch with every axis raised to the next multiple of ``rule.multiple`` (at least one).

    If the coarsest grid then holds fewer than ``rule.coarsest_min_voxels`` voxels (a tiny plan on SwinUNETR), the
    longest planned axis (ties: the first) grows by further multiples until it does. Idempotent: a patch that
    already satisfies the rule is returned unchanged. The batch size is left as planned (what the published
    ports do).
    """
    if not planned_patch or any(int(p) < 1 for p in planned_patch):
        raise ProgressiveConfigError(f"a patch needs positive sizes, got {tuple(planned_patch)}")
    m = rule.multiple
    adjusted = [max(m, math.ceil(int(p) / m) * m) for p in planned_patch]
    longest = max(range(len(adjusted)), key=lambda axis: (int(planned_patch[axis]), -axis))
    while math.prod(a // m for a in adjusted) < rule.coarsest_min_voxels:
        adjusted[longest] += m
    return tuple(adjusted)


def check_patch(patch: Sequence[int], rule: InputRule, what: str = "the patch") -> None:
    """Raise if ``patch`` breaks ``rule`` (every axis a positive multiple of ``rule.multiple``)."""
    bad = [axis for axis, p in enumerate(patch) if int(p) < rule.multiple or int(p) % rule.multiple]
    if bad:
        raise ProgressiveConfigError(
            f"{what} {tuple(patch)} is not a multiple of {rule.multiple} on axes {bad}, which "
            f"{rule.architecture} needs ({rule.source}); use {adjust_patch(patch, rule)}"
        )


def token_grid(patch: Sequence[int], rule: InputRule) -> tuple[int, ...]:
    """The grid of tokens ``rule``'s architecture cuts ``patch`` into (the first attention stage's grid)."""
    check_patch(patch, rule)
    return tuple(int(p) // rule.token_size for p in patch)
