"""The batched spatial steps against batchgeneratorsv2's per-sample transforms (nnU-Net 2.8.1's settings).

Equivalence: every sample goes through bgv2's transform with parameters from its own ``get_parameters``; the
same parameters, stacked, go through the batched transform. Images, grids and label maps are compared with
``==`` (tolerance 0: on CPU the batched calls compute the same float operations in the same order).
Draws: the batched ``get_parameters`` over thousands of samples against bgv2's, with fixed seeds.
"""
from __future__ import annotations

import inspect
import types

import numpy as np
import pytest
import torch
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.spatial.spatial import (
    SpatialTransform,
    create_affine_matrix_2d,
    create_affine_matrix_3d,
)
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform, Convert3DTo2DTransform

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.nnunet.batched_augmentation import pipeline as pipeline_module
from nnunet_progressive.nnunet.batched_augmentation.base import BatchedCompose, BatchedRandomTransform
from nnunet_progressive.nnunet.batched_augmentation.spatial import (
    BatchedConvert2DTo3D,
    BatchedConvert3DTo2D,
    BatchedDownsampleSegForDS,
    BatchedMirror,
    BatchedSpatialTransform,
    affine_matrices,
    sampling_grids,
)

NNUNET_SPATIAL = dict(patch_center_dist_from_border=0, random_crop=False, p_elastic_deform=0,
                      p_synchronize_scaling_across_axes=1, bg_style_seg_sampling=False,
                      border_mode_seg="constant", padding_value_seg=-1)


def blocky_labels(n: int, channels: int, shape: tuple[int, ...], low: int, high: int, seed: int) -> torch.Tensor:
    """Label maps of blocks (so resampling meets boundaries, corners and ties), int16 (n, channels, *shape)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randint(low, high + 1, (n, channels, *[max(1, s // 3) for s in shape]), generator=gen)
    return torch.nn.functional.interpolate(coarse.float(), size=shape, mode="nearest").to(torch.int16)


def reference_spatial(reference: SpatialTransform, image: torch.Tensor, seg: torch.Tensor):
    """bgv2 per sample; returns its stacked outputs, its grids and the same parameters stacked for ours."""
    images, segs, grids, affines, transformed = [], [], [], [], []
    dim = image.ndim - 2
    for b in range(image.shape[0]):
        params = reference.get_parameters(image=image[b])
        out = reference.apply({"image": image[b].clone(), "segmentation": seg[b].clone()}, **params)
        images.append(out["image"])
        segs.append(out["segmentation"])
        transformed.append(params["affine"] is not None)
        grids.append(params["grid"])
        affines.append(torch.eye(dim, dtype=torch.float64) if params["affine"] is None
                       else torch.from_numpy(params["affine"]))
    ours = {"transformed": torch.tensor(transformed), "affine": torch.stack(affines)}
    return torch.stack(images), torch.stack(segs), grids, ours


def assert_spatial_equal(shape, patch, *, channels=1, seg_channels=1, labels=(-1, 3), p=1.0,
                         rotation=(-0.6, 0.6), scaling=(0.7, 1.4), batch=3, seed=0, expect_mixed=False):
    np.random.seed(seed)
    torch.manual_seed(seed)
    kwargs = dict(NNUNET_SPATIAL, p_rotation=p, rotation=rotation, p_scaling=p, scaling=scaling)
    reference = SpatialTransform(patch, **kwargs)
    ours = BatchedSpatialTransform(patch, **kwargs)
    image = torch.randn(batch, channels, *shape)
    seg = blocky_labels(batch, seg_channels, shape, *labels, seed=seed)
    ref_image, ref_seg, ref_grids, params = reference_spatial(reference, image, seg)
    if expect_mixed:
        assert 0 < int(params["transformed"].sum()) < batch, "the seed must give transformed and cropped samples"
    selected = params["transformed"].nonzero().flatten()
    if selected.numel():
        grids = sampling_grids(params["affine"][selected], patch, shape)
        for row, b in enumerate(selected.tolist()):
            assert torch.equal(grids[row], ref_grids[b])
    image_before, seg_before = image.clone(), seg.clone()
    out = ours.apply({"image": image, "segmentation": seg}, params)
    assert torch.equal(image, image_before) and torch.equal(seg, seg_before), "the input batch was modified"
    assert out["image"].shape == ref_image.shape and out["segmentation"].dtype == torch.int16
    assert torch.equal(out["image"], ref_image)
    assert torch.equal(out["segmentation"], ref_seg), \
        f"{int((out['segmentation'] != ref_seg).sum())} of {ref_seg.numel()} labels differ"
    return out, params


def test_3d_rotation_and_scaling_equal_bgv2():
    out, params = assert_spatial_equal((20, 24, 28), (16, 18, 20), channels=2)
    assert bool(params["transformed"].all())
    assert set(torch.unique(out["segmentation"]).tolist()) <= set(range(-1, 4))


def test_3d_mixed_batch_crops_untransformed_samples():
    assert_spatial_equal((20, 24, 28), (16, 18, 20), p=0.35, batch=6, seed=3, expect_mixed=True)


def test_pure_center_crop_with_padding_equals_bgv2():
    # patch larger than the input on two axes: bgv2 pads (image 0, segmentation -1) without interpolating
    assert_spatial_equal((21, 23, 25), (16, 17, 30), p=0.0, labels=(0, 2))
    out, params = assert_spatial_equal((20, 24, 28), (16, 27, 31), p=0.0, labels=(0, 2))
    assert not bool(params["transformed"].any())
    assert bool((out["segmentation"][:, :, :, 0] == -1).all()) and bool((out["image"][:, :, :, 0] == 0).all())


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_outputs_never_alias_the_input(p):
    """Later steps may work in place: writing into the output must leave the loader's batch alone."""
    torch.manual_seed(21)
    transform = BatchedSpatialTransform((8, 10), p_rotation=p, rotation=(-1, 1), p_scaling=p, scaling=(0.7, 1.4))
    batch = {"image": torch.randn(4, 1, 8, 12), "segmentation": blocky_labels(4, 1, (8, 12), 0, 2, seed=21)}
    before = {key: value.clone() for key, value in batch.items()}
    out = transform(batch)
    out["image"] += 1
    out["segmentation"] += 1
    assert all(torch.equal(batch[key], before[key]) for key in batch)


def test_transformed_patch_larger_than_input_equals_bgv2():
    # kernels reach outside: the padding label -1 enters the argmax, labels 0..1 only (two-label branch)
    assert_spatial_equal((14, 16, 18), (18, 20, 22), labels=(0, 1), seed=1)


def test_2d_equals_bgv2():
    assert_spatial_equal((30, 34), (24, 26), channels=3, rotation=(-3.14159, 3.14159), batch=4, seed=2)


def test_anisotropic_3d_equals_bgv2():
    assert_spatial_equal((8, 26, 30), (6, 22, 24), rotation=(-0.3, 0.3), seed=4)


def test_cascade_like_two_channel_segmentation_equals_bgv2():
    # channel 1 plays the previous stage's segmentation; labels differ per channel and per sample
    assert_spatial_equal((18, 20, 22), (14, 16, 18), channels=2, seg_channels=2, labels=(0, 4), seed=5)


def test_single_and_two_label_segmentations_equal_bgv2():
    assert_spatial_equal((18, 20, 22), (12, 14, 16), labels=(0, 0), seed=6)
    assert_spatial_equal((18, 20, 22), (12, 14, 16), labels=(0, 1), seed=7)
    assert_spatial_equal((18, 20, 22), (12, 14, 16), labels=(2, 3), seed=8)


def test_exact_ties_settled_like_bgv2():
    """Scaling by exactly 0.5 (odd patch, even input) or 2 without rotation puts sample points exactly between
    pixels: boundary voxels become exact ties that bgv2 settles with the nearest neighbour. Patches that stay
    inside the input keep two labels in the two-label branch; the others add the padding label."""
    for scale, shape, patch in ((0.5, (16, 20, 24), (13, 15, 17)), (2.0, (24, 28, 30), (9, 11, 13)),
                                (2.0, (16, 20, 24), (12, 14, 16))):
        assert_spatial_equal(shape, patch, rotation=0.0, scaling=scale, labels=(0, 3), seed=9)
        assert_spatial_equal(shape, patch, rotation=0.0, scaling=scale, labels=(0, 1), seed=10)
        assert_spatial_equal(shape[1:], patch[1:], rotation=0.0, scaling=scale, labels=(1, 2), seed=11)


def test_dummy_2d_equals_bgv2():
    np.random.seed(11)
    torch.manual_seed(11)
    patch = (12, 20, 22)
    kwargs = dict(NNUNET_SPATIAL, p_rotation=0.7, rotation=(-3.14159, 3.14159), p_scaling=0.7, scaling=(0.7, 1.4))
    reference = [Convert3DTo2DTransform(), SpatialTransform(patch[1:], **kwargs), Convert2DTo3DTransform()]
    image = torch.randn(4, 2, 12, 24, 26)
    seg = blocky_labels(4, 1, (12, 24, 26), -1, 2, seed=11)
    ref_images, ref_segs, affines, transformed = [], [], [], []
    for b in range(4):
        sample = reference[0](image=image[b].clone(), segmentation=seg[b].clone())
        params = reference[1].get_parameters(**sample)
        sample = reference[1].apply(sample, **params)
        sample = reference[2](**sample)
        ref_images.append(sample["image"])
        ref_segs.append(sample["segmentation"])
        transformed.append(params["affine"] is not None)
        affines.append(torch.eye(2, dtype=torch.float64) if params["affine"] is None
                       else torch.from_numpy(params["affine"]))
    assert 0 < sum(transformed) < 4
    spatial = BatchedSpatialTransform(patch[1:], **kwargs)
    batch = BatchedConvert3DTo2D()({"image": image, "segmentation": seg})
    assert batch["image"].shape == (4, 24, 24, 26) and batch["nchannels_img"] == 2
    batch = spatial.apply(batch, {"transformed": torch.tensor(transformed), "affine": torch.stack(affines)})
    batch = BatchedConvert2DTo3D()(batch)
    assert "nchannels_img" not in batch and batch["image"].shape == (4, 2, *patch)
    assert torch.equal(batch["image"], torch.stack(ref_images))
    assert torch.equal(batch["segmentation"], torch.stack(ref_segs))


def test_affine_matrices_equal_bgv2():
    gen = torch.Generator().manual_seed(12)
    angles = (torch.rand((20, 3), generator=gen, dtype=torch.float64) - 0.5) * 6
    scales = 0.7 + 0.7 * torch.rand((20, 3), generator=gen, dtype=torch.float64)
    ours3 = affine_matrices(angles, scales)
    ours2 = affine_matrices(angles[:, :2], scales[:, :2])
    for i in range(20):
        ref3 = create_affine_matrix_3d(angles[i].tolist(), scales[i].tolist())
        ref2 = create_affine_matrix_2d(angles[i, 1].item(), scales[i, :2].tolist())
        assert np.allclose(ours3[i].numpy(), ref3, rtol=0, atol=1e-14)
        assert np.allclose(ours2[i].numpy(), ref2, rtol=0, atol=1e-14)
        # what the grid sees (float32) is identical
        assert torch.equal(ours3[i].float(), torch.from_numpy(ref3).float())


def test_mirror_equals_bgv2():
    torch.manual_seed(13)
    image = torch.randn(6, 2, 6, 7, 8)
    seg = blocky_labels(6, 2, (6, 7, 8), 0, 3, seed=13)
    reference = MirrorTransform((0, 2))
    ours = BatchedMirror((0, 2))
    flips, ref_images, ref_segs = [], [], []
    for b in range(6):
        params = reference.get_parameters(image=image[b])
        out = reference.apply({"image": image[b].clone(), "segmentation": seg[b].clone()}, **params)
        ref_images.append(out["image"])
        ref_segs.append(out["segmentation"])
        flips.append([axis in params["axes"] for axis in (0, 2)])
    flip = torch.tensor(flips)
    assert bool(flip.any()) and not bool(flip.all())
    image_before = image.clone()
    out = ours.apply({"image": image, "segmentation": seg}, {"flip": flip})
    assert torch.equal(out["image"], torch.stack(ref_images))
    assert torch.equal(out["segmentation"], torch.stack(ref_segs))
    # the input batch is left as it was
    assert torch.equal(image, image_before)


def test_downsample_seg_for_ds_equals_bgv2():
    seg = blocky_labels(3, 2, (20, 24, 28), -1, 3, seed=14)
    scales = [[1, 1, 1], [1, 0.5, 0.5], [0.5, 0.25, 0.25], [0.125, 0.125, 0.125]]
    reference = DownsampleSegForDSTransform(scales)
    expected = [reference(segmentation=seg[b].clone())["segmentation"] for b in range(3)]
    out = BatchedDownsampleSegForDS(scales)({"image": torch.zeros(3, 1, 20, 24, 28), "segmentation": seg})
    assert isinstance(out["segmentation"], list) and len(out["segmentation"]) == 4
    for level, tensor in enumerate(out["segmentation"]):
        assert tensor.dtype == torch.int16
        assert torch.equal(tensor, torch.stack([e[level] for e in expected]))
    assert out["segmentation"][2].shape == (3, 2, 10, 6, 7)


# ---- parameter draws ------------------------------------------------------------------------------------------
def bgv2_draw_statistics(reference: SpatialTransform, image: torch.Tensor, draws: int):
    rotated, scaled, scales, angles = [], [], [], []
    dim = image.ndim - 1
    for _ in range(draws):
        affine = reference.get_parameters(image=image)["affine"]
        if affine is None:
            rotated.append(False)
            scaled.append(False)
            continue
        scale = abs(np.linalg.det(affine)) ** (1 / dim)
        rotation = affine / scale
        is_rotated = not np.allclose(rotation, np.eye(dim), atol=1e-9)
        rotated.append(is_rotated)
        scaled.append(not np.isclose(scale, 1.0, atol=1e-9))
        if scaled[-1]:
            scales.append(scale)
        if dim == 2 and is_rotated:
            angles.append(np.arctan2(rotation[1, 0], rotation[0, 0]))
    return np.array(rotated), np.array(scaled), np.array(scales), np.array(angles)


@pytest.mark.parametrize("dim", [2, 3])
def test_spatial_draws_match_bgv2(dim):
    draws = 3000
    np.random.seed(15)
    torch.manual_seed(15)
    rotation = (-0.5, 0.5)
    patch = (4,) * dim
    kwargs = dict(NNUNET_SPATIAL, p_rotation=0.2, rotation=rotation, p_scaling=0.2, scaling=(0.7, 1.4))
    rotated, scaled, ref_scales, ref_angles = bgv2_draws = bgv2_draw_statistics(
        SpatialTransform(patch, **kwargs), torch.zeros(1, *(6,) * dim), draws)
    del bgv2_draws
    ours = BatchedSpatialTransform(patch, **kwargs)
    ours.generator = torch.Generator().manual_seed(15)
    params = ours.get_parameters({"image": torch.zeros(draws, 1, *(2,) * dim)})
    our_rotated = (params["angles"] != 0).any(1)
    our_scaled = (params["scales"] != 1).any(1)
    # binomial sd at p 0.2, n 3000 is 0.0073: 0.035 is more than 4.5 sd for each side, with fixed seeds
    for ref, mine in ((rotated, our_rotated), (scaled, our_scaled)):
        assert abs(ref.mean() - 0.2) < 0.035 and abs(mine.float().mean().item() - 0.2) < 0.035
    assert torch.equal(params["transformed"], our_rotated | our_scaled)
    # rotation and scaling are drawn independently: both at once about 0.04
    assert abs((our_rotated & our_scaled).float().mean().item() - 0.04) < 0.02
    # scaling: one factor for all axes (p_synchronize 1), uniform in (0.7, 1.4) like bgv2's
    our_scales = params["scales"][our_scaled]
    assert bool((our_scales == our_scales[:, :1]).all())
    for values in (ref_scales, our_scales[:, 0].numpy()):
        assert values.min() >= 0.7 and values.max() <= 1.4
        assert abs(values.mean() - 1.05) < 0.03 and abs(values.std() - 0.7 / 12 ** 0.5) < 0.02
        assert values.min() < 0.72 and values.max() > 1.38
    # angles: one per axis, each uniform in the rotation range, independent across axes
    our_angles = params["angles"][our_rotated]
    assert bool((our_angles.abs() <= 0.5).all()) and abs(our_angles.mean().item()) < 0.04
    assert abs(our_angles.std().item() - 1 / 12 ** 0.5) < 0.02
    if dim == 3:
        assert abs(np.corrcoef(our_angles[:, 0].numpy(), our_angles[:, 2].numpy())[0, 1]) < 0.15
    else:
        # bgv2 uses the last axis' angle in 2D: compare its distribution with ours
        assert abs(ref_angles.mean()) < 0.04 and abs(ref_angles.std() - 1 / 12 ** 0.5) < 0.02
        assert np.abs(ref_angles).max() <= 0.5 + 1e-9
    # the affine is the one of the drawn angles and scales; identity where nothing was drawn
    assert torch.equal(params["affine"], affine_matrices(params["angles"], params["scales"]))
    untouched = ~params["transformed"]
    assert bool((params["affine"][untouched] == torch.eye(dim, dtype=torch.float64)).all())


def test_mirror_draws_match_bgv2():
    draws = 3000
    torch.manual_seed(16)
    reference = MirrorTransform((0, 1, 2))
    counts = np.zeros(3)
    for _ in range(draws):
        for axis in reference.get_parameters(image=torch.zeros(1, 2, 2, 2))["axes"]:
            counts[axis] += 1
    ours = BatchedMirror((0, 1, 2))
    ours.generator = torch.Generator().manual_seed(16)
    flip = ours.get_parameters({"image": torch.zeros(draws, 1, 2, 2, 2)})["flip"]
    # sd 0.0091 at p 0.5, n 3000: 0.04 is more than 4 sd
    assert np.all(np.abs(counts / draws - 0.5) < 0.04)
    assert bool(((flip.float().mean(0) - 0.5).abs() < 0.04).all())
    assert abs((flip[:, 0] & flip[:, 1]).float().mean().item() - 0.25) < 0.04


def test_unsupported_settings_say_so():
    with pytest.raises(ProgressiveConfigError, match="elastic"):
        BatchedSpatialTransform((8, 8), p_elastic_deform=0.1)
    with pytest.raises(ProgressiveConfigError, match="random_crop"):
        BatchedSpatialTransform((8, 8), random_crop=True)
    with pytest.raises(ProgressiveConfigError, match="cannot draw"):
        BatchedSpatialTransform((8, 8), p_rotation=1, rotation=lambda **_: 0.1).get_parameters(
            {"image": torch.zeros(2, 1, 8, 8)})


# ---- pipeline structure ---------------------------------------------------------------------------------------
BGV2_OF_BATCHED = {
    "BatchedGaussianNoise": "batchgeneratorsv2.transforms.intensity.gaussian_noise.GaussianNoiseTransform",
    "BatchedGaussianBlur": "batchgeneratorsv2.transforms.noise.gaussian_blur.GaussianBlurTransform",
    "BatchedMultiplicativeBrightness":
        "batchgeneratorsv2.transforms.intensity.brightness.MultiplicativeBrightnessTransform",
    "BatchedContrast": "batchgeneratorsv2.transforms.intensity.contrast.ContrastTransform",
    "BatchedSimulateLowResolution":
        "batchgeneratorsv2.transforms.spatial.low_resolution.SimulateLowResolutionTransform",
    "BatchedGamma": "batchgeneratorsv2.transforms.intensity.gamma.GammaTransform",
    "BatchedMaskImage": "batchgeneratorsv2.transforms.utils.nnunet_masking.MaskImageTransform",
    "BatchedRemoveLabel": "batchgeneratorsv2.transforms.utils.remove_label.RemoveLabelTansform",
    "BatchedConvertSegmentationToRegions":
        "batchgeneratorsv2.transforms.utils.seg_to_regions.ConvertSegmentationToRegionsTransform",
    "BatchedMoveSegAsOneHotToData": "batchgeneratorsv2.transforms.nnunet.seg_to_onehot.MoveSegAsOneHotToDataTransform",
}


def _import(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(__import__(module, fromlist=[name]), name)


def fake_intensity_module() -> types.ModuleType:
    """Stand-ins for the intensity steps: identity on the batch, remembering the arguments they were built with."""
    module = types.ModuleType("fake_intensity")
    for name in BGV2_OF_BATCHED:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

        def apply(self, batch, params):
            return batch
        cls = type(name, (pipeline_module.BatchedTransform,), {"__init__": __init__, "apply": apply})
        setattr(module, name, cls)
    return module


def bgv2_equivalent(step):
    """The bgv2 transform a batched step stands for, built from the arguments the pipeline gave it."""
    if isinstance(step, BatchedRandomTransform):
        from batchgeneratorsv2.transforms.utils.random import RandomTransform
        return RandomTransform(bgv2_equivalent(step.transform), apply_probability=step.apply_probability)
    if isinstance(step, pipeline_module.PerSampleTransform):
        return step.transform
    if type(step).__name__ in BGV2_OF_BATCHED:
        cls = _import(BGV2_OF_BATCHED[type(step).__name__])
        inspect.signature(cls).bind(*step.args, **step.kwargs)  # the arguments fit bgv2's constructor
        return cls(*step.args, **step.kwargs)
    if isinstance(step, BatchedConvert3DTo2D):
        return Convert3DTo2DTransform()
    if isinstance(step, BatchedConvert2DTo3D):
        return Convert2DTo3DTransform()
    if isinstance(step, BatchedMirror):
        return MirrorTransform(allowed_axes=step.allowed_axes)
    if isinstance(step, BatchedDownsampleSegForDS):
        return DownsampleSegForDSTransform(ds_scales=step.ds_scales)
    if isinstance(step, BatchedSpatialTransform):
        return SpatialTransform(step.patch_size, 0, False, p_elastic_deform=0, p_rotation=step.p_rotation,
                                rotation=step.rotation, p_rot_per_axis=step.p_rot_per_axis, p_scaling=step.p_scaling,
                                scaling=step.scaling,
                                p_synchronize_scaling_across_axes=step.p_synchronize_scaling_across_axes,
                                bg_style_seg_sampling=False, mode_seg=step.mode_seg, border_mode_seg="constant",
                                padding_value_seg=step.pad_label)
    raise AssertionError(f"no bgv2 counterpart for {type(step).__name__}")


def _normalise(text: str) -> str:
    # function addresses, tuples vs lists and int vs float spellings are not differences of behaviour
    import re
    text = re.sub(r" at 0x[0-9a-f]+", "", text)
    return text.replace("(", "[").replace(")", "]").replace(".0,", ",").replace(".0]", "]").replace("-1.0", "-1")


@pytest.mark.parametrize("case", [
    dict(patch_size=(20, 24, 28), rotation_for_DA=(-0.52, 0.52), deep_supervision_scales=[[1, 1, 1], [0.5, 0.5, 0.5]],
         mirror_axes=(0, 1, 2), do_dummy_2d_data_aug=False),
    dict(patch_size=(8, 24, 28), rotation_for_DA=(-3.14, 3.14), deep_supervision_scales=[[1, 1, 1], [1, 0.5, 0.5]],
         mirror_axes=(1, 2), do_dummy_2d_data_aug=True, use_mask_for_norm=[True, False], regions=[[1, 2], 2],
         ignore_label=3),
    dict(patch_size=(24, 28), rotation_for_DA=(-3.14, 3.14), deep_supervision_scales=None, mirror_axes=(),
         do_dummy_2d_data_aug=False, use_mask_for_norm=[False], is_cascaded=True, foreground_labels=[1, 2]),
])
def test_pipeline_has_nnunets_steps(monkeypatch, case):
    """Intensity steps replaced by recording stand-ins (monkeypatched ``pipeline.intensity_module``): every step,
    its probability and its arguments equal nnU-Net 2.8.1's ``get_training_transforms``, compared as bgv2 reprs."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    monkeypatch.setattr(pipeline_module, "intensity_module", fake_intensity_module)
    ours = pipeline_module.build_training_pipeline(**case)
    assert isinstance(ours, BatchedCompose)
    theirs = nnUNetTrainer.get_training_transforms(**case).transforms
    assert [type(t).__name__ for t in theirs] == [type(bgv2_equivalent(s)).__name__ for s in ours.transforms]
    for step, their in zip(ours.transforms, theirs):
        assert _normalise(repr(bgv2_equivalent(step))) == _normalise(repr(their))


def test_pipeline_spatial_mirror_ds_run_on_a_batch(monkeypatch):
    monkeypatch.setattr(pipeline_module, "intensity_module", fake_intensity_module)
    torch.manual_seed(17)
    np.random.seed(17)
    steps = pipeline_module.build_training_pipeline(
        (8, 12, 14), (-3.14, 3.14), [[1, 1, 1], [1, 0.5, 0.5], [1, 0.25, 0.25]], (1, 2), True)
    image = torch.randn(5, 2, 8, 18, 20)
    seg = blocky_labels(5, 1, (8, 18, 20), -1, 2, seed=17)
    out = steps({"image": image, "segmentation": seg})
    assert out["image"].shape == (5, 2, 8, 12, 14)
    assert [tuple(s.shape) for s in out["segmentation"]] == [(5, 1, 8, 12, 14), (5, 1, 8, 6, 7), (5, 1, 8, 3, 4)]
    assert "nchannels_img" not in out and "nchannels_seg" not in out


def test_labels_present_by_counting_and_by_sorting_agree():
    from nnunet_progressive.nnunet.batched_augmentation.spatial import _labels_present
    channel = blocky_labels(4, 1, (6, 7, 8), -1, 5, seed=18)[:, 0]
    channel[channel == 2] = 3
    assert _labels_present(channel).tolist() == sorted(set(channel.flatten().tolist()))
    wide = channel.to(torch.int32) * 400_000  # too wide a span to count: the sorting path
    assert _labels_present(wide).tolist() == sorted(set(wide.flatten().tolist()))


def test_per_sample_fallback_runs_bgv2_on_each_sample():
    image = torch.randn(3, 2, 5, 6, 7)
    seg = blocky_labels(3, 1, (5, 6, 7), 0, 2, seed=19)
    torch.manual_seed(20)
    out = pipeline_module.PerSampleTransform(MirrorTransform((0, 1, 2)))({"image": image, "segmentation": seg})
    torch.manual_seed(20)
    reference = MirrorTransform((0, 1, 2))
    expected = [reference(image=image[b], segmentation=seg[b]) for b in range(3)]
    assert torch.equal(out["image"], torch.stack([e["image"] for e in expected]))
    assert torch.equal(out["segmentation"], torch.stack([e["segmentation"] for e in expected]))
