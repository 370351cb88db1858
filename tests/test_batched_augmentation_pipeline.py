"""The whole batched pipeline against nnU-Net 2.8.1's own, by the statistics of what comes out.

nnU-Net's side: ``nnUNetTrainer.get_training_transforms(...)`` applied to each sample and stacked as
``nnUNetDataLoader.generate_train_batch`` stacks it; ours: ``build_training_pipeline(...)`` with the same
arguments on the same batches (64 samples, initial patch and rotation from nnU-Net's own
``configure_rotation_dummyDA_mirroring_and_inital_patch_size``). The two draw differently, so single samples
differ; over some thousand samples the distributions of per-sample statistics must not: intensity moments and
quantiles per channel, label or region fractions (the -1 border turned into 0, the ignore label), the centre of
mass of an asymmetric object (its side per axis says how often each axis was mirrored or rotated over), at the
full and the lowest deep-supervision scale. Shapes and dtypes must be equal.

Two-sample tests: Kolmogorov-Smirnov for continuous statistics, a two-proportion z-test for yes/no ones; a
statistic fails below ``ALPHA``. Seeds are fixed, so a run is repeatable; ``test_comparison_rejects_*`` show the
comparison has the power to see a wrong probability or range or a missing step (each a p-value below
``ALPHA`` by orders of magnitude).
"""
from __future__ import annotations

import functools
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

from nnunet_progressive.nnunet.batched_augmentation import intensity
from nnunet_progressive.nnunet.batched_augmentation.base import BatchedCompose, BatchedRandomTransform
from nnunet_progressive.nnunet.batched_augmentation.pipeline import build_training_pipeline
from nnunet_progressive.nnunet.batched_augmentation.spatial import BatchedMirror, BatchedSpatialTransform

ALPHA = 1e-5  # below this a statistic's two distributions differ
BATCH = 64
INTENSITY_MEANS = ({-1: -3.0, 0: -2.0, 1: 0.0, 2: 2.0, 3: 3.5, 4: 1.0},           # channel 0: MR-like
                   {-1: -400.0, 0: -300.0, 1: 0.0, 2: 150.0, 3: 250.0, 4: -80.0})  # channel 1: CT-like
INTENSITY_NOISE = (0.0, 40.0)  # channel 0 piecewise constant: added noise shows
INTENSITY_OFFSET = (0.0, 100.0)


def level_ratios(channel: int) -> torch.Tensor:
    """(a - lo) / (hi - lo) for all intensity levels a, lo < hi of a channel (0 is the spatial transform's and
    the mask's fill value)."""
    levels = sorted({0.0, *(m + INTENSITY_OFFSET[channel] for m in INTENSITY_MEANS[channel].values())})
    return torch.tensor(sorted({(a - lo) / (hi - lo) for a in levels for lo in levels for hi in levels
                                if lo <= a <= hi and lo < hi}), dtype=torch.float64)


LEVEL_RATIOS = [level_ratios(c) for c in range(len(INTENSITY_MEANS))]


@dataclass(frozen=True)
class Case:
    """One nnU-Net configuration: the network's patch, the extra arguments of ``get_training_transforms`` and
    how many samples to compare."""
    patch_size: tuple[int, ...]
    samples: int
    deep_supervision_scales: tuple[tuple[float, ...], ...]
    extra: dict[str, Any] = field(default_factory=dict)
    cascade: bool = False

    @functools.cached_property
    def nnunet_setup(self) -> tuple[Any, bool, tuple[int, ...], tuple[int, ...]]:
        """rotation_for_DA, do_dummy_2d_data_aug, initial patch and mirror axes, from nnU-Net's own method."""
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
        trainer = types.SimpleNamespace(configuration_manager=types.SimpleNamespace(patch_size=self.patch_size),
                                        print_to_log_file=lambda *args, **kwargs: None)
        rotation, dummy_2d, initial, mirror_axes = \
            nnUNetTrainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size(trainer)
        return rotation, dummy_2d, tuple(int(s) for s in initial), tuple(mirror_axes)

    @property
    def initial_patch(self) -> tuple[int, ...]:
        return self.nnunet_setup[2]

    def transform_arguments(self) -> dict[str, Any]:
        rotation, dummy_2d, _, mirror_axes = self.nnunet_setup
        return dict(patch_size=self.patch_size, rotation_for_DA=rotation,
                    deep_supervision_scales=[list(s) for s in self.deep_supervision_scales],
                    mirror_axes=mirror_axes, do_dummy_2d_data_aug=dummy_2d, **self.extra)

    @property
    def regions(self) -> list[Any] | None:
        return self.extra.get("regions")

    @property
    def ignore_label(self) -> int | None:
        return self.extra.get("ignore_label")


CASES = {
    "3d_fullres": Case((20, 24, 28), 1536, ((1, 1, 1), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))),
    "dummy_2d": Case((8, 24, 28), 1024, ((1, 1, 1), (1, 0.5, 0.5), (1, 0.25, 0.25))),
    "2d": Case((24, 28), 2048, ((1, 1), (0.5, 0.5), (0.25, 0.25))),
    "regions_ignore_mask": Case((20, 24, 28), 512, ((1, 1, 1), (0.5, 0.5, 0.5)),
                                dict(use_mask_for_norm=[True, False], regions=[[1, 2, 3], [2, 3], [3]],
                                     ignore_label=4)),
    "cascade": Case((20, 24, 28), 192, ((1, 1, 1), (0.5, 0.5, 0.5)),
                    dict(is_cascaded=True, foreground_labels=[1, 2, 3]), cascade=True),
}


# ---- inputs: an asymmetric object in a body, a -1 border, two channels ----------------------------------------
def synthetic_batch(case: Case, first: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples ``first .. first+n`` as nnU-Net's loader crops them: image (n, 2, *initial) float32, segmentation
    (n, 1 or 2, *initial) int16. Label 1 fills the body; 2 is an ellipsoid off the centre by +15% of the patch
    per axis (its side tells the orientation), 3 a core inside it off the ellipsoid's centre, 4 (with an ignore
    label) a ball on the other side; -1 a slab on the low side of the last axis that reaches into the crop, so
    label 0 appears only where the -1 border (or the spatial transform's -1 padding) was. Every value is
    deterministic in (case, first)."""
    generator = torch.Generator().manual_seed(10_000 + first)
    shape, patch = case.initial_patch, case.patch_size
    dim = len(shape)
    axes = [torch.arange(s, dtype=torch.float32) - (s - 1) / 2 for s in shape]  # positions from the centre
    spread = [max(1, p // 10) for p in patch]
    jitter = torch.stack([torch.randint(-s, s + 1, (n,), generator=generator) for s in spread], 1)
    offset = torch.tensor([round(0.15 * p) for p in patch], dtype=torch.float32) + jitter  # (n, dim)
    semi = [max(1.5, 0.25 * p) for p in patch]

    def squared_distance(centre: torch.Tensor, scale: Sequence[float]) -> torch.Tensor:
        """(n, *shape): sum over axes of ((x - centre) / scale)^2, built axis by axis (broadcast, no grid)."""
        total = torch.zeros((n, *[1] * dim))
        for axis in range(dim):
            view = [n] + [1] * dim
            view[axis + 1] = shape[axis]
            total = total + ((axes[axis][None] - centre[:, axis:axis + 1]) / scale[axis]).square().view(view)
        return total

    core_centre = offset.clone()
    core_centre[:, -1] += 0.4 * semi[-1]
    one, two, three = (torch.tensor(v, dtype=torch.int16) for v in (1, 2, 3))
    labels = torch.where(squared_distance(offset, semi) <= 1, two, one)
    labels = torch.where(squared_distance(core_centre, [0.45 * min(semi)] * dim) <= 1, three, labels)
    if case.ignore_label is not None:
        ignore = torch.tensor(case.ignore_label, dtype=torch.int16)
        labels = torch.where(squared_distance(-offset, [0.2 * min(patch)] * dim) <= 1, ignore, labels)
    border = (shape[-1] - patch[-1]) // 2 + patch[-1] // 6
    labels[..., :border] = -1
    gradient = (axes[-2] / shape[-2]).view(shape[-2], 1)  # along the second-to-last axis, -0.5 .. 0.5
    channels = []
    for means, noise, base in zip(INTENSITY_MEANS, INTENSITY_NOISE, INTENSITY_OFFSET):
        lookup = torch.tensor([means[v] + base for v in range(-1, 5)])
        values = torch.take(lookup, (labels + 1).long())
        if noise:
            values = values + noise * (torch.randn((n, *shape), generator=generator) + gradient)
        channels.append(values)
    image = torch.stack(channels, 1).float()
    segmentation = labels[:, None]
    if case.cascade:
        previous = labels.clamp(min=0)
        segmentation = torch.cat((segmentation, previous[:, None]), 1)
    return image, segmentation


# ---- the two paths ----------------------------------------------------------------------------------------------
def nnunet_batch(transforms: Any, image: torch.Tensor, segmentation: torch.Tensor) -> dict[str, Any]:
    """nnU-Net's path: the transforms on each sample, stacked into preallocated tensors as
    ``nnUNetDataLoader.generate_train_batch`` does."""
    data_all, seg_all = None, None
    for j in range(image.shape[0]):
        out = transforms(image=image[j].clone(), segmentation=segmentation[j].clone())
        if data_all is None:
            data_all = torch.empty((image.shape[0], *out["image"].shape), dtype=torch.float32)
            seg_all = [torch.empty((image.shape[0], *s.shape), dtype=s.dtype) for s in out["segmentation"]]
        data_all[j] = out["image"]
        for s_idx, s in enumerate(out["segmentation"]):
            seg_all[s_idx][j] = s
    return {"image": data_all, "segmentation": seg_all}


Statistics = tuple[dict[str, np.ndarray], frozenset[Any]]
TransformBatch = Callable[[torch.Tensor, torch.Tensor], dict[str, Any]]


def run_paths(case: Case, paths: dict[str, TransformBatch], seed: int) -> dict[str, Statistics]:
    """Per path: per-sample statistics of ``case.samples`` outputs and the set of output layouts (shapes,
    dtypes). The paths see the same input batches (each its own copy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as nnU-Net's workers; on a shared machine more threads only contend
    torch.manual_seed(seed)
    np.random.seed(seed)
    collected: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in paths}
    layouts: dict[str, set[Any]] = {name: set() for name in paths}
    try:
        for first in range(0, case.samples, BATCH):
            image, segmentation = synthetic_batch(case, first, min(BATCH, case.samples - first))
            for name, transform_batch in paths.items():
                out = transform_batch(image.clone(), segmentation.clone())
                layouts[name].add(output_layout(out))
                for statistic, values in sample_statistics(case, out).items():
                    collected[name].setdefault(statistic, []).append(values)
    finally:
        torch.set_num_threads(threads)
    return {name: ({statistic: np.concatenate(parts) for statistic, parts in collected[name].items()},
                   frozenset(layouts[name])) for name in paths}


def nnunet_path(case: Case) -> TransformBatch:
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    transforms = nnUNetTrainer.get_training_transforms(**case.transform_arguments())
    return lambda image, segmentation: nnunet_batch(transforms, image, segmentation)


def batched_path(pipeline: BatchedCompose) -> TransformBatch:
    return lambda image, segmentation: pipeline({"image": image, "segmentation": segmentation})


@functools.cache
def nnunet_and_batched(case_name: str) -> dict[str, Statistics]:
    """nnU-Net's and our statistics for a case, computed once per session ('nnunet', 'batched')."""
    case = CASES[case_name]
    return run_paths(case, {"nnunet": nnunet_path(case),
                            "batched": batched_path(build_training_pipeline(**case.transform_arguments()))}, seed=1)


# ---- what is compared -------------------------------------------------------------------------------------------
def output_layout(out: dict[str, Any]) -> tuple[Any, ...]:
    segmentation = out["segmentation"]
    targets = segmentation if isinstance(segmentation, list) else [segmentation]
    return ((tuple(out["image"].shape[1:]), str(out["image"].dtype)),
            tuple((tuple(t.shape[1:]), str(t.dtype)) for t in targets))


def object_mask(case: Case, target: torch.Tensor) -> torch.Tensor:
    """The asymmetric object (label 2 with its core 3; region [2, 3]) as (n, *spatial) bool."""
    if case.regions is not None:
        return target[:, case.regions.index([2, 3])].bool()
    return (target[:, 0] == 2) | (target[:, 0] == 3)


def target_fractions(case: Case, target: torch.Tensor, scale: str) -> dict[str, torch.Tensor]:
    if case.regions is not None:
        names = [str(r) for r in case.regions] + [f"ignore {case.ignore_label}"]
        return {f"{scale} fraction of region {name}": target[:, r].float().flatten(1).mean(1)
                for r, name in enumerate(names)}
    values = [0, 1, 2, 3] + ([case.ignore_label] if case.ignore_label is not None else [])
    return {f"{scale} fraction of label {v}": (target[:, 0] == v).float().flatten(1).mean(1) for v in values}


QUANTILE_LEVELS = (0.0, 0.01, 0.5, 0.99, 1.0)


def lower_quantile(values: torch.Tensor, level: float) -> torch.Tensor:
    """The ``level`` quantile of each row (the order statistic at or below it; a selection, not a sort)."""
    if level in (0.0, 1.0):
        return (values.amin(1) if level == 0.0 else values.amax(1)).double()
    return values.kthvalue(int(level * (values.shape[1] - 1)) + 1, dim=1).values.double()


def channel_statistics(image: torch.Tensor, c: int) -> dict[str, torch.Tensor]:
    """Moments and quantiles of an image channel per sample, and what moves them."""
    result: dict[str, torch.Tensor] = {}
    values = image[:, c].flatten(1)
    mean, std = values.double().mean(1), values.double().std(1)
    result[f"image[{c}] mean"] = mean
    result[f"image[{c}] std"] = std
    centred = (values.double() - mean[:, None]) / std.clamp(min=1e-12)[:, None]
    result[f"image[{c}] skewness"] = centred.pow(3).mean(1)
    quantiles = [lower_quantile(values, level) for level in QUANTILE_LEVELS]
    for level, quantile in zip(QUANTILE_LEVELS, quantiles):
        result[f"image[{c}] quantile {level}"] = quantile
    # where the median lies between min and max: brightness, contrast, retained stats and mirroring keep it
    median_at = (quantiles[2] - quantiles[0]) / (quantiles[4] - quantiles[0]).clamp(min=1e-12)
    result[f"image[{c}] median between min and max"] = median_at
    # median absolute difference of neighbours: added noise raises it, blur and low resolution lower it
    roughness = image[:, c].diff(dim=-1).flatten(1).abs().median(1).values.double()
    result[f"image[{c}] roughness"] = roughness
    if not INTENSITY_NOISE[c]:
        # a piecewise constant channel: its median lies on a ratio of its levels and its body is flat, unless
        # gamma (or noise, blur, low resolution moving min and max) moved it, or noise roughened it
        off_levels = (median_at[:, None] - LEVEL_RATIOS[c][None]).abs().min(1).values > 1e-4
        result[f"yes/no: image[{c}] median off the ratios of its levels"] = off_levels.double()
        result[f"yes/no: image[{c}] roughened"] = (roughness > 1e-4).double()
    return result


def one_hot_statistics(case: Case, image: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """The cascade's one-hot channels (after the image channels): their fractions, and how far the random
    morphology moved them from the target's labels (the previous stage's segmentation equals the target here)."""
    result: dict[str, torch.Tensor] = {}
    first = len(INTENSITY_MEANS)
    for index, label in enumerate(case.extra["foreground_labels"]):
        one_hot = image[:, first + index]
        disagreement = (one_hot.bool() != (target[:, 0] == label)).flatten(1).double().mean(1)
        result[f"one-hot {label} fraction"] = one_hot.flatten(1).double().mean(1)
        result[f"one-hot {label} disagreement with the target"] = disagreement
        result[f"yes/no: one-hot {label} changed by the morphology"] = (disagreement > 0).double()
    return result


def sample_statistics(case: Case, out: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per-sample statistics of one output batch, each (n,); yes/no statistics as 0.0/1.0, undefined as nan."""
    image = out["image"]
    targets = out["segmentation"]
    result: dict[str, torch.Tensor] = {}
    for c in range(len(INTENSITY_MEANS)):
        result.update(channel_statistics(image, c))
    if case.cascade:
        result.update(one_hot_statistics(case, image, targets[0]))
    full, lowest = targets[0], targets[-1]
    result.update(target_fractions(case, full, "full"))
    result.update(target_fractions(case, lowest, "lowest"))
    if case.regions is None:
        result["yes/no: label 0 (the -1 border) present"] = (full[:, 0] == 0).flatten(1).any(1).double()
        result["yes/no: -1 left in the target"] = (full < 0).flatten(1).any(1).double()
    if case.ignore_label is not None:
        ignore = full[:, -1] if case.regions is not None else full[:, 0] == case.ignore_label
        result["yes/no: ignore label present"] = ignore.flatten(1).any(1).double()
    mask = object_mask(case, full).double()
    size = mask.flatten(1).sum(1)
    result["yes/no: object in the patch"] = (size > 0).double()
    for axis, extent in enumerate(full.shape[2:]):
        position = torch.arange(extent, dtype=torch.float64) - (extent - 1) / 2
        along = mask.sum(dim=[d + 1 for d in range(mask.ndim - 1) if d != axis])
        centre = (along * position).sum(1) / size
        centre[size == 0] = float("nan")
        result[f"object centre, axis {axis}"] = centre
        side = (centre < 0).double()
        side[size == 0] = float("nan")
        result[f"yes/no: object on the low side of axis {axis}"] = side
    return {name: values.numpy() for name, values in result.items()}


def two_sample_p_value(name: str, reference: np.ndarray, ours: np.ndarray) -> float:
    """KS for continuous statistics, a pooled two-proportion z-test for yes/no ones (nan values left out)."""
    reference, ours = reference[~np.isnan(reference)], ours[~np.isnan(ours)]
    if len(reference) == 0 or len(ours) == 0:
        return 1.0 if len(reference) == len(ours) else 0.0
    if name.startswith("yes/no"):
        p1, p2 = reference.mean(), ours.mean()
        pooled = (reference.sum() + ours.sum()) / (len(reference) + len(ours))
        if pooled in (0.0, 1.0):
            return 1.0
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / len(reference) + 1 / len(ours)))
        return float(2 * stats.norm.sf(abs(z)))
    return float(stats.ks_2samp(*merged_near_ties(reference, ours)).pvalue)


def merged_near_ties(reference: np.ndarray, ours: np.ndarray, relative: float = 1e-5) -> tuple[np.ndarray, ...]:
    """Both samples as ranks of groups of pooled values closer than ``relative`` x the largest magnitude.

    Many samples share a value (a crop without intensity steps has the same mean as the next); float32 rounding
    in another order must not split such a point mass (bgv2's gamma restores a mean to ~1e-5 of it, ours to
    ~1e-7, which alone gives KS p ~ 1e-6 over 2048 samples)."""
    pooled = np.sort(np.concatenate([reference, ours]))
    tolerance = relative * max(float(np.abs(pooled).max()), 1e-12)
    group = np.cumsum(np.concatenate([[True], np.diff(pooled) > tolerance]))
    return tuple(group[np.searchsorted(pooled, values)] for values in (reference, ours))


def p_values(reference: dict[str, np.ndarray], ours: dict[str, np.ndarray]) -> dict[str, float]:
    assert reference.keys() == ours.keys()
    return {name: two_sample_p_value(name, reference[name], ours[name]) for name in reference}


def differing(reference: dict[str, np.ndarray], ours: dict[str, np.ndarray]) -> dict[str, str]:
    """The statistics whose distributions differ (p < ALPHA), with both sides' means, for the message."""
    return {name: f"p={p:.1e}, nnU-Net mean {np.nanmean(reference[name]):.4g}, ours {np.nanmean(ours[name]):.4g}"
            for name, p in p_values(reference, ours).items() if p < ALPHA}


# ---- the tests --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case_name", list(CASES))
def test_pipeline_output_statistics_match_nnunets(case_name):
    case = CASES[case_name]
    both = nnunet_and_batched(case_name)
    (reference, reference_layouts), (ours, our_layouts) = both["nnunet"], both["batched"]
    assert our_layouts == reference_layouts, "shapes or dtypes of image / deep-supervision targets differ"
    assert differing(reference, ours) == {}
    assert np.nanmax(ours.get("yes/no: -1 left in the target", np.zeros(1))) == 0
    # the inputs exercise what is compared: the border, the object on both sides, the ignore label
    if case.regions is None:
        assert 0.2 < np.mean(ours["yes/no: label 0 (the -1 border) present"]) <= 1
    for axis in case.transform_arguments()["mirror_axes"]:
        assert 0.2 < np.nanmean(ours[f"yes/no: object on the low side of axis {axis}"]) < 0.8
    if case.ignore_label is not None:
        assert np.mean(ours["yes/no: ignore label present"]) > 0.5


def _steps_of(pipeline: BatchedCompose, kind: type) -> list[Any]:
    return [s for s in pipeline.transforms
            if isinstance(s, kind) or (isinstance(s, BatchedRandomTransform) and isinstance(s.transform, kind))]


def mirror_with_p_0_3(pipeline: BatchedCompose) -> None:
    mirror = _steps_of(pipeline, BatchedMirror)[0]
    mirror.get_parameters = lambda batch: {
        "flip": torch.rand((batch["image"].shape[0], len(mirror.allowed_axes))) < 0.3}


def gamma_with_p_0_1(pipeline: BatchedCompose) -> None:
    gamma = [s for s in _steps_of(pipeline, intensity.BatchedGamma) if s.transform.p_invert_image == 0][0]
    assert gamma.apply_probability == 0.3
    gamma.apply_probability = 0.1


def without_gaussian_noise(pipeline: BatchedCompose) -> None:
    pipeline.transforms.remove(_steps_of(pipeline, intensity.BatchedGaussianNoise)[0])


def rotation_range_narrowed(pipeline: BatchedCompose) -> None:
    spatial = _steps_of(pipeline, BatchedSpatialTransform)[0]
    assert spatial.rotation == (-np.pi, np.pi)
    spatial.rotation = (-0.5, 0.5)


@pytest.mark.parametrize("case_name, mutation", [
    ("2d", mirror_with_p_0_3),
    ("2d", gamma_with_p_0_1),
    ("2d", without_gaussian_noise),
    ("2d", rotation_range_narrowed),
])
def test_comparison_rejects_a_wrong_pipeline(case_name, mutation):
    """The same comparison, against a pipeline with one probability, range or step wrong: it must fail, and
    not narrowly (p below ALPHA by at least three orders of magnitude). Smaller errors are below the power of
    these sample sizes: brightness p 0.15 -> 0.05, contrast range (0.9, 1.1), scaling p 0.2 -> 0.1 pass; the
    scaling range (0.9, 1.1) fails the 3d_fullres comparison only narrowly (p ~ 3e-6)."""
    case = CASES[case_name]
    pipeline = build_training_pipeline(**case.transform_arguments())
    mutation(pipeline)
    reference, _ = nnunet_and_batched(case_name)["nnunet"]
    ours, _ = run_paths(case, {"mutated": batched_path(pipeline)}, seed=2)["mutated"]
    p = p_values(reference, ours)
    worst = min(p, key=p.get)
    assert p[worst] < ALPHA * 1e-3, f"{mutation.__name__} not seen: the lowest p is {p[worst]:.1e} ({worst})"


@pytest.mark.parametrize("selected", [[], [1, 4], [0, 1, 2, 3, 4, 5]])
def test_random_transform_passes_non_tensor_values_through(selected):
    """nnU-Net's loader puts 'keys' (case names) into the batch; a step applied to none, part or all of the
    batch leaves them, and other non-tensor values, as they were, and changes only the selected samples."""
    image = torch.randn(6, 2, 5, 6, 7) + 3
    segmentation = torch.zeros((6, 1, 5, 6, 7), dtype=torch.int16)
    keys = np.array([f"case_{i}" for i in range(6)])
    batch = {"image": image, "segmentation": segmentation, "keys": keys, "count": 6, "spacing": [1.0, 2.0]}
    step = BatchedRandomTransform(intensity.BatchedMultiplicativeBrightness(), apply_probability=0.5)
    out = step.apply(batch, {"selected": torch.tensor(selected, dtype=torch.long)})
    assert out["keys"] is keys and out["count"] == 6 and out["spacing"] == [1.0, 2.0]
    assert set(out) == set(batch)
    changed = (out["image"] != image).flatten(1).any(1)
    assert changed.nonzero().flatten().tolist() == selected
    assert torch.equal(out["segmentation"], segmentation)
    torch.manual_seed(3)
    drawn = step(batch)  # drawn selection, through __call__
    assert drawn["keys"] is keys and drawn["count"] == 6
