"""nnU-Net 2.8.1's intensity and label transforms (batchgeneratorsv2 0.3.x), for a whole batch.

Each class mirrors one batchgeneratorsv2 transform as ``nnUNetTrainer.get_training_transforms`` builds it (same
constructor arguments, nnU-Net's values as defaults). ``get_parameters`` draws on the CPU with torch's global
generator what batchgeneratorsv2 draws per sample (and per channel where it does), as tensors with the batch as
the first axis; ``apply`` moves them to the batch's device and transforms the whole batch in a few torch calls.
Voxel-sized random fields (the Gaussian noise) are drawn in ``apply`` on the batch's device. Every ``apply``
returns new tensors and leaves the batch it was given untouched.

Random ranges are what batchgeneratorsv2's ``sample_scalar`` takes, less callables: a number (constant), a
``(low, high)`` tuple (uniform) or a ``BGContrast`` (below 1 half the time, above 1 otherwise).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

import torch
import torch.nn.functional as F
from batchgeneratorsv2.transforms.intensity.contrast import BGContrast

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.nnunet.batched_augmentation.base import Batch, BatchedTransform

RandomRange = float | int | tuple[float, float] | BGContrast

GAMMA_EPS = 1e-7
BLUR_TRUNCATE = 6.0  # batchgeneratorsv2's blur_dimension builds its kernels with truncate=6
UPSAMPLE_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


# --- drawing
def draw_uniform(low: float, high: float, size: Sequence[int]) -> torch.Tensor:
    """``np.random.uniform(low, high)`` for every entry of ``size`` (float64, CPU)."""
    return low + (high - low) * torch.rand(tuple(size), dtype=torch.float64)


def draw_bg_contrast(contrast_range: tuple[float, float], size: Sequence[int]) -> torch.Tensor:
    """BGContrast's draw: with probability 0.5 (and a lower bound below 1) uniform in [low, 1), else uniform in
    [max(low, 1), high)."""
    low, high = float(contrast_range[0]), float(contrast_range[1])
    below = (torch.rand(tuple(size)) < 0.5) & (low < 1)
    lower = torch.where(below, torch.tensor(low, dtype=torch.float64), torch.tensor(max(low, 1.0), dtype=torch.float64))
    upper = torch.where(below, torch.tensor(1.0, dtype=torch.float64), torch.tensor(high, dtype=torch.float64))
    return lower + (upper - lower) * torch.rand(tuple(size), dtype=torch.float64)


def draw_scalar(value_range: RandomRange, size: Sequence[int], where: str) -> torch.Tensor:
    """batchgeneratorsv2's ``sample_scalar`` for every entry of ``size`` at once (float64, CPU)."""
    if isinstance(value_range, BGContrast):
        if callable(value_range.contrast_range):
            raise ProgressiveConfigError(
                f"{where}: BGContrast with a callable range cannot be drawn per batch; give it a (low, high) tuple")
        return draw_bg_contrast(value_range.contrast_range, size)
    if isinstance(value_range, (int, float)):
        return torch.full(tuple(size), float(value_range), dtype=torch.float64)
    if isinstance(value_range, (tuple, list)) and len(value_range) == 2 and value_range[0] <= value_range[1]:
        return draw_uniform(float(value_range[0]), float(value_range[1]), size)
    raise ProgressiveConfigError(
        f"{where}: random range {value_range!r} is not supported; give a number, a (low, high) tuple with "
        f"low <= high, or a BGContrast")


def draw_per_channel(value_range: RandomRange, batch_size: int, channels: int, synchronize_channels: bool,
                     where: str) -> torch.Tensor:
    """One value per (sample, channel), or one per sample repeated over the channels when synchronised."""
    if synchronize_channels:
        return draw_scalar(value_range, (batch_size, 1), where).expand(batch_size, channels).clone()
    return draw_scalar(value_range, (batch_size, channels), where)


def channel_mask(batch_size: int, channels: int, p_per_channel: float) -> torch.Tensor:
    """(B, C) bool: which channels of which samples a transform touches."""
    return torch.rand(batch_size, channels) < p_per_channel


def _per_row(values: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """(B, C) values as (B, C, 1, ...) on the image's device and dtype, to broadcast over the spatial axes."""
    return values.to(device=image.device, dtype=image.dtype).view(*values.shape, *[1] * (image.ndim - 2))


def _row_values(values: torch.Tensor, rows: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """The (B, C) ``values`` of the ``selected`` flattened rows as (N, 1, ...) on the rows' device and dtype."""
    picked = values.reshape(-1)[selected]
    return picked.to(device=rows.device, dtype=rows.dtype).view(-1, *[1] * (rows.ndim - 1))


def on_selected_rows(image: torch.Tensor, apply: torch.Tensor,
                     transform_rows: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """A new image where the (sample, channel) rows marked in ``apply`` (B, C) are ``transform_rows(rows,
    selected)`` and the others are copied unchanged.

    ``rows`` (N, *spatial) is a private copy of the selected rows (the transform may work in place on it, which
    keeps the number of voxel-sized temporaries, and the memory traffic, low); ``selected`` holds their flat
    indices ``b * C + c`` on the CPU, to pick per-row parameters.
    """
    b, c = image.shape[:2]
    flat = image.reshape(b * c, *image.shape[2:])
    selected = apply.reshape(-1).nonzero().flatten()
    if selected.numel() == 0:
        return image.clone()
    if selected.numel() == b * c:
        return transform_rows(flat.clone(), selected).view(image.shape)
    index = selected.to(image.device)
    return flat.index_copy(0, index, transform_rows(flat.index_select(0, index), selected)).view(image.shape)


def _row_range(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row minimum and maximum of (N, *spatial) rows, as (N, 1, ...) (amin and amax: torch's aminmax along a
    dimension was 6x slower on the CPU)."""
    flat = rows.reshape(rows.shape[0], -1)
    shape = (-1, *[1] * (rows.ndim - 1))
    return flat.amin(dim=1).view(shape), flat.amax(dim=1).view(shape)


def _row_std(rows: torch.Tensor) -> torch.Tensor:
    """Per-row (unbiased) standard deviation of (N, *spatial) rows, as (N, 1, ...). On the CPU one reduction per
    row: torch's std along a dimension was about 6x slower there than whole-row reductions."""
    shape = (-1, *[1] * (rows.ndim - 1))
    if rows.device.type == "cpu":
        return torch.stack([row.std() for row in rows]).view(shape)
    return rows.reshape(rows.shape[0], -1).std(dim=1).view(shape)


def _image_shape(batch: Batch) -> tuple[int, int, int]:
    image = batch["image"]
    return int(image.shape[0]), int(image.shape[1]), image.ndim - 2


# --- noise
class BatchedGaussianNoise(BatchedTransform):
    """GaussianNoiseTransform: adds N(0, sigma^2) noise; sigma is drawn from ``noise_variance`` (batchgeneratorsv2
    uses the drawn value as the standard deviation), once per sample when ``synchronize_channels``."""

    def __init__(self, noise_variance: RandomRange = (0, 0.1), p_per_channel: float = 1.0,
                 synchronize_channels: bool = True):
        self.noise_variance = noise_variance
        self.p_per_channel = p_per_channel
        self.synchronize_channels = synchronize_channels

    def get_parameters(self, batch: Batch) -> dict[str, Any]:
        b, c, _ = _image_shape(batch)
        return {"apply": channel_mask(b, c, self.p_per_channel),
                "sigma": draw_per_channel(self.noise_variance, b, c, self.synchronize_channels, type(self).__name__)}

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        def add_noise(rows: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
            noise = torch.randn(rows.shape, device=rows.device, dtype=rows.dtype)
            return rows.addcmul_(noise, _row_values(params["sigma"], rows, selected))

        return {**batch, "image": on_selected_rows(batch["image"], params["apply"], add_noise)}


# --- blur
def blur_kernel_size(sigma: torch.Tensor, truncate: float = BLUR_TRUNCATE) -> torch.Tensor:
    """batchgeneratorsv2's ``_compute_kernel_size``: ``sigma * truncate + 0.5`` rounded (half to even, as Python's
    round) to the nearest odd integer (an even result goes one step towards the unrounded value)."""
    unrounded = sigma.double() * truncate + 0.5
    rounded = torch.round(unrounded).long()
    towards = torch.where(unrounded - rounded >= 0, rounded + 1, rounded - 1)
    return torch.where(rounded % 2 == 1, rounded, towards)


def gaussian_kernels(sigma: torch.Tensor, truncate: float = BLUR_TRUNCATE) -> torch.Tensor:
    """(N, K) float32 kernels, one per sigma, built as batchgeneratorsv2's ``_build_kernel`` builds each (a float32
    linspace over the kernel's support, normalised Gaussian) and zero-padded on both sides to the largest size."""
    sizes = blur_kernel_size(sigma, truncate)
    largest = int(sizes.max())
    kernels = torch.zeros(sigma.shape[0], largest)
    sigma32 = sigma.float()
    for size in sizes.unique().tolist():
        rows = (sizes == size).nonzero().flatten()
        half = (size - 1) * 0.5
        support = torch.linspace(-half, half, steps=size)
        pdf = torch.exp(-0.5 * (support[None] / sigma32[rows, None]).pow(2))
        start = (largest - size) // 2
        kernels[rows, start:start + size] = pdf / pdf.sum(dim=1, keepdim=True)
    return kernels


def reflect_indices(length: int, pad: int) -> torch.Tensor:
    """Indices that pad an axis of ``length`` by ``pad`` on both sides the way ``F.pad(mode='reflect')`` does (edge
    not repeated); reflection continues periodically where ``pad >= length`` (torch's reflect pad fails there)."""
    positions = torch.arange(-pad, length + pad)
    if length == 1:
        return torch.zeros_like(positions)
    period = 2 * (length - 1)
    folded = positions.remainder(period)
    return torch.where(folded < length, folded, period - folded)


BLUR_METHODS = ("shifted", "conv")


def blur_rows(rows: torch.Tensor, sigma: torch.Tensor, method: str = "shifted") -> torch.Tensor:
    """Blur each row of ``rows`` (N, *spatial) with its own separable Gaussian (``sigma`` (N, D) on the CPU).

    Per axis, the axis is reflect-padded (by gathering) by the largest half width and every row is convolved with
    its own 1D kernel, zero-padded to the largest kernel size: ``method='shifted'`` sums the kernel's taps over
    shifted views of the padded rows (one multiply-add over the whole batch per tap), ``method='conv'`` is one
    grouped convolution with a kernel per row. Reflect padding by more than a row needs agrees with its own
    padding on the part its kernel reads, and the extra taps weigh zero, so each row gets what
    batchgeneratorsv2's ``blur_dimension`` computes (up to float summation order). On one CPU thread the shifted
    sum was 1.3-3x faster than the grouped convolution (2 rows of 16^3 to 8 rows of 64^3).
    """
    if method not in BLUR_METHODS:
        raise ProgressiveConfigError(f"blur_rows: method {method!r} is not one of {BLUR_METHODS}")
    n, spatial = rows.shape[0], rows.shape[1:]
    row_view = [n] + [1] * len(spatial)
    out = rows
    for axis in range(len(spatial)):
        kernels = gaussian_kernels(sigma[:, axis]).to(device=rows.device, dtype=rows.dtype)
        size = kernels.shape[1]
        padded = out.index_select(axis + 1, reflect_indices(spatial[axis], size // 2).to(rows.device))
        if method == "conv":
            weight_shape = [n, 1] + [1] * len(spatial)
            weight_shape[axis + 2] = size
            conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(spatial)]
            out = conv(padded[None], kernels.view(weight_shape), groups=n)[0]
            continue
        out = padded.narrow(axis + 1, 0, spatial[axis]) * kernels[:, 0].view(row_view)
        for tap in range(1, size):
            out.addcmul_(padded.narrow(axis + 1, tap, spatial[axis]), kernels[:, tap].view(row_view))
    return out


class BatchedGaussianBlur(BatchedTransform):
    """GaussianBlurTransform: per-sample, per-channel and (unless synchronised) per-axis sigmas, applied to the
    selected (sample, channel) rows of the whole batch as separable grouped convolutions (see ``blur_rows``).

    batchgeneratorsv2 (``benchmark=True`` in nnU-Net) times a direct and an FFT convolution per shape and kernel
    size and keeps the faster; both compute the same blur, which is what this computes (``method``: see
    ``blur_rows``). ``benchmark`` is accepted for the same constructor as batchgeneratorsv2's and changes nothing.
    """

    def __init__(self, blur_sigma: RandomRange = (0.5, 1.0), synchronize_channels: bool = False,
                 synchronize_axes: bool = False, p_per_channel: float = 0.5, benchmark: bool = False,
                 method: str = "shifted"):
        if method not in BLUR_METHODS:
            raise ProgressiveConfigError(f"BatchedGaussianBlur: method {method!r} is not one of {BLUR_METHODS}")
        self.blur_sigma = blur_sigma
        self.method = method
        self.synchronize_channels = synchronize_channels
        self.synchronize_axes = synchronize_axes
        self.p_per_channel = p_per_channel

    def get_parameters(self, batch: Batch) -> dict[str, Any]:
        b, c, dims = _image_shape(batch)
        where = type(self).__name__
        draw_channels = 1 if self.synchronize_channels else c
        draw_axes = 1 if self.synchronize_axes else dims
        sigma = draw_scalar(self.blur_sigma, (b, draw_channels, draw_axes), where).expand(b, c, dims).clone()
        return {"apply": channel_mask(b, c, self.p_per_channel), "sigma": sigma}

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        image = batch["image"]
        sigma = params["sigma"].reshape(image.shape[0] * image.shape[1], -1)
        blurred = on_selected_rows(image, params["apply"], lambda rows, selected: blur_rows(rows, sigma[selected],
                                                                                             self.method))
        return {**batch, "image": blurred}


# --- brightness, contrast, gamma
class BatchedMultiplicativeBrightness(BatchedTransform):
    """MultiplicativeBrightnessTransform: multiplies each selected channel by its drawn factor."""

    def __init__(self, multiplier_range: RandomRange = BGContrast((0.75, 1.25)), synchronize_channels: bool = False,
                 p_per_channel: float = 1.0):
        self.multiplier_range = multiplier_range
        self.synchronize_channels = synchronize_channels
        self.p_per_channel = p_per_channel

    def get_parameters(self, batch: Batch) -> dict[str, Any]:
        b, c, _ = _image_shape(batch)
        return {"apply": channel_mask(b, c, self.p_per_channel),
                "multiplier": draw_per_channel(self.multiplier_range, b, c, self.synchronize_channels,
                                               type(self).__name__).float()}

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        image = batch["image"]
        multiplier = torch.where(params["apply"], params["multiplier"], torch.ones((), dtype=torch.float32))
        return {**batch, "image": image * _per_row(multiplier, image)}


class BatchedContrast(BatchedTransform):
    """ContrastTransform: ``(x - mean) * factor + mean`` per selected channel, clipped to the channel's former
    range when ``preserve_range``."""

    def __init__(self, contrast_range: RandomRange = BGContrast((0.75, 1.25)), preserve_range: bool = True,
                 synchronize_channels: bool = False, p_per_channel: float = 1.0):
        self.contrast_range = contrast_range
        self.preserve_range = preserve_range
        self.synchronize_channels = synchronize_channels
        self.p_per_channel = p_per_channel

    def get_parameters(self, batch: Batch) -> dict[str, Any]:
        b, c, _ = _image_shape(batch)
        return {"apply": channel_mask(b, c, self.p_per_channel),
                "factor": draw_per_channel(self.contrast_range, b, c, self.synchronize_channels,
                                           type(self).__name__).float()}

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        def contrast(rows: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
            mean = rows.mean(dim=tuple(range(1, rows.ndim)), keepdim=True)
            low, high = _row_range(rows)
            rows.sub_(mean).mul_(_row_values(params["factor"], rows, selected)).add_(mean)
            if self.preserve_range:  # clamp to the former range (minimum/maximum: clamp_ with tensors is slower)
                torch.maximum(torch.minimum(rows, high, out=rows), low, out=rows)
            return rows

        return {**batch, "image": on_selected_rows(batch["image"], params["apply"], contrast)}


class BatchedGamma(BatchedTransform):
    """GammaTransform: per selected channel, optionally inverted (``p_invert_image``), the intensities are mapped
    to [0, 1] over the channel's range, raised to the drawn gamma and mapped back; with ``p_retain_stats`` the
    channel's mean and (unbiased) standard deviation are restored. nnU-Net uses it twice: ``p_invert_image`` 1
    and 0."""

    def __init__(self, gamma: RandomRange = BGContrast((0.7, 1.5)), p_invert_image: float = 0.0,
                 synchronize_channels: bool = False, p_per_channel: float = 1.0, p_retain_stats: float = 1.0):
        self.gamma = gamma
        self.p_invert_image = p_invert_image
        self.synchronize_channels = synchronize_channels
        self.p_per_channel = p_per_channel
        self.p_retain_stats = p_retain_stats

    def get_parameters(self, batch: Batch) -> dict[str, Any]:
        b, c, _ = _image_shape(batch)
        return {"apply": channel_mask(b, c, self.p_per_channel),
                "retain_stats": torch.rand(b, c) < self.p_retain_stats,
                "invert": torch.rand(b, c) < self.p_invert_image,
                "gamma": draw_per_channel(self.gamma, b, c, self.synchronize_channels, type(self).__name__).float()}

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        def gamma(rows: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
            dims = tuple(range(1, rows.ndim))
            invert = params["invert"].reshape(-1)[selected]
            sign = torch.where(invert, -1.0, 1.0).to(device=rows.device, dtype=rows.dtype).view(-1, *[1] * len(dims))
            retain = params["retain_stats"].reshape(-1)[selected]
            if invert.any():
                rows.mul_(sign)
            if retain.any():
                mean, std = rows.mean(dim=dims, keepdim=True), _row_std(rows)
            low, high = _row_range(rows)
            value_range = high - low
            rows.sub_(low).div_(value_range.clamp(min=GAMMA_EPS)).pow_(_row_values(params["gamma"], rows, selected))
            rows.mul_(value_range).add_(low)
            if retain.any():
                # rows that keep their statistics get (x - mean_now) * std / std_now + mean; the others x - 0, * 1, + 0
                keep = retain.to(rows.device).view(-1, *[1] * len(dims))
                zero, one = rows.new_zeros(()), rows.new_ones(())
                now_mean, now_std = rows.mean(dim=dims, keepdim=True), _row_std(rows)
                rows.sub_(torch.where(keep, now_mean, zero))
                rows.mul_(torch.where(keep, std / now_std.clamp(min=GAMMA_EPS), one))
                rows.add_(torch.where(keep, mean, zero))
            if invert.any():
                rows.mul_(sign)
            return rows

        return {**batch, "image": on_selected_rows(batch["image"], params["apply"], gamma)}


# --- low resolution
def downsampled_shapes(spatial_shape: Sequence[int], scales: torch.Tensor) -> torch.Tensor:
    """(N, D) int64: ``round(size * scale)`` per axis as batchgeneratorsv2 computes it (float32 scale, product
    in float64, rounded half to even)."""
    sizes = torch.tensor(list(spatial_shape), dtype=torch.float64)
    return torch.round(sizes * scales.float().double()).long()


class BatchedSimulateLowResolution(BatchedTransform):
    """SimulateLowResolutionTransform: each selected channel is resampled to ``round(size * scale)`` per axis with
    ``nearest-exact`` and back to its size with (bi/tri)linear interpolation (``align_corners=False``); the axes
    in ``ignore_axes`` keep scale 1.

    How it is batched: torch's ``interpolate`` takes one output size per call, and its result for a channel
    depends only on that channel, the input size and the output size. The selected (sample, channel) rows are
    grouped by their downsampled shape and each group is resampled in one pair of ``interpolate`` calls with the
    rows as channels, so every row gets exactly what batchgeneratorsv2 computes for it (bit for bit on the CPU);
    the number of calls is the number of distinct drawn shapes (at most about half the patch edge, with nnU-Net's
    synchronised axes and scales 0.5-1), not the number of samples.
    """

    def __init__(self, scale: RandomRange = (0.5, 1.0), synchronize_channels: bool = False,
                 synchronize_axes: bool = True, ignore_axes: Sequence[int] | None = None,
                 allowed_channels: Sequence[int] | None = None, p_per_channel: float = 0.5):
        self.scale = scale
        self.synchronize_channels = synchronize_channels
        self.synchronize_axes = synchronize_axes
        self.ignore_axes = tuple(ignore_axes) if ignore_axes is not None else None
        self.allowed_channels = tuple(allowed_channels) if allowed_channels is not None else None
        self.p_per_channel = p_per_channel

    def get_parameters(self, batch: Batch) -> dict[str, Any]:
        b, c, dims = _image_shape(batch)
        draw_channels = 1 if self.synchronize_channels else c
        draw_axes = 1 if self.synchronize_axes else dims
        scale = draw_scalar(self.scale, (b, draw_channels, draw_axes), type(self).__name__)
        scale = scale.float().expand(b, c, dims).clone()
        if self.ignore_axes is not None:
            scale[:, :, list(self.ignore_axes)] = 1
        apply = channel_mask(b, c, self.p_per_channel)
        if self.allowed_channels is not None:
            allowed = torch.zeros(c, dtype=torch.bool)
            allowed[list(self.allowed_channels)] = True
            apply &= allowed
        return {"apply": apply, "scale": scale}

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        image = batch["image"]
        b, c = image.shape[:2]
        spatial = tuple(image.shape[2:])
        selected = params["apply"].flatten().nonzero().flatten()
        if selected.numel() == 0:
            return batch
        shapes = downsampled_shapes(spatial, params["scale"].reshape(b * c, -1)[selected])
        flat = image.reshape(b * c, *spatial)
        out = flat.clone()
        groups, group_of_row = shapes.unique(dim=0, return_inverse=True)
        for group, shape in enumerate(groups.tolist()):
            index = selected[group_of_row == group].to(image.device)
            low = F.interpolate(flat.index_select(0, index)[None], size=shape, mode="nearest-exact")
            out[index] = F.interpolate(low, size=spatial, mode=UPSAMPLE_MODES[len(spatial)])[0]
        return {**batch, "image": out.view(image.shape)}


# --- masks and labels
class BatchedMaskImage(BatchedTransform):
    """MaskImageTransform: sets the image channels ``apply_to_channels`` to ``set_outside_to`` where the
    segmentation channel ``channel_idx_in_seg`` is negative (outside nnU-Net's nonzero mask)."""

    def __init__(self, apply_to_channels: Sequence[int], channel_idx_in_seg: int = 0, set_outside_to: float = 0):
        self.apply_to_channels = list(apply_to_channels)
        self.channel_idx_in_seg = channel_idx_in_seg
        self.set_outside_to = set_outside_to

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        if not self.apply_to_channels:
            return batch
        image = batch["image"]
        outside = batch["segmentation"][:, self.channel_idx_in_seg:self.channel_idx_in_seg + 1] < 0
        channels = torch.zeros(image.shape[1], dtype=torch.bool)
        channels[self.apply_to_channels] = True
        mask = outside & channels.to(image.device).view(1, -1, *[1] * (image.ndim - 2))
        return {**batch, "image": image.masked_fill(mask, self.set_outside_to)}


class BatchedRemoveLabel(BatchedTransform):
    """RemoveLabelTransform: ``label_value`` becomes ``set_to`` in the given segmentation channels (all if None)."""

    def __init__(self, label_value: int = -1, set_to: int = 0,
                 segmentation_channels: int | Sequence[int] | None = None):
        if isinstance(segmentation_channels, int):
            segmentation_channels = [segmentation_channels]
        self.segmentation_channels = list(segmentation_channels) if segmentation_channels is not None else None
        self.label_value = label_value
        self.set_to = set_to

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        seg = batch["segmentation"]
        hit = seg == self.label_value
        if self.segmentation_channels is not None:
            channels = torch.zeros(seg.shape[1], dtype=torch.bool)
            channels[self.segmentation_channels] = True
            hit &= channels.to(seg.device).view(1, -1, *[1] * (seg.ndim - 2))
        return {**batch, "segmentation": seg.masked_fill(hit, self.set_to)}


class BatchedConvertSegmentationToRegions(BatchedTransform):
    """ConvertSegmentationToRegionsTransform: segmentation channel ``channel_in_seg`` becomes one bool channel per
    region (a label or a list of labels), (B, R, *spatial)."""

    def __init__(self, regions: Sequence[int | Sequence[int]], channel_in_seg: int = 0):
        self.regions = [[int(r)] if isinstance(r, Integral) else [int(v) for v in r] for r in regions]
        self.channel_in_seg = channel_in_seg

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        seg = batch["segmentation"][:, self.channel_in_seg]
        out = torch.empty((seg.shape[0], len(self.regions), *seg.shape[1:]), dtype=torch.bool, device=seg.device)
        for region_id, labels in enumerate(self.regions):
            if len(labels) == 1:
                out[:, region_id] = seg == labels[0]
            else:
                out[:, region_id] = torch.isin(seg, torch.tensor(labels, dtype=seg.dtype, device=seg.device))
        return {**batch, "segmentation": out}


class BatchedMoveSegAsOneHotToData(BatchedTransform):
    """MoveSegAsOneHotToDataTransform (cascade): segmentation channel ``source_channel_idx`` is appended to the
    image as one channel per label of ``all_labels`` (1 where the label is, else 0) and, by default, removed from
    the segmentation."""

    def __init__(self, source_channel_idx: int = 1, all_labels: Sequence[int] | None = None,
                 remove_channel_from_source: bool = True):
        if not all_labels:
            raise ProgressiveConfigError(
                "BatchedMoveSegAsOneHotToData: all_labels is empty; give the previous stage's foreground labels "
                "(nnU-Net passes label_manager.foreground_labels)")
        self.source_channel_idx = source_channel_idx
        self.all_labels = [int(label) for label in all_labels]
        self.remove_channel_from_source = remove_channel_from_source

    def apply(self, batch: Batch, params: dict[str, Any]) -> Batch:
        image, seg = batch["image"], batch["segmentation"]
        source = seg[:, self.source_channel_idx:self.source_channel_idx + 1]
        labels = torch.tensor(self.all_labels, dtype=source.dtype, device=source.device)
        one_hot = (source == labels.view(1, -1, *[1] * (source.ndim - 2))).to(image.dtype)
        out = {**batch, "image": torch.cat([image, one_hot], dim=1)}
        if self.remove_channel_from_source:
            keep = [i for i in range(seg.shape[1]) if i != self.source_channel_idx]
            out["segmentation"] = seg[:, keep]
        return out
