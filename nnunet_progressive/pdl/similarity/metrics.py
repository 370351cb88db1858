"""Image similarity metrics for Progressive DL case ranking (pure numpy, no I/O).

Every function compares two float arrays ``a`` and ``b`` of equal shape, 2D ``(y, x)`` or 3D
``(z, y, x)``, optionally restricted to a boolean ``mask`` of the same shape. Intensities are in the
units of the inputs (nnU-Net-normalised intensities in practice); ``data_range`` is in those units too.

- :func:`mse`: mean squared error inside the mask.
- :func:`psnr`: ``10 * log10(data_range**2 / mse)`` in dB; ``inf`` for identical images (as scikit-image).
- :func:`ssim`: the SSIM map of :func:`skimage.metrics.structural_similarity` (7-voxel uniform window,
  sample covariance, K1=0.01, K2=0.03) averaged inside the mask.
- :func:`uqi`: Wang & Bovik's universal quality index (SSIM with C1 = C2 = 0), same window and averaging.

Window border: like scikit-image, SSIM and UQI ignore voxels closer than ``(win_size - 1) // 2`` to the
image border (their window leaves the image there). With a mask, the average runs over mask voxels away
from the border; if the mask has no such voxel, over all mask voxels.

:func:`dissimilarity` turns a metric value into a score where higher means more dissimilar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.ndimage import uniform_filter
from skimage.metrics import structural_similarity

METRIC_NAMES: tuple[str, ...] = ("mse", "psnr", "ssim", "uqi")

# PSNR of identical images is +inf. Ranking and JSON need finite numbers, so `dissimilarity` caps it:
# 100 dB means an MSE 1e-10 times data_range**2, far below any real difference between two cases.
PSNR_CAP_DB: float = 100.0

DEFAULT_WIN_SIZE: int = 7


def _describe(name: str | None) -> str:
    return f" (case {name})" if name else ""


def _check_pair(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray | None, name: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate inputs; returns float64 copies of ``a``, ``b`` and a boolean mask (or None)."""
    a = np.asarray(a)
    b = np.asarray(b)
    where = _describe(name)
    if a.shape != b.shape:
        raise ValueError(
            f"Images to compare must have the same shape{where}; received {a.shape} and {b.shape}. "
            "Resample or crop them to a common grid first."
        )
    if a.ndim not in (2, 3):
        raise ValueError(
            f"Expected 2D (y, x) or 3D (z, y, x) images{where}; received {a.ndim}D with shape {a.shape}. "
            "Compare multi-channel images one channel at a time (see compare_channels)."
        )
    for label, array in (("first", a), ("second", b)):
        if not np.all(np.isfinite(array)):
            bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
            raise ValueError(
                f"The {label} image{where} contains {bad} NaN or infinite values; metrics need finite "
                "intensities. Check the preprocessed case (re-run nnUNetv2_preprocess) or the raw image."
            )
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != a.shape:
            raise ValueError(f"The mask{where} must have the image shape {a.shape}; received {mask.shape}.")
        mask = mask.astype(bool, copy=False)
        if not mask.any():
            raise ValueError(f"The mask{where} is empty: no voxel to compare. Use region='image' or check the masks.")
    return a.astype(np.float64, copy=False), b.astype(np.float64, copy=False), mask


def _check_data_range(data_range: float) -> float:
    value = float(data_range)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"data_range must be a finite number > 0; received {data_range!r}.")
    return value


def _window_size(shape: tuple[int, ...], win_size: int) -> int:
    """The window actually used: ``win_size`` or, for small images, the largest odd size that fits."""
    smallest = min(shape)
    size = min(win_size, smallest if smallest % 2 == 1 else smallest - 1)
    if size < 3:
        raise ValueError(f"SSIM/UQI need at least 3 voxels along every axis; received shape {shape}.")
    return size


def _interior_average(values: np.ndarray, mask: np.ndarray | None, win_size: int) -> float:
    """Average ``values`` over ``mask`` minus the window border (or over ``mask`` if nothing is left)."""
    pad = (win_size - 1) // 2
    interior = np.zeros(values.shape, dtype=bool)
    interior[tuple(slice(pad, s - pad) for s in values.shape)] = True
    if mask is None:
        return float(values[interior].mean(dtype=np.float64))
    region = mask & interior
    if not region.any():
        region = mask
    return float(values[region].mean(dtype=np.float64))


def mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, *, name: str | None = None) -> float:
    """Mean squared error of ``a`` and ``b`` (same shape, 2D or 3D) inside ``mask``; intensity units**2."""
    a, b, mask = _check_pair(a, b, mask, name)
    diff = a - b
    if mask is not None:
        diff = diff[mask]
    return float(np.mean(diff * diff))


def psnr(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float,
    mask: np.ndarray | None = None,
    *,
    name: str | None = None,
) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range**2 / mse)``; ``inf`` when identical."""
    data_range = _check_data_range(data_range)
    error = mse(a, b, mask, name=name)
    if error == 0.0:
        return math.inf
    return float(10.0 * np.log10(data_range**2 / error))


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float,
    mask: np.ndarray | None = None,
    *,
    win_size: int = DEFAULT_WIN_SIZE,
    name: str | None = None,
) -> float:
    """Mean structural similarity in [-1, 1] (1 = identical) from scikit-image's SSIM map.

    Without a mask this equals ``skimage.metrics.structural_similarity(a, b, data_range=...)``.
    """
    a, b, mask = _check_pair(a, b, mask, name)
    data_range = _check_data_range(data_range)
    size = _window_size(a.shape, win_size)
    _, ssim_map = structural_similarity(a, b, data_range=data_range, win_size=size, full=True)
    return _interior_average(ssim_map, mask, size)


def uqi_map(a: np.ndarray, b: np.ndarray, win_size: int = DEFAULT_WIN_SIZE) -> np.ndarray:
    """Local universal quality index (Wang & Bovik 2002) per voxel, shape of ``a``; values in [-1, 1].

    ``Q = 4 s_ab m_a m_b / ((s_a^2 + s_b^2)(m_a^2 + m_b^2))`` over a uniform window, i.e. the product
    of correlation ``s_ab / (s_a s_b)``, luminance ``2 m_a m_b / (m_a^2 + m_b^2)`` and contrast
    ``2 s_a s_b / (s_a^2 + s_b^2)``. With C1 = C2 = 0 these are 0/0 in flat or zero-mean windows, so:

    - both windows flat (``s_a^2 + s_b^2 ~ 0``): correlation and contrast count as 1, Q = luminance term;
    - both means zero (``m_a^2 + m_b^2 ~ 0``): luminance counts as 1, Q = ``2 s_ab / (s_a^2 + s_b^2)``;
    - both (two identical all-zero windows): Q = 1;
    - exactly one window flat: Q = 0 (from the formula: no shared structure).

    "~ 0" means below ``1e-12`` times the largest squared intensity of the pair (float64 round-off).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    size = _window_size(a.shape, win_size)
    mean_a = uniform_filter(a, size=size)
    mean_b = uniform_filter(b, size=size)
    # Variances/covariance; any normalisation (N or N-1) cancels in Q, so population moments suffice.
    var_a = np.maximum(uniform_filter(a * a, size=size) - mean_a * mean_a, 0.0)
    var_b = np.maximum(uniform_filter(b * b, size=size) - mean_b * mean_b, 0.0)
    cov = uniform_filter(a * b, size=size) - mean_a * mean_b

    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-300) ** 2
    eps = 1e-12 * scale
    var_sum = var_a + var_b
    mean_sq_sum = mean_a * mean_a + mean_b * mean_b
    flat = var_sum <= eps
    dark = mean_sq_sum <= eps

    safe_var_sum = np.where(flat, 1.0, var_sum)
    safe_mean_sq_sum = np.where(dark, 1.0, mean_sq_sum)
    structure = np.where(flat, 1.0, 2.0 * cov / safe_var_sum)  # correlation * contrast
    luminance = np.where(dark, 1.0, 2.0 * mean_a * mean_b / safe_mean_sq_sum)
    return np.clip(structure * luminance, -1.0, 1.0)


def uqi(
    a: np.ndarray,
    b: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    win_size: int = DEFAULT_WIN_SIZE,
    name: str | None = None,
) -> float:
    """Mean universal quality index in [-1, 1] (1 = identical); see :func:`uqi_map` for flat windows."""
    a, b, mask = _check_pair(a, b, mask, name)
    size = _window_size(a.shape, win_size)
    return _interior_average(uqi_map(a, b, size), mask, size)


def identical_value(metric_name: str) -> float:
    """The metric's value for two identical images (mse 0, psnr inf, ssim 1, uqi 1)."""
    values = {"mse": 0.0, "psnr": math.inf, "ssim": 1.0, "uqi": 1.0}
    _check_metric_name(metric_name)
    return values[metric_name]


def _check_metric_name(metric_name: str) -> None:
    if metric_name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric {metric_name!r}; expected one of {', '.join(METRIC_NAMES)}.")


def dissimilarity(metric_name: str, value: float) -> float:
    """Turn a metric value into a dissimilarity (higher = more dissimilar).

    mse: as is; psnr: negated, with +inf (identical images) capped at ``PSNR_CAP_DB``; ssim, uqi:
    ``1 - value``.
    """
    _check_metric_name(metric_name)
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{metric_name} value is NaN; cannot rank it.")
    if metric_name == "mse":
        return value
    if metric_name == "psnr":
        return -min(value, PSNR_CAP_DB)
    return 1.0 - value


def compare_channels(
    a: np.ndarray,
    b: np.ndarray,
    data_ranges: Sequence[float],
    mask: np.ndarray | None = None,
    *,
    name: str | None = None,
) -> dict[str, float]:
    """All four metrics for multi-channel images ``(c, *spatial)``, each the mean over channels.

    ``data_ranges`` holds one PSNR/SSIM data range per channel; ``mask`` is spatial. A channel's PSNR
    of ``inf`` (identical channel) makes the mean ``inf``; :func:`dissimilarity` caps it.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"Images to compare must have the same shape{_describe(name)}; received {a.shape} and {b.shape}."
        )
    if len(data_ranges) != a.shape[0]:
        raise ValueError(f"Expected one data range per channel ({a.shape[0]}); received {len(data_ranges)}.")
    per_channel: dict[str, list[float]] = {metric: [] for metric in METRIC_NAMES}
    for channel in range(a.shape[0]):
        label = f"{name}, channel {channel}" if name else f"channel {channel}"
        x, y = a[channel], b[channel]
        per_channel["mse"].append(mse(x, y, mask, name=label))
        per_channel["psnr"].append(psnr(x, y, data_ranges[channel], mask, name=label))
        per_channel["ssim"].append(ssim(x, y, data_ranges[channel], mask, name=label))
        per_channel["uqi"].append(uqi(x, y, mask, name=label))
    return {metric: float(np.mean(values)) for metric, values in per_channel.items()}


def dissimilarities(values: Mapping[str, float]) -> dict[str, float]:
    """Apply :func:`dissimilarity` to a ``{metric_name: value}`` mapping."""
    return {metric: dissimilarity(metric, value) for metric, value in values.items()}
