"""The batched intensity and label transforms against batchgeneratorsv2's, sample by sample (CPU).

(a) the same input and the same parameters give the same output (images within float tolerance, label maps
exactly); (b) the per-sample draws follow batchgeneratorsv2's distributions; (c) a BatchedRandomTransform leaves
unselected samples untouched.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from batchgeneratorsv2.transforms.intensity.brightness import MultiplicativeBrightnessTransform
from batchgeneratorsv2.transforms.intensity.contrast import BGContrast, ContrastTransform
from batchgeneratorsv2.transforms.intensity.gamma import GammaTransform
from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
from batchgeneratorsv2.transforms.nnunet.seg_to_onehot import MoveSegAsOneHotToDataTransform
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform, _compute_kernel_size
from batchgeneratorsv2.transforms.spatial.low_resolution import SimulateLowResolutionTransform
from batchgeneratorsv2.transforms.utils.nnunet_masking import MaskImageTransform
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTransform
from batchgeneratorsv2.transforms.utils.seg_to_regions import ConvertSegmentationToRegionsTransform

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.nnunet.batched_augmentation.base import BatchedRandomTransform
from nnunet_progressive.nnunet.batched_augmentation.intensity import (
    BatchedContrast,
    BatchedConvertSegmentationToRegions,
    BatchedGamma,
    BatchedGaussianBlur,
    BatchedGaussianNoise,
    BatchedMaskImage,
    BatchedMoveSegAsOneHotToData,
    BatchedMultiplicativeBrightness,
    BatchedRemoveLabel,
    BatchedSimulateLowResolution,
    blur_kernel_size,
    draw_scalar,
    reflect_indices,
)

SHAPES = {"2d": (13, 17), "3d": (9, 12, 10)}
IMAGE_ATOL = 2e-5  # float32 on unit-scale data: reductions and convolutions sum in another order


def make_batch(spatial: tuple[int, ...], batch_size: int = 4, channels: int = 3, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn((batch_size, channels, *spatial), generator=gen) * 2 + 1
    seg = torch.randint(-1, 4, (batch_size, 2, *spatial), generator=gen).to(torch.int16)
    return {"image": image, "segmentation": seg}


def bgv2_image(transform, image: torch.Tensor, params: dict) -> torch.Tensor:
    return transform._apply_to_image(image.clone(), **params)


def channel_index(mask: torch.Tensor) -> torch.Tensor:
    return mask.nonzero().flatten()


# ------------------------------------------------------------------------------------------ (a) equivalence
@pytest.mark.parametrize("dim", ["2d", "3d"])
@pytest.mark.parametrize("synchronize_channels", [True, False])
def test_noise_equals_bgv2_for_one_sample_with_the_same_generator_state(dim, synchronize_channels):
    batch = make_batch(SHAPES[dim], batch_size=1)
    ours = BatchedGaussianNoise(synchronize_channels=synchronize_channels)
    torch.manual_seed(1)
    params = ours.get_parameters(batch)
    assert params["apply"].all()
    torch.manual_seed(7)
    out = ours.apply(batch, params)["image"][0]
    sigma = params["sigma"][0]
    theirs = GaussianNoiseTransform((0, 0.1), 1, synchronize_channels)
    bg_params = {"apply_mask": torch.ones(3, dtype=torch.bool), "apply_idx": torch.arange(3), "num_apply": 3,
                 "sigmas": float(sigma[0]) if synchronize_channels else sigma.tolist()}
    torch.manual_seed(7)
    expected = bgv2_image(theirs, batch["image"][0], bg_params)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert not torch.equal(out, batch["image"][0])


def test_noise_touches_only_selected_channels_with_the_drawn_sigma():
    batch = make_batch((32, 32, 32), batch_size=3, channels=2)
    ours = BatchedGaussianNoise(p_per_channel=0.5, synchronize_channels=False)
    params = {"apply": torch.tensor([[True, False], [False, True], [True, True]]),
              "sigma": torch.tensor([[0.05, 0.5], [0.5, 0.02], [0.08, 0.01]], dtype=torch.float64)}
    residual = ours.apply(batch, params)["image"] - batch["image"]
    for b in range(3):
        for c in range(2):
            if params["apply"][b, c]:
                assert residual[b, c].std().item() == pytest.approx(float(params["sigma"][b, c]), rel=0.03)
                assert abs(residual[b, c].mean().item()) < 0.003
            else:
                assert torch.equal(residual[b, c], torch.zeros_like(residual[b, c]))


@pytest.mark.parametrize(("dim", "fft", "method"),
                         [("2d", False, "shifted"), ("3d", False, "shifted"), ("3d", True, "shifted"),
                          ("2d", False, "conv"), ("3d", False, "conv")])
def test_blur_equals_bgv2(dim, fft, method):
    """With fft, bgv2 convolves by FFT: nnU-Net's benchmark=True times direct vs FFT convolution per axis length
    and kernel size and keeps the faster; here its choice is preset to FFT everywhere."""
    batch = make_batch(SHAPES[dim])
    ours = BatchedGaussianBlur(p_per_channel=0.6, method=method)
    torch.manual_seed(2)
    params = ours.get_parameters(batch)
    assert 0 < params["apply"].sum() < params["apply"].numel()
    out = ours.apply(batch, params)["image"]
    theirs = GaussianBlurTransform((0.5, 1.0), False, False, 0.5, benchmark=fft)
    theirs.benchmark_use_fft = {length: {size: True for size in (3, 5, 7)} for length in SHAPES[dim]}
    for b in range(batch["image"].shape[0]):
        selected = params["apply"][b]
        bg_params = {"apply_to_channel": selected,
                     "sigmas": [params["sigma"][b, c].tolist() for c in channel_index(selected)]}
        expected = bgv2_image(theirs, batch["image"][b], bg_params)
        torch.testing.assert_close(out[b], expected, atol=IMAGE_ATOL, rtol=0)
        assert torch.equal(out[b][~selected], batch["image"][b][~selected])


def test_blur_rejects_an_unknown_method():
    with pytest.raises(ProgressiveConfigError, match="fft"):
        BatchedGaussianBlur(method="fft")


def test_blur_on_an_axis_shorter_than_the_kernel_reflects_periodically():
    rows = torch.arange(3.0).view(1, 3)
    blurred = BatchedGaussianBlur(p_per_channel=1).apply(
        {"image": rows[None]}, {"apply": torch.ones(1, 1, dtype=torch.bool), "sigma": torch.ones(1, 1, 1)})
    padded = rows[:, reflect_indices(3, 3)]  # 2 1 | 0 1 2 | 1 0 1 ... (period 4)
    assert padded.tolist() == [[1.0, 2.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 1.0]]
    kernel = torch.exp(-0.5 * torch.linspace(-3, 3, 7).pow(2))
    kernel /= kernel.sum()
    expected = torch.stack([(padded[0, i:i + 7] * kernel).sum() for i in range(3)])
    torch.testing.assert_close(blurred["image"][0, 0], expected, atol=1e-6, rtol=0)


def test_blur_kernel_sizes_and_reflection_match_bgv2_and_torch():
    sigma = torch.linspace(0.05, 3.0, 400, dtype=torch.float64)
    assert blur_kernel_size(sigma).tolist() == [_compute_kernel_size(float(s), 6) for s in sigma]
    row = torch.arange(7.0)[None, None]
    for pad in range(1, 7):
        assert torch.equal(row[..., reflect_indices(7, pad)], F.pad(row, (pad, pad), mode="reflect"))


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_brightness_equals_bgv2(dim):
    batch = make_batch(SHAPES[dim])
    ours = BatchedMultiplicativeBrightness(p_per_channel=0.7)
    torch.manual_seed(3)
    params = ours.get_parameters(batch)
    out = ours.apply(batch, params)["image"]
    theirs = MultiplicativeBrightnessTransform(BGContrast((0.75, 1.25)), False, 0.7)
    for b in range(batch["image"].shape[0]):
        idx = channel_index(params["apply"][b])
        expected = bgv2_image(theirs, batch["image"][b], {"apply_to_channel": idx,
                                                          "multipliers": params["multiplier"][b, idx]})
        torch.testing.assert_close(out[b], expected, atol=0, rtol=0)


@pytest.mark.parametrize("dim", ["2d", "3d"])
@pytest.mark.parametrize("preserve_range", [True, False])
def test_contrast_equals_bgv2(dim, preserve_range):
    batch = make_batch(SHAPES[dim])
    ours = BatchedContrast(preserve_range=preserve_range, p_per_channel=0.7)
    torch.manual_seed(4)
    params = ours.get_parameters(batch)
    params["factor"][0, 0] = 1.6  # a factor that stretches past the channel's range, so the clip matters
    out = ours.apply(batch, params)["image"]
    theirs = ContrastTransform(BGContrast((0.75, 1.25)), preserve_range, False, 0.7)
    for b in range(batch["image"].shape[0]):
        idx = channel_index(params["apply"][b])
        expected = bgv2_image(theirs, batch["image"][b], {"apply_to_channel": idx,
                                                          "multipliers": params["factor"][b, idx]})
        torch.testing.assert_close(out[b], expected, atol=IMAGE_ATOL, rtol=0)


@pytest.mark.parametrize("dim", ["2d", "3d"])
@pytest.mark.parametrize("p_invert_image", [0.0, 1.0, 0.5])
def test_gamma_equals_bgv2(dim, p_invert_image):
    batch = make_batch(SHAPES[dim])
    ours = BatchedGamma(p_invert_image=p_invert_image, p_per_channel=0.8, p_retain_stats=0.5)
    torch.manual_seed(5)
    params = ours.get_parameters(batch)
    out = ours.apply(batch, params)["image"]
    theirs = GammaTransform(BGContrast((0.7, 1.5)), p_invert_image, False, 0.8, 0.5)
    for b in range(batch["image"].shape[0]):
        idx = channel_index(params["apply"][b])
        bg_params = {"apply_to_channel": idx, "retain_stats": params["retain_stats"][b, idx],
                     "invert_image": params["invert"][b, idx], "gamma": params["gamma"][b, idx]}
        expected = bgv2_image(theirs, batch["image"][b], bg_params)
        torch.testing.assert_close(out[b], expected, atol=IMAGE_ATOL, rtol=0)


@pytest.mark.parametrize("dim", ["2d", "3d"])
@pytest.mark.parametrize("ignore_axes", [None, (0,)])
def test_low_resolution_equals_bgv2_bit_for_bit(dim, ignore_axes):
    batch = make_batch(SHAPES[dim], batch_size=6)
    ours = BatchedSimulateLowResolution(ignore_axes=ignore_axes, p_per_channel=0.7)
    torch.manual_seed(6)
    params = ours.get_parameters(batch)
    out = ours.apply(batch, params)["image"]
    theirs = SimulateLowResolutionTransform((0.5, 1), False, True, ignore_axes, None, 0.7)
    for b in range(batch["image"].shape[0]):
        idx = channel_index(params["apply"][b])
        expected = bgv2_image(theirs, batch["image"][b], {"apply_to_channel": idx, "scales": params["scale"][b, idx]})
        assert torch.equal(out[b], expected)


def test_mask_remove_label_and_regions_equal_bgv2_exactly():
    batch = make_batch(SHAPES["3d"])
    masked = BatchedMaskImage([0, 2]).apply(batch, {})
    removed = BatchedRemoveLabel(-1, 0).apply(masked, {})
    regions = [[1, 2, 3], (2, 3), 3, [-1]]
    as_regions = BatchedConvertSegmentationToRegions(regions, 0).apply(removed, {})
    bg_mask = MaskImageTransform([0, 2], 0, 0)
    bg_remove = RemoveLabelTransform(-1, 0)
    bg_regions = ConvertSegmentationToRegionsTransform(regions, 0)
    assert (batch["segmentation"] == -1).any()
    for b in range(batch["image"].shape[0]):
        sample = {"image": batch["image"][b].clone(), "segmentation": batch["segmentation"][b].clone()}
        sample = bg_mask(**sample)
        assert torch.equal(masked["image"][b], sample["image"])
        sample = bg_remove(**sample)
        assert torch.equal(removed["segmentation"][b], sample["segmentation"])
        sample = bg_regions(**sample)
        assert as_regions["segmentation"].dtype == torch.bool
        assert torch.equal(as_regions["segmentation"][b], sample["segmentation"])
    assert (batch["segmentation"] == -1).any(), "the input batch must not be changed"
    # numpy integers as labels (bgv2 would read np.int64(3) as a tensor size: python ints only there)
    numpy_regions = [[1, 2, 3], (2, np.int64(3)), np.int64(3), [-1]]
    same = BatchedConvertSegmentationToRegions(numpy_regions, 0).apply(removed, {})
    assert torch.equal(same["segmentation"], as_regions["segmentation"])


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_move_seg_as_one_hot_equals_bgv2_exactly(dim):
    batch = make_batch(SHAPES[dim])
    out = BatchedMoveSegAsOneHotToData(1, [1, 3, 2], True).apply(batch, {})
    theirs = MoveSegAsOneHotToDataTransform(1, [1, 3, 2], True)
    assert out["image"].shape[1] == 6 and out["segmentation"].shape[1] == 1
    for b in range(batch["image"].shape[0]):
        expected = theirs(image=batch["image"][b].clone(), segmentation=batch["segmentation"][b].clone())
        assert torch.equal(out["image"][b], expected["image"])
        assert torch.equal(out["segmentation"][b], expected["segmentation"])


def test_move_seg_as_one_hot_needs_labels():
    with pytest.raises(ProgressiveConfigError, match="foreground labels"):
        BatchedMoveSegAsOneHotToData(1, [])


# ------------------------------------------------------------------------------------------ (b) parameter draws
def _ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


KS_LIMIT = 0.06  # two-sample KS at 4000 vs 4000 draws: p < 1e-6 beyond this (and the seeds are fixed)


@pytest.mark.parametrize("contrast_range", [(0.75, 1.25), (0.7, 1.5), (1.1, 1.5)])
def test_bg_contrast_draws_follow_bgv2(contrast_range):
    torch.manual_seed(11)
    ours = draw_scalar(BGContrast(contrast_range), (4000,), "test").numpy()
    np.random.seed(11)
    theirs = np.array([BGContrast(contrast_range)() for _ in range(4000)])
    assert _ks_distance(ours, theirs) < KS_LIMIT
    assert ours.min() >= contrast_range[0] and ours.max() <= contrast_range[1]
    expected_below = 0.5 if contrast_range[0] < 1 else 0.0
    assert np.mean(ours < 1) == pytest.approx(expected_below, abs=0.04)


def test_scalar_ranges_and_their_errors():
    torch.manual_seed(12)
    uniform = draw_scalar((0.0, 0.1), (4000,), "test")
    assert 0 <= uniform.min() and uniform.max() <= 0.1 and uniform.mean().item() == pytest.approx(0.05, abs=0.003)
    assert torch.equal(draw_scalar(0.3, (2, 2), "test"), torch.full((2, 2), 0.3, dtype=torch.float64))
    with pytest.raises(ProgressiveConfigError, match="BatchedX"):
        draw_scalar((1.0, 0.5), (2,), "BatchedX")
    with pytest.raises(ProgressiveConfigError, match="callable"):
        draw_scalar(BGContrast(lambda: 1.0), (2,), "BatchedX")


def _bgv2_draws(transform, image: torch.Tensor, n: int) -> list[dict]:
    torch.manual_seed(13)
    np.random.seed(13)
    return [transform.get_parameters(image=image) for _ in range(n)]


def test_blur_draws_follow_bgv2():
    image = torch.zeros((2, 4, 4, 4))
    ours = BatchedGaussianBlur()
    torch.manual_seed(13)
    params = ours.get_parameters({"image": torch.zeros((2000, 2, 4, 4, 4))})
    theirs = _bgv2_draws(GaussianBlurTransform((0.5, 1.0), False, False, 0.5, True), image, 2000)
    their_rate = np.mean([p["apply_to_channel"].float().mean().item() for p in theirs])
    assert params["apply"].float().mean().item() == pytest.approx(their_rate, abs=0.03)
    assert their_rate == pytest.approx(0.5, abs=0.03)
    their_sigmas = np.array([s for p in theirs for channel in p["sigmas"] for s in channel])
    our_sigmas = params["sigma"][params["apply"]].numpy()
    assert _ks_distance(our_sigmas.ravel(), their_sigmas) < KS_LIMIT
    axes = params["sigma"].reshape(-1, 3).numpy()
    assert abs(np.corrcoef(axes[:, 0], axes[:, 1])[0, 1]) < 0.06, "axes are drawn independently"
    channels = params["sigma"][:, :, 0].numpy()
    assert abs(np.corrcoef(channels[:, 0], channels[:, 1])[0, 1]) < 0.06, "channels are drawn independently"


def test_low_resolution_draws_follow_bgv2():
    image = torch.zeros((2, 4, 4, 4))
    ours = BatchedSimulateLowResolution(ignore_axes=(0,))
    torch.manual_seed(14)
    params = ours.get_parameters({"image": torch.zeros((2000, 2, 4, 4, 4))})
    theirs = _bgv2_draws(SimulateLowResolutionTransform((0.5, 1), False, True, (0,), None, 0.5), image, 2000)
    their_rate = np.mean([len(p["apply_to_channel"]) / 2 for p in theirs])
    assert params["apply"].float().mean().item() == pytest.approx(their_rate, abs=0.03)
    assert torch.all(params["scale"][:, :, 0] == 1)
    assert torch.equal(params["scale"][:, :, 1], params["scale"][:, :, 2]), "axes are synchronised"
    their_scales = np.concatenate([p["scales"][:, 1].numpy() for p in theirs if len(p["scales"])])
    assert _ks_distance(params["scale"][:, :, 1].flatten().numpy(), their_scales) < KS_LIMIT
    assert abs(np.corrcoef(params["scale"][:, 0, 1], params["scale"][:, 1, 1])[0, 1]) < 0.06


def test_noise_brightness_contrast_gamma_draws_follow_bgv2():
    batch = {"image": torch.zeros((4000, 2, 4, 4))}
    image = torch.zeros((2, 4, 4))
    torch.manual_seed(15)
    noise = BatchedGaussianNoise().get_parameters(batch)
    assert noise["apply"].all() and torch.equal(noise["sigma"][:, 0], noise["sigma"][:, 1])
    their_noise = [p["sigmas"] for p in _bgv2_draws(GaussianNoiseTransform((0, 0.1), 1, True), image, 4000)]
    assert _ks_distance(noise["sigma"][:, 0].numpy(), np.array(their_noise)) < KS_LIMIT

    cases = [(BatchedMultiplicativeBrightness(), "multiplier",
              MultiplicativeBrightnessTransform(BGContrast((0.75, 1.25)), False, 1), "multipliers"),
             (BatchedContrast(), "factor", ContrastTransform(BGContrast((0.75, 1.25)), True, False, 1), "multipliers"),
             (BatchedGamma(p_invert_image=1), "gamma", GammaTransform(BGContrast((0.7, 1.5)), 1, False, 1, 1), "gamma")]
    for ours, our_key, theirs, their_key in cases:
        params = ours.get_parameters(batch)
        assert params["apply"].all()
        their_values = np.concatenate([p[their_key].numpy() for p in _bgv2_draws(theirs, image, 2000)])
        assert _ks_distance(params[our_key].flatten().numpy(), their_values) < KS_LIMIT, type(ours).__name__
        assert abs(np.corrcoef(params[our_key][:, 0], params[our_key][:, 1])[0, 1]) < 0.06
    gamma = BatchedGamma(p_invert_image=1).get_parameters(batch)
    assert gamma["invert"].all() and gamma["retain_stats"].all()
    assert not BatchedGamma(p_invert_image=0).get_parameters(batch)["invert"].any()


# ------------------------------------------------------------------------------------------ (c) random wrapper
def test_random_transform_with_gamma_leaves_unselected_samples_untouched():
    batch = make_batch(SHAPES["3d"], batch_size=8)
    original = {key: value.clone() for key, value in batch.items()}
    wrapper = BatchedRandomTransform(BatchedGamma(p_invert_image=1), apply_probability=0.5)
    torch.manual_seed(16)
    params = wrapper.get_parameters(batch)
    selected = set(params["selected"].tolist())
    assert 0 < len(selected) < 8
    out = wrapper.apply(batch, params)
    for b in range(8):
        if b in selected:
            assert not torch.equal(out["image"][b], original["image"][b])
        else:
            assert torch.equal(out["image"][b], original["image"][b])
    assert torch.equal(out["segmentation"], original["segmentation"])
    for key in batch:
        assert torch.equal(batch[key], original[key]), "the input batch must not be changed"


@pytest.mark.parametrize("transform", [
    BatchedGaussianNoise(), BatchedGaussianBlur(p_per_channel=1), BatchedMultiplicativeBrightness(),
    BatchedContrast(), BatchedSimulateLowResolution(p_per_channel=1), BatchedGamma(p_invert_image=1),
    BatchedMaskImage([0, 1]), BatchedRemoveLabel(), BatchedConvertSegmentationToRegions([1, [2, 3]]),
    BatchedMoveSegAsOneHotToData(1, [1, 2]),
], ids=lambda transform: type(transform).__name__)
def test_transforms_return_new_tensors_and_leave_the_batch_unchanged(transform):
    batch = make_batch(SHAPES["3d"], batch_size=3)
    original = {key: value.clone() for key, value in batch.items()}
    torch.manual_seed(17)
    out = transform(batch)
    for key in batch:
        assert torch.equal(batch[key], original[key])
    assert any(not torch.equal(out[key], original[key]) for key in out if out[key].shape == original[key].shape) \
        or any(out[key].shape != original[key].shape for key in out)
