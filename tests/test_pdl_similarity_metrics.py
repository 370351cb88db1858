"""Similarity metrics against scikit-image, UQI properties, dissimilarity, and registration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.ndimage import shift as nd_shift
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from nnunet_progressive.pdl.similarity.metrics import (
    PSNR_CAP_DB,
    compare_channels,
    dissimilarity,
    identical_value,
    mse,
    psnr,
    ssim,
    uqi,
    uqi_map,
)
from nnunet_progressive.pdl.similarity.registration import (
    background_value,
    register,
    resample_to_grid,
    shrink_factors,
)


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = gaussian_filter(rng.random(shape), 1.5)
    b = a + 0.05 * rng.standard_normal(shape)
    return a, b


@pytest.mark.parametrize("shape", [(32, 40), (12, 16, 20)])
def test_metrics_match_scikit_image(shape: tuple[int, ...]) -> None:
    a, b = _pair(shape)
    data_range = float(max(a.max(), b.max()) - min(a.min(), b.min()))
    assert mse(a, b) == pytest.approx(mean_squared_error(a, b), rel=1e-12)
    assert psnr(a, b, data_range) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=data_range), rel=1e-12)
    assert ssim(a, b, data_range) == pytest.approx(structural_similarity(a, b, data_range=data_range), rel=1e-9)


def test_mask_restricts_mse_and_full_mask_equals_no_mask() -> None:
    a, b = _pair((10, 12, 14))
    mask = np.zeros(a.shape, bool)
    mask[2:6, 3:9, 4:10] = True
    assert mse(a, b, mask) == pytest.approx(mean_squared_error(a[mask], b[mask]))
    full = np.ones(a.shape, bool)
    assert ssim(a, b, 1.0, full) == pytest.approx(ssim(a, b, 1.0))
    assert uqi(a, b, full) == pytest.approx(uqi(a, b))


def test_identical_images() -> None:
    a, _ = _pair((16, 16, 16))
    assert mse(a, a) == 0.0
    assert psnr(a, a, 1.0) == math.inf
    assert ssim(a, a, 1.0) == pytest.approx(1.0)
    assert uqi(a, a) == pytest.approx(1.0)
    _, b = _pair((16, 16, 16))
    different = {"mse": mse(a, b), "psnr": psnr(a, b, 1.0), "ssim": ssim(a, b, 1.0), "uqi": uqi(a, b)}
    for metric, value in different.items():
        assert dissimilarity(metric, identical_value(metric)) < dissimilarity(metric, value)


def test_uqi_matches_formula_in_one_window_and_handles_flat_windows() -> None:
    a, b = _pair((15, 15), seed=3)
    a, b = a + 1.0, b + 1.0
    window = (slice(4, 11), slice(4, 11))  # the 7x7 window centred on (7, 7)
    x, y = a[window].ravel(), b[window].ravel()
    mx, my = x.mean(), y.mean()
    vx, vy, cxy = x.var(), y.var(), np.mean((x - mx) * (y - my))
    expected = 4 * cxy * mx * my / ((vx + vy) * (mx**2 + my**2))
    assert uqi_map(a, b)[7, 7] == pytest.approx(expected, rel=1e-9)

    zeros = np.zeros((9, 9))
    assert uqi(zeros, zeros) == 1.0  # flat and dark: identical
    flat_a, flat_b = np.full((9, 9), 2.0), np.full((9, 9), 1.0)
    assert uqi(flat_a, flat_b) == pytest.approx(2 * 2 * 1 / (4 + 1))  # luminance term only
    assert np.all(np.isfinite(uqi_map(flat_a, np.where(np.arange(81).reshape(9, 9) % 2, 1.0, 3.0))))
    assert -1.0 <= uqi(a, -b) <= 1.0


def test_dissimilarity_direction() -> None:
    assert dissimilarity("mse", 2.0) == 2.0
    assert dissimilarity("psnr", 30.0) == -30.0
    assert dissimilarity("psnr", math.inf) == -PSNR_CAP_DB
    assert dissimilarity("ssim", 0.75) == pytest.approx(0.25)
    assert dissimilarity("uqi", 0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="Unknown metric"):
        dissimilarity("dice", 1.0)


def test_bad_inputs_raise_clear_errors() -> None:
    a, b = _pair((8, 8, 8))
    with pytest.raises(ValueError, match=r"same shape \(case c1\); received \(8, 8, 8\) and \(8, 8\)"):
        mse(a, b[0], name="c1")
    nan = a.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"second image \(case c7\) contains 1 NaN"):
        ssim(a, nan, 1.0, name="c7")
    with pytest.raises(ValueError, match="mask.*empty"):
        uqi(a, b, np.zeros(a.shape, bool))
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, b, 0.0)


def test_compare_channels_averages_per_channel() -> None:
    a0, b0 = _pair((10, 10, 10), seed=1)
    a1, b1 = _pair((10, 10, 10), seed=2)
    values = compare_channels(np.stack([a0, a1]), np.stack([b0, b1]), [1.0, 2.0])
    assert values["mse"] == pytest.approx((mse(a0, b0) + mse(a1, b1)) / 2)
    assert values["ssim"] == pytest.approx((ssim(a0, b0, 1.0) + ssim(a1, b1, 2.0)) / 2)
    assert set(values) == {"mse", "psnr", "ssim", "uqi"}


def _blob(shape: tuple[int, ...]) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    centre = [n / 2 for n in shape]
    radius = [n / 5 for n in shape]
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radius, strict=True))
    image = np.exp(-r2)
    image += 0.5 * np.exp(-sum(((g - c * 0.7) / (r * 0.4)) ** 2 for g, c, r in zip(grids, centre, radius, strict=True)))
    return image.astype(np.float32)


def test_registration_recovers_a_shift_3d() -> None:
    fixed = _blob((40, 40, 40))
    moving = nd_shift(fixed, (3, -3, 2), order=1, mode="nearest")
    extra_mask = moving > 0.5
    result = register(fixed, moving, (1.5, 1.0, 1.0), "rigid_affine", also_move=[moving * 2, extra_mask])
    assert result.ok, result.message
    before, after = mse(fixed, moving), mse(fixed, result.moved)
    assert after < before / 20
    assert mse(2 * fixed, result.also_moved[0]) < 4 * before / 20
    assert result.also_moved[1].dtype == bool
    assert np.mean(result.also_moved[1] != (fixed > 0.5)) < 0.01
    again = register(fixed, moving, (1.5, 1.0, 1.0), "rigid_affine")
    assert np.array_equal(again.moved, result.moved)  # fixed sampling seed: reproducible


@pytest.mark.parametrize("method", ["rigid", "affine"])
def test_registration_recovers_a_shift_2d(method: str) -> None:
    fixed = _blob((48, 48))
    moving = nd_shift(fixed, (3, -2), order=1, mode="nearest")
    result = register(fixed, moving, (1.0, 1.0), method)
    assert result.ok
    assert mse(fixed, result.moved) < mse(fixed, moving) / 10
    single = register(fixed[None], moving[None], (5.0, 1.0, 1.0), method)  # one slice: 2D
    assert single.moved.shape == (1, 48, 48)
    assert mse(fixed, single.moved[0]) < mse(fixed, moving) / 10


def test_registration_failure_and_none_fall_back_to_the_moving_image() -> None:
    fixed = _blob((16, 16, 16))
    none = register(fixed, fixed * 0.5, (1, 1, 1), "none")
    assert none.ok and np.array_equal(none.moved, fixed * 0.5)
    constant = register(fixed, np.ones_like(fixed), (1, 1, 1))
    assert not constant.ok and "constant" in constant.message
    assert np.array_equal(constant.moved, np.ones_like(fixed))
    with pytest.raises(ValueError, match="same shape"):
        register(fixed, fixed[:8], (1, 1, 1))
    with pytest.raises(ValueError, match="positive spacings"):
        register(fixed, fixed, (1, 1))


def test_resample_to_grid_keeps_physical_size_and_centre() -> None:
    image = np.zeros((20, 30, 30), np.float32)
    image[8:12, 13:17, 13:17] = 1.0  # a 4-voxel cube at the centre, spacing 2 x 1 x 1 mm
    out = resample_to_grid(image, (2.0, 1.0, 1.0), (20, 20, 20), (2.0, 2.0, 2.0), fill_value=0.0)
    assert out.shape == (20, 20, 20)
    centre_of_mass = np.array(np.nonzero(out > 0.25)).mean(axis=1)
    assert np.allclose(centre_of_mass, 9.5, atol=0.6)
    assert out.sum() == pytest.approx(image.sum() * (2 * 1 * 1) / 8, rel=0.2)  # mass in mm^3 / grid voxel
    assert background_value(image) == 0.0
    assert shrink_factors((64, 64, 64)) == (4, 2)
    assert shrink_factors((24, 24, 24)) == (2, 1)
