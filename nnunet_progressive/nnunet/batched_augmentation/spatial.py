"""The spatial steps of nnU-Net 2.8.1's training augmentation, batched (batchgeneratorsv2 semantics).

- :class:`BatchedSpatialTransform`: bgv2's ``SpatialTransform`` as nnU-Net configures it (center crop of the
  initial patch, rotation p 0.2, scaling p 0.2 synchronised across axes, no elastic deformation, image bilinear
  with zeros padding, segmentation as the argmax of bilinearly resampled one-hot labels with bgv2's 'nearest'
  tie-break and padding label ``padding_value_seg``). Parameters are drawn per sample; all transformed samples
  share ONE ``grid_sample`` call for the image and one for the label scores; samples drawn without rotation and
  scaling are a pure center crop, as in bgv2.
- :class:`BatchedConvert3DTo2D` / :class:`BatchedConvert2DTo3D`: nnU-Net's dummy-2D wrapping (the first spatial
  axis folded into the channels).
- :class:`BatchedMirror`: bgv2's ``MirrorTransform``, each allowed axis flipped with p 0.5 per sample.
- :class:`BatchedDownsampleSegForDS`: bgv2's ``DownsampleSegForDSTransform`` ('nearest-exact' per scale).

Given the same per-sample parameters, the outputs equal bgv2's bit for bit on CPU (tests pin it: grids, images
and label maps compared with ``==``). On another device the same torch calls run there, so results can differ
from CPU in the last float bits, as any CPU/GPU pair does. What differs from bgv2 is only the random stream:
parameters are drawn with torch's generator for the whole batch at once instead of numpy's per sample, with the
same probabilities and ranges (the order of draws, hence the values for a given seed, are not bgv2's).

Cost: the segmentation is resampled as one float32 indicator channel per label present anywhere in the batch
(per segmentation channel), so the label step holds B x labels x initial-patch voxels x 4 bytes at once (3.4 GB
peak RSS measured at B 64, initial patch 102^3, 5 labels on CPU); bgv2 holds one such volume per sample. bgv2's
two-label shortcut (one score against half the scale) is reproduced as its own branch: it can differ from the
general argmax where float16 rounding of the two scores does not mirror, so both are kept.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.nn.functional import grid_sample, interpolate

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.nnunet.batched_augmentation.base import Batch, BatchedTransform, batch_size_of

# bgv2 resamples one-hot label indicators scaled by this and rounds the scores to float16; both are part of its
# tie behaviour (near ties collapse into exact ones), so they are kept.
SEG_SCORE_SCALE = 1000.0


def _uniform(low: float, high: float, size: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(size, dtype=torch.float64, generator=generator)


def sample_random_scalar(value: Any, size: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """bgv2's ``sample_scalar`` for many draws: a number is constant, a (low, high) pair is uniform in it."""
    if isinstance(value, (int, float)):
        return torch.full(size, float(value), dtype=torch.float64)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = float(value[0]), float(value[1])
        if low > high:
            raise ProgressiveConfigError(f"batched augmentation: range {tuple(value)} has low > high; "
                                         "give it as (low, high)")
        if low == high:
            return torch.full(size, low, dtype=torch.float64)
        return _uniform(low, high, size, generator)
    raise ProgressiveConfigError(f"batched augmentation: cannot draw from {value!r} ({type(value).__name__}); "
                                 "give a number or a (low, high) pair (callables are not batched)")


def affine_matrices(angles: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Per-sample rotation-times-scaling matrices, float64 (n, dim, dim), as bgv2's ``create_affine_matrix_*d``.

    3D: Rz(a2) @ Ry(a1) @ Rx(a0) @ diag(scales); 2D: R(a[-1]) @ diag(scales) (bgv2 draws an angle per axis in
    2D too and uses the last).
    """
    angles = angles.to(torch.float64)
    scales = scales.to(torch.float64)
    n, dim = scales.shape
    scaling = torch.diag_embed(scales)
    if dim == 2:
        c, s = torch.cos(angles[:, -1]), torch.sin(angles[:, -1])
        rotation = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
        return rotation @ scaling
    if dim != 3:
        raise ProgressiveConfigError(f"batched augmentation: {dim} spatial axes; only 2D and 3D data are supported")
    one, zero = torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    cx, sx = torch.cos(angles[:, 0]), torch.sin(angles[:, 0])
    cy, sy = torch.cos(angles[:, 1]), torch.sin(angles[:, 1])
    cz, sz = torch.cos(angles[:, 2]), torch.sin(angles[:, 2])
    rx = torch.stack([torch.stack([one, zero, zero], -1), torch.stack([zero, cx, -sx], -1),
                      torch.stack([zero, sx, cx], -1)], -2)
    ry = torch.stack([torch.stack([cy, zero, sy], -1), torch.stack([zero, one, zero], -1),
                      torch.stack([-sy, zero, cy], -1)], -2)
    rz = torch.stack([torch.stack([cz, -sz, zero], -1), torch.stack([sz, cz, zero], -1),
                      torch.stack([zero, zero, one], -1)], -2)
    return rz @ ry @ rx @ scaling


def center_crop_batch(tensor: torch.Tensor, patch_size: Sequence[int], pad_value: float) -> torch.Tensor:
    """bgv2's ``crop_tensor`` at center floor(shape / 2) for a (B, C, *spatial) batch, padding with ``pad_value``."""
    spatial = tensor.shape[2:]
    slices: list[slice] = [slice(None), slice(None)]
    pad: list[int] = []
    for size, crop in zip(spatial, patch_size):
        first = size // 2 - crop // 2
        start = min(max(0, first), size)
        end = max(min(size, max(0, first) + crop), 0)
        before = max(0, -first)
        slices.append(slice(start, end))
        pad.append(before)
        pad.append(crop - (end - start) - before)
    cropped = tensor[tuple(slices)]
    # torch's pad lists the last axis first
    pad_width = [w for axis in range(len(spatial) - 1, -1, -1) for w in (pad[2 * axis], pad[2 * axis + 1])]
    if any(pad_width):
        cropped = torch.nn.functional.pad(cropped, pad_width, mode="constant", value=pad_value)
    return cropped


_BASE_GRIDS: dict[tuple[tuple[int, ...], str], torch.Tensor] = {}


def centered_identity_grid(patch_size: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """Pixel coordinates of the patch relative to its center, (*patch_size, dim) float32 (bgv2's base grid)."""
    key = (tuple(int(s) for s in patch_size), str(device))
    grid = _BASE_GRIDS.get(key)
    if grid is None:
        axes = [torch.linspace((1 - s) / 2, (s - 1) / 2, s) for s in key[0]]
        grid = torch.stack(torch.meshgrid(axes, indexing="ij"), -1).float().contiguous().to(device)
        _BASE_GRIDS[key] = grid
    return grid


def sampling_grids(affines: torch.Tensor, patch_size: Sequence[int], input_shape: Sequence[int],
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """One ``grid_sample`` grid per sample, (n, *patch_size, dim), centered on the input (bgv2's construction).

    The patch's pixel coordinates (relative to its center) are mapped by each affine, then normalised by half the
    input size per axis (``align_corners=False``: -1 and 1 are the outer edges of the input) and put in
    grid_sample's reversed axis order. The center of rotation and the crop center coincide at input_shape / 2.
    """
    base = centered_identity_grid(patch_size, device)
    dim = base.shape[-1]
    # grid points are row vectors, so each is multiplied by the transposed affine (bgv2: grid @ affine.T)
    transposed = affines.transpose(1, 2).to(torch.float32).to(device)
    grid = torch.matmul(base.reshape(1, -1, dim), transposed)
    for axis, size in enumerate(input_shape):
        grid[..., axis] /= size / 2
    return grid.flip(-1).reshape(affines.shape[0], *base.shape)


class BatchedSpatialTransform(BatchedTransform):
    """bgv2's ``SpatialTransform`` with nnU-Net's settings, for a batch.

    Supported: ``random_crop=False`` (the patch is the center of the input), no elastic deformation, image
    bilinear with zeros padding and ``align_corners=False``, segmentation ``mode_seg`` 'bilinear' (bgv2's default:
    argmax over the resampled one-hot labels, ties settled by the nearest neighbour; nnU-Net uses it) or
    'nearest', ``border_mode_seg`` 'constant' or 'zeros'. ``bg_style_seg_sampling`` only chooses between two
    bit-identical bgv2 code paths and is accepted for the signature.
    """

    def __init__(self, patch_size: Sequence[int], patch_center_dist_from_border: Any = 0, random_crop: bool = False,
                 p_elastic_deform: float = 0, p_rotation: float = 0, rotation: Any = (0, 6.283185307179586),
                 p_rot_per_axis: float = 1, p_scaling: float = 0, scaling: Any = (0.7, 1.3),
                 p_synchronize_scaling_across_axes: float = 0, bg_style_seg_sampling: bool = False,
                 mode_seg: str = "bilinear", border_mode_seg: str = "zeros", padding_value_seg: float = 0):
        where = "BatchedSpatialTransform"
        if random_crop:
            raise ProgressiveConfigError(f"{where}: random_crop=True is not batched; nnU-Net uses random_crop=False "
                                         "(its loader already placed the initial patch)")
        if p_elastic_deform > 0:
            raise ProgressiveConfigError(f"{where}: elastic deformation (p_elastic_deform={p_elastic_deform}) is "
                                         "not batched; nnU-Net 2.8.1 uses p_elastic_deform=0")
        if mode_seg not in ("bilinear", "nearest"):
            raise ProgressiveConfigError(f"{where}: mode_seg={mode_seg!r}; use 'bilinear' (nnU-Net) or 'nearest'")
        if border_mode_seg not in ("constant", "zeros"):
            raise ProgressiveConfigError(f"{where}: border_mode_seg={border_mode_seg!r}; use 'constant' (nnU-Net) "
                                         "or 'zeros'")
        self.patch_size = tuple(int(s) for s in patch_size)
        self.p_rotation = p_rotation
        self.rotation = rotation
        self.p_rot_per_axis = p_rot_per_axis
        self.p_scaling = p_scaling
        self.scaling = scaling
        self.p_synchronize_scaling_across_axes = p_synchronize_scaling_across_axes
        self.mode_seg = mode_seg
        self.pad_label = float(padding_value_seg) if border_mode_seg == "constant" else 0.0
        self.generator: torch.Generator | None = None

    # ---- parameters -------------------------------------------------------------------------------------------
    def get_parameters(self, batch: Batch) -> dict[str, Any]:
        """Per sample, as bgv2's ``get_parameters``: rotation with p_rotation (an angle per axis, each kept with
        p_rot_per_axis), scaling with p_scaling (one factor for all axes with p_synchronize_scaling_across_axes,
        else one per axis). ``affine`` is float64 (B, dim, dim), identity where ``transformed`` is False."""
        n = batch_size_of(batch)
        dim = batch["image"].ndim - 2
        gen = self.generator
        do_rotation = torch.rand(n, generator=gen) < self.p_rotation
        do_scaling = torch.rand(n, generator=gen) < self.p_scaling
        angles = sample_random_scalar(self.rotation, (n, dim), gen)
        if self.p_rot_per_axis < 1:
            angles = torch.where(torch.rand((n, dim), generator=gen) > self.p_rot_per_axis, 0.0, angles)
        angles = torch.where(do_rotation[:, None], angles, 0.0)
        synchronized = torch.rand(n, generator=gen) <= self.p_synchronize_scaling_across_axes
        shared = sample_random_scalar(self.scaling, (n, 1), gen).expand(n, dim)
        per_axis = sample_random_scalar(self.scaling, (n, dim), gen)
        scales = torch.where(synchronized[:, None], shared, per_axis)
        scales = torch.where(do_scaling[:, None], scales, 1.0)
        transformed = do_rotation | do_scaling
        return {"transformed": transformed, "affine": affine_matrices(angles, scales),
                "angles": angles, "scales": scales}

    # ---- application ------------------------------------------------------------------------------------------
    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        image = batch["image"]
        segmentation = batch.get("segmentation")
        if image.ndim - 2 != len(self.patch_size):
            raise ProgressiveConfigError(f"BatchedSpatialTransform: image of shape {tuple(image.shape)} has "
                                         f"{image.ndim - 2} spatial axes but patch_size {self.patch_size} has "
                                         f"{len(self.patch_size)}; give (B, C, *spatial)")
        out = dict(batch)
        selected = params["transformed"].nonzero().flatten()
        if selected.numel() == 0:
            # bgv2's crop without interpolation; copied (bgv2 returns a view) so that later in-place steps
            # never write into the loader's batch
            out["image"] = center_crop_batch(image, self.patch_size, 0.0).clone()
            if segmentation is not None:
                out["segmentation"] = center_crop_batch(segmentation, self.patch_size, self.pad_label).clone()
            return out
        grids = sampling_grids(params["affine"][selected.cpu()], self.patch_size, image.shape[2:], image.device)
        if selected.numel() == batch_size_of(batch):
            out["image"] = grid_sample(image, grids, mode="bilinear", padding_mode="zeros", align_corners=False)
            if segmentation is not None:
                out["segmentation"] = self.resample_segmentation(segmentation, grids)
            return out
        # some samples transformed: crop all (copies, never views of the input), then overwrite the transformed
        index = selected.to(image.device)
        out["image"] = center_crop_batch(image, self.patch_size, 0.0).clone()
        out["image"][index] = grid_sample(image[index], grids, mode="bilinear", padding_mode="zeros",
                                          align_corners=False)
        if segmentation is not None:
            out["segmentation"] = center_crop_batch(segmentation, self.patch_size, self.pad_label).clone()
            out["segmentation"][index] = self.resample_segmentation(segmentation[index], grids)
        return out

    def _nearest(self, segmentation: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
        # grid_sample pads with zeros only; shifting by the padding label makes the padding that label
        shift = self.pad_label
        return (grid_sample(segmentation.float() - shift, grids, mode="nearest", padding_mode="zeros",
                            align_corners=False) + shift).to(segmentation.dtype)

    def _reaches_outside(self, grids: torch.Tensor, input_shape: Sequence[int]) -> torch.Tensor:
        """Per sample: may a bilinear kernel read outside the input (bgv2's ``_may_reach_outside``)?"""
        bound = min(1 - 1 / size for size in input_shape)
        flat = grids.reshape(grids.shape[0], -1)
        low, high = flat.amin(1).double(), flat.amax(1).double()
        return ~((-low <= bound) & (high <= bound))

    def resample_segmentation(self, segmentation: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
        """bgv2's segmentation resampling for every sample at once.

        Per sample and channel bgv2 takes the labels present (plus the padding label where a kernel may reach
        outside), and then: one label -> that label; two -> the second where its score passes half the scale,
        the nearest neighbour at an exact tie; more -> the argmax of the float16 scores (first label on ties),
        replaced by the nearest neighbour where that one's score equals the top score. Here every label present
        anywhere in the batch is scored for every sample in ONE grid_sample call; a label absent from a sample
        gets score -inf there, which reproduces bgv2's per-sample label lists exactly.
        """
        if self.mode_seg == "nearest":
            return self._nearest(segmentation, grids)
        n, channels = segmentation.shape[:2]
        reach = self._reaches_outside(grids, segmentation.shape[2:]).to(segmentation.device)
        pad = torch.tensor(self.pad_label, dtype=segmentation.dtype, device=segmentation.device)
        any_reach = bool(reach.any())
        labels_per_channel: list[torch.Tensor] = []
        for c in range(channels):
            labels = _labels_present(segmentation[:, c])
            if any_reach and not bool((labels == pad).any()):
                # bgv2 lists the padding label for the samples whose kernels may reach outside
                position = int((labels < pad).sum())
                labels = torch.cat([labels[:position], pad[None], labels[position:]])
            labels_per_channel.append(labels)
        total = sum(labels.numel() for labels in labels_per_channel)
        spatial_ones = [1] * (segmentation.ndim - 2)
        # every (channel, label) indicator, scaled, is one input channel of the single grid_sample call: bgv2's
        # indicator * scale, or for the padding label of a sample that may reach outside (indicator - 1) * scale
        # (sampled with zeros padding, the scale added back after), which is 1 outside the image
        indicators = torch.empty((n, total, *segmentation.shape[2:]), dtype=torch.float32,
                                 device=segmentation.device)
        listed_per_channel: list[torch.Tensor] = []
        offsets: dict[int, torch.Tensor] = {}
        row = 0
        for c, labels in enumerate(labels_per_channel):
            listed = []
            for u in labels.tolist():
                is_label = segmentation[:, c] == u
                indicators[:, row].copy_(is_label)
                # bgv2 lists a sample's own labels, plus the padding label where a kernel may reach outside
                in_sample = is_label.reshape(n, -1).any(1)
                if any_reach and u == pad.item():
                    in_sample = in_sample | reach
                    offsets[row] = torch.where(reach, SEG_SCORE_SCALE, 0.0)
                listed.append(in_sample)
                row += 1
            listed_per_channel.append(torch.stack(listed, 1))
        indicators.mul_(SEG_SCORE_SCALE)
        for row, offset in offsets.items():
            indicators[:, row] -= offset.view(n, *spatial_ones)
        scores = grid_sample(indicators, grids, mode="bilinear", padding_mode="zeros", align_corners=False)
        del indicators
        for row, offset in offsets.items():
            scores[:, row] += offset.view(n, *spatial_ones)
        scores = scores.to(torch.float16)
        nearest = self._nearest(segmentation, grids)
        result = torch.empty((n, channels, *grids.shape[1:-1]), dtype=segmentation.dtype,
                             device=segmentation.device)
        offset = 0
        for c, labels in enumerate(labels_per_channel):
            count = labels.numel()
            channel_scores = scores[:, offset:offset + count]
            offset += count
            result[:, c] = _label_argmax(channel_scores, labels, listed_per_channel[c], nearest[:, c])
        return result


def _labels_present(channel: torch.Tensor) -> torch.Tensor:
    """The sorted labels present in a label tensor, by counting (one pass, no sort) when their values span a
    small range."""
    low, high = (int(v) for v in torch.aminmax(channel))
    if high - low >= 1 << 20:
        return torch.unique(channel)
    shifted = channel.flatten() - low if low != 0 else channel.flatten()
    counts = torch.bincount(shifted, minlength=high - low + 1)
    return (counts.nonzero().flatten() + low).to(channel.dtype)


def _label_argmax(scores: torch.Tensor, labels: torch.Tensor, present: torch.Tensor,
                  nearest: torch.Tensor) -> torch.Tensor:
    """One channel of bgv2's label decision for every sample: scores (n, L, *patch) float16 for the sorted
    ``labels``; ``present`` (n, L) which labels bgv2 would list for each sample; ``nearest`` (n, *patch)."""
    n, count = present.shape
    spatial_ones = [1] * (scores.ndim - 2)
    masked = torch.where(present.view(n, count, *spatial_ones), scores,
                         torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device))
    best, winner = masked.max(1)  # first maximum on ties, as bgv2's running argmax with '>'
    result = labels[winner]
    # the nearest neighbour settles voxels where its own label has the top score (-inf if it is not listed)
    nearest_index = torch.searchsorted(labels, nearest.reshape(n, -1).contiguous()).clamp(max=count - 1)
    nearest_index = nearest_index.view(n, 1, *nearest.shape[1:])
    nearest_listed = labels[nearest_index[:, 0]] == nearest
    nearest_score = torch.where(nearest_listed, masked.gather(1, nearest_index)[:, 0],
                                torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device))
    general = torch.where(nearest_score == best, nearest, result)
    counts = present.sum(1)
    if bool((counts == 2).any()):
        # bgv2's two-label branch: the second label where its score passes half the scale, nearest at a tie
        order = torch.arange(count, device=present.device).expand(n, count)
        first = torch.where(present, order, count).amin(1)
        second = torch.where(present, order, -1).amax(1)
        high = scores.gather(1, second.view(n, 1, *spatial_ones).expand(n, 1, *scores.shape[2:]))[:, 0]
        half = SEG_SCORE_SCALE / 2
        two = torch.where(high > half, labels[second].view(n, *spatial_ones),
                          labels[first].view(n, *spatial_ones).expand_as(nearest))
        two = torch.where(high == half, nearest, two)
        general = torch.where((counts == 2).view(n, *spatial_ones), two, general)
    if bool((counts == 1).any()):
        only = labels[present.to(torch.int64).argmax(1)].view(n, *spatial_ones)
        general = torch.where((counts == 1).view(n, *spatial_ones), only.expand_as(general), general)
    return general


class BatchedConvert3DTo2D(BatchedTransform):
    """nnU-Net's dummy-2D entry (bgv2 ``Convert3DTo2DTransform``): (B, C, X, Y, Z) -> (B, C*X, Y, Z).

    The channel counts are kept in the batch under bgv2's keys for :class:`BatchedConvert2DTo3D`."""

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        out = dict(batch)
        for key, count_key in (("image", "nchannels_img"), ("segmentation", "nchannels_seg")):
            tensor = batch.get(key)
            if tensor is not None:
                out[count_key] = int(tensor.shape[1])
                out[key] = tensor.reshape(tensor.shape[0], tensor.shape[1] * tensor.shape[2], *tensor.shape[3:])
        return out


class BatchedConvert2DTo3D(BatchedTransform):
    """nnU-Net's dummy-2D exit (bgv2 ``Convert2DTo3DTransform``): (B, C*X, Y, Z) -> (B, C, X, Y, Z)."""

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        out = dict(batch)
        for key, count_key in (("image", "nchannels_img"), ("segmentation", "nchannels_seg")):
            tensor = batch.get(key)
            if tensor is not None and count_key in batch:
                channels = out.pop(count_key)
                out[key] = tensor.reshape(tensor.shape[0], channels, tensor.shape[1] // channels, *tensor.shape[2:])
        return out


class BatchedMirror(BatchedTransform):
    """bgv2's ``MirrorTransform``: per sample, each of ``allowed_axes`` (spatial, 0-based) flipped with p 0.5."""

    def __init__(self, allowed_axes: Sequence[int]):
        self.allowed_axes = tuple(int(a) for a in allowed_axes)
        self.generator: torch.Generator | None = None

    def get_parameters(self, batch: Batch) -> dict[str, Any]:
        """``flip`` (B, len(allowed_axes)) bool."""
        return {"flip": torch.rand((batch_size_of(batch), len(self.allowed_axes)), generator=self.generator) < 0.5}

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        out = dict(batch)
        for key in ("image", "segmentation"):
            tensor = batch.get(key)
            if tensor is None:
                continue
            flip = params["flip"]
            if not bool(flip.any()):
                continue
            # one gather, flip and write per flip pattern present (at most 2^axes groups), each sample once
            flipped = torch.empty_like(tensor)
            patterns, group_of = torch.unique(flip, dim=0, return_inverse=True)
            for group, pattern in enumerate(patterns.tolist()):
                index = (group_of == group).nonzero().flatten().to(tensor.device)
                axes = [axis + 2 for axis, on in zip(self.allowed_axes, pattern) if on]
                flipped[index] = tensor[index].flip(axes) if axes else tensor[index]
            out[key] = flipped
        return out


class BatchedDownsampleSegForDS(BatchedTransform):
    """bgv2's ``DownsampleSegForDSTransform``: 'segmentation' becomes a list, one tensor per deep-supervision
    scale, each 'nearest-exact' downsampled to round(size * scale) (scale 1 keeps the tensor itself)."""

    def __init__(self, ds_scales: Sequence[Any]):
        self.ds_scales = list(ds_scales)

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        segmentation = batch.get("segmentation")
        if segmentation is None:
            return batch
        spatial = segmentation.shape[2:]
        results: list[torch.Tensor] = []
        as_float: torch.Tensor | None = None
        for scale in self.ds_scales:
            factors = list(scale) if isinstance(scale, (list, tuple)) else [scale] * len(spatial)
            if len(factors) != len(spatial):
                raise ProgressiveConfigError(f"BatchedDownsampleSegForDS: scale {scale} has {len(factors)} axes, "
                                             f"the segmentation {len(spatial)}; give one factor per spatial axis")
            if all(f == 1 for f in factors):
                results.append(segmentation)
                continue
            if as_float is None:
                as_float = segmentation.float()
            size = [round(s * f) for s, f in zip(spatial, factors)]
            results.append(interpolate(as_float, size, mode="nearest-exact").to(segmentation.dtype))
        out = dict(batch)
        out["segmentation"] = results
        return out

