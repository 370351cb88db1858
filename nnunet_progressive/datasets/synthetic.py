"""Small synthetic nnU-Net v2 raw datasets for demos, end-to-end tests and offline benchmarks.

Each case is a body (an ellipsoid, cut by the field of view along z in 3D), ``num_organs`` large smooth
blobs inside it (labels ``1..num_organs``) and ``num_lesions`` small spheres (one shared label,
``num_organs + 1``), some inside organs and some in the surrounding tissue. Cases differ in pose, size,
intensity scaling and a smooth bias field; every case contains every label. Images are float32, labels
uint8. Axis order is nnU-Net's numpy order: (z, y, x) in 3D, (y, x) in 2D; spacings are in mm.

Example::

    from nnunet_progressive.datasets.synthetic import write_preset
    folder = write_preset("tiny3d", "/data/nnUNet_raw", dataset_id=501)
    # -> /data/nnUNet_raw/Dataset501_NNProgTiny3D, ready for nnUNetv2_plan_and_preprocess -d 501

Not mimicked: real anatomy and textures, scanner-specific artefacts, skull-stripped zero backgrounds
(MRI backgrounds here are a low Rician noise floor), label noise, and cases that are deliberately
"unusual". Generation is pure numpy/scipy and deterministic in ``(spec.seed, case_index)``.
"""

from __future__ import annotations

import json
import math
import re
from numbers import Integral, Real
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import SimpleITK as sitk
from pydantic import AfterValidator, BeforeValidator, ValidationInfo
from scipy import ndimage

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.io import new_raw_dataset_folder
from nnunet_progressive.core.validation import CheckedModel, integer

__all__ = ["PRESETS", "SyntheticDatasetSpec", "generate_case", "write_dataset", "write_preset"]

_MODALITIES = ("CT", "MRI")
_MRI_SEQUENCES = ("T1", "T2", "FLAIR", "T1c")
_MAX_ORGANS = 10
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_SLICE_SPACING_2D = 999.0  # nnU-Net's own marker for "no third axis" (its 2D readers use 999 as well)

# CT: Hounsfield-like values. Organ k sits ORGAN_OFFSETS_HU[k] above soft tissue, scaled per channel by a
# contrast-phase gain (native/arterial/venous/delayed-like); lesions are hypodense in most phases.
_CT_AIR_HU = -1000.0
_CT_TISSUE_HU = 40.0
_CT_ORGAN_OFFSETS_HU = (70.0, 140.0, 35.0, 200.0, 100.0, 260.0, 55.0, 170.0, 85.0, 230.0)
_CT_PHASE_GAIN = (1.0, 0.6, 1.4, 0.8)
_CT_LESION_OFFSET_HU = (-50.0, -35.0, 90.0, -45.0)

# MRI: arbitrary positive units. Each sequence has its own tissue level and organ/lesion factors relative to
# it, so every channel shows the structures with a different contrast.
_MRI_TISSUE = {"T1": 400.0, "T2": 300.0, "FLAIR": 350.0, "T1c": 420.0}
_MRI_ORGAN_FACTORS = {
    "T1": (1.6, 0.6, 2.0, 0.45, 1.35, 2.4, 0.75, 1.8, 0.5, 2.2),
    "T2": (0.6, 1.8, 1.35, 2.2, 0.5, 1.6, 2.5, 0.7, 1.45, 0.4),
    "FLAIR": (0.7, 1.5, 1.9, 0.5, 2.3, 0.8, 1.3, 2.1, 0.6, 1.7),
    "T1c": (1.9, 0.55, 2.4, 1.3, 0.7, 2.0, 0.45, 1.6, 2.6, 0.8),
}
_MRI_LESION_FACTOR = {"T1": 0.35, "T2": 3.0, "FLAIR": 3.2, "T1c": 3.5}

_ORGAN_CLASS_SCALE = (1.0, 0.8, 0.65, 0.9, 0.7)  # fixed per organ class so classes differ consistently
_MAX_ATTEMPTS = 25


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or len(value) not in (2, 3):
        raise ValueError("expected a tuple of 2 (y, x) or 3 (z, y, x) voxel counts")
    if not all(_is_int(s) and s >= 16 for s in value):
        raise ValueError("expected integer voxel counts, each >= 16")
    return tuple(value)


def _spacing(value: Any, info: ValidationInfo) -> tuple[float, ...]:
    shape = info.data.get("shape")
    if shape is not None and (not isinstance(value, list | tuple) or len(value) != len(shape)):
        raise ValueError(f"expected a tuple of {len(shape)} spacings in mm (one per shape axis, same order)")
    if not isinstance(value, list | tuple) or not all(_is_real(s) and math.isfinite(s) and s > 0 for s in value):
        raise ValueError("expected finite positive spacings in mm")
    return tuple(value)


def _some_foreground(value: Any, info: ValidationInfo) -> Any:
    if info.data.get("num_organs") == 0 and value == 0:
        raise ValueError("expected num_organs >= 1 or num_lesions >= 1 (at least one foreground class)")
    return value


def _case_count(value: Any) -> Any:
    if not _is_int(value) or value < 2:
        raise ValueError("expected an integer >= 2 (use >= 5 for nnU-Net's default 5-fold split)")
    return value


def _noise(value: Any) -> Any:
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        raise ValueError("expected a finite float >= 0")
    return value


def _task_name(value: Any) -> Any:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ValueError("expected a non-empty string of letters, digits, '_' and '-' starting with a letter or "
                         "digit (it becomes part of folder and file names, e.g. 'NNProgDemo')")
    return value


class SyntheticDatasetSpec(CheckedModel):
    """What to generate (a frozen pydantic model). Axis order is nnU-Net's numpy order (z, y, x) for 3D, (y, x)
    for 2D.

    Args:
        name: task name part, e.g. ``"NNProgDemo"`` -> folder ``DatasetXXX_NNProgDemo``; letters, digits,
            ``_`` and ``-``.
        num_cases: number of training cases (>= 2; nnU-Net's default 5-fold split needs >= 5).
        shape: voxels per case, 3 entries (z, y, x) for 3D or 2 entries (y, x) for 2D, each >= 16.
        spacing: voxel size in mm, same order and length as ``shape``.
        num_channels: input channels; > 1 mimics multi-sequence MRI (or multi-phase CT).
        num_organs: large smooth blobs, labels ``1..num_organs`` (0..10).
        num_lesions: small spheres sharing label ``num_organs + 1`` (0 means no lesion class).
        modality: ``"CT"`` (HU-like values, channels named ``"CT"`` so nnU-Net uses CT normalization) or
            ``"MRI"`` (positive values, channels ``"T1", "T2", "FLAIR", "T1c"`` cycling, z-score normalized).
        noise_std: image noise standard deviation relative to the organ/tissue contrast of each channel.
        seed: base seed (>= 0); case ``i`` is generated from ``(seed, i)``.

    Raises:
        ProgressiveConfigError: (a ``ValueError``) when a field is out of range or unknown; the message names
            every bad field, what was expected and what was received.
    """

    name: Annotated[str, BeforeValidator(_task_name)]
    num_cases: Annotated[int, BeforeValidator(_case_count)] = 10
    shape: Annotated[tuple[int, ...], BeforeValidator(_shape)] = (64, 64, 64)
    spacing: Annotated[tuple[float, ...], BeforeValidator(_spacing)] = (1.0, 1.0, 1.0)
    num_channels: integer(1) = 1
    num_organs: integer(0, _MAX_ORGANS) = 1
    num_lesions: Annotated[integer(0), AfterValidator(_some_foreground)] = 2
    modality: Literal["CT", "MRI"] = "CT"
    noise_std: Annotated[float, BeforeValidator(_noise)] = 0.1
    seed: integer(0) = 0

    def replace(self, **changes: Any) -> SyntheticDatasetSpec:
        """A copy with ``changes`` applied (validated like a new spec)."""
        return type(self)(**{**self.model_dump(), **changes})


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


# ----------------------------------------------------------------------------------------------- geometry


def _physical_grid(shape: tuple[int, ...], spacing: tuple[float, ...]) -> np.ndarray:
    """Voxel-centre coordinates in mm, centred on the volume. Returns shape (ndim, *shape), float32."""
    axes = [((np.arange(n) + 0.5) - n / 2.0) * sp for n, sp in zip(shape, spacing, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], spacing: tuple[float, ...],
                  feature_mm: float) -> np.ndarray:
    """Smooth random field with about unit standard deviation. Returns shape ``shape``, float32.

    ``feature_mm`` is the approximate wavelength of the variations in mm (cubic interpolation of a coarse
    Gaussian grid whose node distance is ``feature_mm``).
    """
    coarse = tuple(max(3, int(round(n * sp / feature_mm)) + 1) for n, sp in zip(shape, spacing, strict=True))
    field = rng.standard_normal(coarse)
    # Cubic-spline zoom is separable and linear: apply it axis by axis as an (n, c) weight matrix, which
    # is far cheaper than an N-d ndimage.zoom of the whole grid.
    for axis, (n, c) in enumerate(zip(shape, coarse, strict=True)):
        weights = ndimage.zoom(np.eye(c), (n / c, 1.0), order=3, mode="nearest", grid_mode=True)[:n]
        field = np.moveaxis(np.tensordot(weights, field, axes=([1], [axis])), 0, axis)
    std = float(field.std())
    return (field / std if std > 0 else field).astype(np.float32)


def _bias_polynomial(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random quadratic polynomial over the volume, scaled to max |value| = 1. Returns shape ``shape``."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    coords = np.meshgrid(*axes, indexing="ij", sparse=True)
    poly = np.zeros(shape, dtype=np.float32)
    for i, ci in enumerate(coords):
        poly = poly + rng.normal(0.0, 1.0) * ci
        for cj in coords[i:]:
            poly = poly + rng.normal(0.0, 0.5) * ci * cj
    peak = float(np.abs(poly).max())
    return poly / peak if peak > 0 else poly


def _random_rotation(rng: np.random.Generator, ndim: int) -> np.ndarray:
    """Uniformly random rotation matrix (det +1). Returns shape (ndim, ndim)."""
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _lesion_radius_range_mm(spec: SyntheticDatasetSpec) -> tuple[float, float]:
    """Lesion radius range in mm: about 2-4 voxels for 64 voxels per axis, scaled by shape, capped so that
    all lesions together cover at most about 1% of the volume, and never below 1.5 voxels."""
    vox = min(spec.spacing)
    scale = float(np.clip(max(spec.shape) / 64.0, 0.5, 2.0))
    n_vox = float(np.prod(spec.shape))
    voxel_volume = float(np.prod(spec.spacing))
    budget = 0.01 * n_vox * voxel_volume / max(spec.num_lesions, 1)  # mm^3 (mm^2 in 2D) per lesion
    cap = (budget / (4.0 / 3.0 * math.pi)) ** (1 / 3) if len(spec.shape) == 3 else math.sqrt(budget / math.pi)
    hi = max(1.5 * vox, min(4.0 * scale * vox, cap))
    lo = min(max(1.5 * vox, 2.0 * scale * vox), hi)
    return lo, hi


def _interior_candidates(region: np.ndarray, spacing: tuple[float, ...], min_dist_mm: float) -> np.ndarray:
    """Flat indices of voxels of ``region`` at least ``min_dist_mm`` from its border (field-of-view edges
    count as border); falls back to the deepest voxels. Returns 1D int array (empty if region is empty)."""
    if not region.any():
        return np.zeros(0, dtype=np.int64)
    dist = ndimage.distance_transform_edt(np.pad(region, 1), sampling=spacing)
    dist = dist[tuple(slice(1, -1) for _ in region.shape)]
    ok = dist >= min_dist_mm
    if not ok.any():
        ok = dist >= dist.max() * 0.99
    return np.flatnonzero(ok)


def _draw_geometry(spec: SyntheticDatasetSpec, rng: np.random.Generator,
                   grid: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """One attempt at a label map. Returns (label uint8 of ``spec.shape``, body mask bool) or None when a
    label ended up missing or too small (the caller retries with the next random draws)."""
    ndim = len(spec.shape)
    extent = np.array(spec.shape, dtype=np.float64) * np.array(spec.spacing, dtype=np.float64)
    shape = spec.shape

    # Body: axis-aligned ellipsoid; in 3D its z semi-axis exceeds half the FOV (cut like a real scan).
    inplane = np.array([extent[-2] / 2 * rng.uniform(0.70, 0.85), extent[-1] / 2 * rng.uniform(0.80, 0.92)])
    semi_body = np.concatenate([[extent[0] * rng.uniform(0.6, 0.8)], inplane]) if ndim == 3 else inplane
    centre_body = rng.uniform(-0.03, 0.03, ndim) * extent
    rel = (grid - centre_body.reshape((ndim,) + (1,) * ndim)) / semi_body.reshape((ndim,) + (1,) * ndim)
    body_r = np.sqrt((rel**2).sum(0))
    body = body_r <= 1.0
    label = np.zeros(shape, dtype=np.uint8)

    # Organs: deformed, rotated ellipsoids inside the body; several organs are spread on a ring.
    n_org = spec.num_organs
    min_organ_voxels = max(8, int(0.001 * np.prod(shape)))
    theta0 = rng.uniform(0, 2 * np.pi)
    base_size = float(inplane.mean()) * (n_org ** (-1 / 3) if n_org else 1.0)
    flat_grid = grid.reshape(ndim, -1)
    for k in range(n_org):
        if n_org == 1:
            rho, theta = rng.uniform(0.0, 0.2), rng.uniform(0, 2 * np.pi)
        else:
            rho, theta = rng.uniform(0.40, 0.50), theta0 + 2 * np.pi * k / n_org + rng.uniform(-0.15, 0.15)
        u_centre = [rho * np.sin(theta), rho * np.cos(theta)]
        if ndim == 3:
            u_centre = [rng.uniform(-0.2, 0.2)] + u_centre
        centre = centre_body + np.array(u_centre) * semi_body
        semi = (base_size * rng.uniform(0.45, 0.60) * _ORGAN_CLASS_SCALE[k % len(_ORGAN_CLASS_SCALE)]
                * rng.uniform(0.75, 1.3, ndim))
        rot = _random_rotation(rng, ndim)
        local = rot.T @ (flat_grid - centre[:, None])
        r = np.sqrt(((local / semi[:, None]) ** 2).sum(0)).reshape(shape)
        wobble = 0.12 * _smooth_field(rng, shape, spec.spacing, feature_mm=float(semi.mean()))
        organ = (r <= 1.0 + wobble) & (body_r <= 0.92) & (label == 0)
        label[organ] = k + 1

    # Lesions: physical spheres, alternating inside organs and in the surrounding body tissue.
    if spec.num_lesions:
        lesion_label = n_org + 1
        lo, hi = _lesion_radius_range_mm(spec)
        radii = rng.uniform(lo, hi, spec.num_lesions)
        spacing = np.array(spec.spacing)
        for j, radius in enumerate(radii):
            margin = radius + float(spacing.min())
            if n_org and j % 2 == 0:
                region = label == (j // 2) % n_org + 1
            else:
                region = body & (label == 0)
            cands = _interior_candidates(region, spec.spacing, margin)
            if cands.size == 0:
                return None
            centre_idx = np.array(np.unravel_index(cands[rng.integers(cands.size)], shape))
            # Sphere in mm inside a bounding box around the centre (the centre voxel is always included).
            half = np.ceil(radius / spacing).astype(int)
            lo_idx = np.maximum(centre_idx - half, 0)
            hi_idx = np.minimum(centre_idx + half + 1, np.array(shape))
            box = tuple(slice(a, b) for a, b in zip(lo_idx, hi_idx, strict=True))
            offsets = np.meshgrid(*[(np.arange(a, b) - c) * sp for a, b, c, sp
                                    in zip(lo_idx, hi_idx, centre_idx, spacing, strict=True)],
                                  indexing="ij", sparse=True)
            sphere = sum(o**2 for o in offsets) <= radius**2
            label[box][sphere] = lesion_label

    counts = np.bincount(label.ravel(), minlength=n_org + 2)
    if any(counts[k] < min_organ_voxels for k in range(1, n_org + 1)):
        return None
    if spec.num_lesions and counts[n_org + 1] == 0:
        return None
    return label, body


# --------------------------------------------------------------------------------------------- intensities


def _channel_names(spec: SyntheticDatasetSpec) -> list[str]:
    """nnU-Net channel names, one per channel: all ``"CT"`` for CT, MRI sequences cycling otherwise."""
    if spec.modality == "CT":
        return ["CT"] * spec.num_channels
    return [_MRI_SEQUENCES[c % len(_MRI_SEQUENCES)] for c in range(spec.num_channels)]


def _label_dict(spec: SyntheticDatasetSpec) -> dict[str, int]:
    """dataset.json ``labels``: background 0, ``organ1..organN``, then ``lesion`` if there are lesions."""
    labels = {"background": 0}
    labels.update({f"organ{k + 1}": k + 1 for k in range(spec.num_organs)})
    if spec.num_lesions:
        labels["lesion"] = spec.num_organs + 1
    return labels


def _tissue_levels(spec: SyntheticDatasetSpec, channel: int, rng: np.random.Generator) -> np.ndarray:
    """Mean intensity per tissue for one channel and case: [outside, body tissue, organ1..N, lesion].

    Returns shape (num_organs + 3,), float32, in HU (CT) or arbitrary positive units (MRI).
    """
    n_org = spec.num_organs
    if spec.modality == "CT":
        gain = rng.uniform(0.85, 1.15)  # contrast-agent uptake differs between cases
        tissue = _CT_TISSUE_HU + rng.normal(0.0, 8.0)
        phase = _CT_PHASE_GAIN[channel % len(_CT_PHASE_GAIN)]
        organs = [tissue + _CT_ORGAN_OFFSETS_HU[k] * phase * gain for k in range(n_org)]
        lesion = tissue + _CT_LESION_OFFSET_HU[channel % len(_CT_LESION_OFFSET_HU)] * gain
        return np.array([_CT_AIR_HU, tissue, *organs, lesion], dtype=np.float32)
    seq = _MRI_SEQUENCES[channel % len(_MRI_SEQUENCES)]
    scale = math.exp(rng.uniform(-0.4, 0.4))  # scanner/protocol-dependent arbitrary units
    tissue = _MRI_TISSUE[seq] * rng.uniform(0.95, 1.05)
    organs = [tissue * _MRI_ORGAN_FACTORS[seq][k] * rng.uniform(0.93, 1.07) for k in range(n_org)]
    lesion = tissue * _MRI_LESION_FACTOR[seq] * rng.uniform(0.9, 1.1)
    return np.array([0.0, tissue, *organs, lesion], dtype=np.float32) * scale


def _render_channel(spec: SyntheticDatasetSpec, channel: int, tissue_map: np.ndarray, body: np.ndarray,
                    organ_mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render one channel from a tissue index map (0 outside, 1 body, 2.. organs, last lesion).

    Returns float32 of ``spec.shape``.
    """
    levels = _tissue_levels(spec, channel, rng)
    # Reference contrast: first organ vs body tissue (or lesion vs tissue without organs).
    contrast = float(abs(levels[2] - levels[1]))
    clean = levels[tissue_map]
    texture = _smooth_field(rng, spec.shape, spec.spacing, feature_mm=6.0 * min(spec.spacing))
    clean = clean + np.where(organ_mask, 0.08 * contrast * texture, 0.0).astype(np.float32)
    # Partial-volume blur of about 0.6 of the finest voxel size, isotropic in mm.
    sigma = [0.6 * min(spec.spacing) / sp for sp in spec.spacing]
    clean = ndimage.gaussian_filter(clean, sigma=sigma, mode="nearest")
    bias = _bias_polynomial(rng, spec.shape)
    sigma_noise = spec.noise_std * contrast
    if spec.modality == "CT":
        # CT has no multiplicative bias; a smooth additive drift (beam hardening-like) inside the body.
        drift = rng.uniform(0.0, 10.0) * bias
        image = clean + np.where(body, drift, 0.0) + rng.normal(0.0, sigma_noise, spec.shape)
        return np.clip(image, -1024.0, 3071.0).astype(np.float32)
    # MRI: multiplicative bias field, then Rician noise (magnitude of complex Gaussian noise): positive.
    clean = clean * np.exp(rng.uniform(0.05, 0.25) * bias)
    real = clean + rng.normal(0.0, sigma_noise, spec.shape)
    imag = rng.normal(0.0, sigma_noise, spec.shape)
    return np.sqrt(real**2 + imag**2).astype(np.float32)


def generate_case(spec: SyntheticDatasetSpec, case_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate one case, deterministic in ``(spec.seed, case_index)``.

    Args:
        spec: what to generate.
        case_index: >= 0. Indices >= ``spec.num_cases`` give further cases from the same distribution
            (e.g. a held-out test set).

    Returns:
        ``(image, label)``: image float32 of shape ``(num_channels, *spec.shape)``, label uint8 of shape
        ``spec.shape`` with values ``0..num_organs (+1 for lesions)``; every label occurs in every case.
    """
    if not _is_int(case_index) or case_index < 0:
        raise ProgressiveConfigError(f"generate_case: case_index must be an integer >= 0; "
                                     f"got {case_index!r}.")
    rng = np.random.default_rng([spec.seed, int(case_index)])
    grid = _physical_grid(spec.shape, spec.spacing)
    for _ in range(_MAX_ATTEMPTS):
        drawn = _draw_geometry(spec, rng, grid)
        if drawn is not None:
            break
    else:  # pragma: no cover - geometry is designed to succeed on the first attempts
        raise RuntimeError(f"generate_case: could not place all labels for case {case_index} of {spec} after "
                           f"{_MAX_ATTEMPTS} attempts; use fewer organs or a larger shape.")
    label, body = drawn
    tissue_map = np.where(body, 1, 0).astype(np.intp)
    tissue_map[label > 0] = label[label > 0].astype(np.intp) + 1
    organ_mask = (label > 0) & (label <= spec.num_organs)
    image = np.stack([_render_channel(spec, c, tissue_map, body, organ_mask, rng)
                      for c in range(spec.num_channels)])
    return image.astype(np.float32, copy=False), label


# ----------------------------------------------------------------------------------------------- writing


def _to_sitk(array: np.ndarray, spacing_zyx: tuple[float, ...]) -> sitk.Image:
    """numpy (z, y, x) array -> SimpleITK image with spacing given in numpy order (reversed for ITK)."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
    return image


def _dataset_json(spec: SyntheticDatasetSpec) -> dict[str, Any]:
    return {
        "channel_names": {str(c): n for c, n in enumerate(_channel_names(spec))},
        "labels": _label_dict(spec),
        "numTraining": spec.num_cases,
        "file_ending": ".nii.gz",
        "name": spec.name,
        "description": "Synthetic dataset generated by nnunet_progressive.datasets.synthetic (not real data).",
        "synthetic_spec": spec.model_dump(mode="json"),
    }


def write_dataset(spec: SyntheticDatasetSpec, raw_root: str | Path, dataset_id: int,
                  overwrite: bool = False) -> Path:
    """Write ``raw_root/DatasetXXX_<name>`` in nnU-Net v2 raw format and return its path.

    Layout: ``dataset.json``, ``imagesTr/<name>_<iii>_<cccc>.nii.gz`` (float32) and
    ``labelsTr/<name>_<iii>.nii.gz`` (uint8); identity direction, zero origin, spacing from ``spec`` (numpy
    order in the spec, reversed to ITK's x, y, z on disk). 2D specs are written as 3D NIfTI with a single
    slice, array shape (1, y, x) and spacing (999, sy, sx) in numpy order, which nnU-Net reads as a 2D
    dataset (its planner drops 3D configurations when the median z size is 1).

    The folder is built in a hidden temporary sibling (``.tmp-...``, which nnU-Net's ``DatasetXXX`` prefix
    lookup ignores) and renamed into place, so a crash never leaves a half-written dataset.

    Args:
        spec: what to generate.
        raw_root: nnU-Net raw folder (``$nnUNet_raw``); created if missing.
        dataset_id: 1..999.
        overwrite: replace an existing ``DatasetXXX_<name>`` folder.

    Raises:
        ProgressiveConfigError: bad ``spec`` or ``dataset_id`` (a ``ValueError``).
        FileExistsError: the target exists and ``overwrite`` is False, or another dataset already uses this
            id (nnU-Net would refuse an ambiguous id; that folder is never deleted).
    """
    if not _is_int(dataset_id) or not 1 <= dataset_id <= 999:
        raise ProgressiveConfigError(f"write_dataset: dataset_id must be an integer in [1, 999] (nnU-Net "
                                     f"uses 3-digit ids); got {dataset_id!r}.")
    folder_name = f"Dataset{dataset_id:03d}_{spec.name}"
    with new_raw_dataset_folder(raw_root, dataset_id, folder_name, overwrite) as work:
        is_2d = len(spec.shape) == 2
        spacing = ((_SLICE_SPACING_2D, *spec.spacing) if is_2d else spec.spacing)
        for i in range(spec.num_cases):
            image, label = generate_case(spec, i)
            if is_2d:
                image, label = image[:, None], label[None]
            case = f"{spec.name}_{i:03d}"
            for c in range(spec.num_channels):
                sitk.WriteImage(_to_sitk(image[c], spacing), str(work / "imagesTr" / f"{case}_{c:04d}.nii.gz"),
                                useCompression=True)
            sitk.WriteImage(_to_sitk(label, spacing), str(work / "labelsTr" / f"{case}.nii.gz"),
                            useCompression=True)
        (work / "dataset.json").write_text(json.dumps(_dataset_json(spec), indent=2) + "\n")
    return Path(raw_root) / folder_name


# ----------------------------------------------------------------------------------------------- presets

PRESETS: dict[str, SyntheticDatasetSpec] = {
    # Generic single-organ CT (liver/spleen-like + small lesions), 64^3 at 1 mm; not a real anatomy model.
    "demo": SyntheticDatasetSpec(name="NNProgDemo", num_cases=12, shape=(64, 64, 64), spacing=(1.0, 1.0, 1.0),
                                 num_channels=1, num_organs=1, num_lesions=2, modality="CT"),
    # Smallest useful 3D CT case for fast CPU end-to-end tests; too small to say anything about accuracy.
    "tiny3d": SyntheticDatasetSpec(name="NNProgTiny3D", num_cases=8, shape=(32, 32, 32),
                                   spacing=(1.0, 1.0, 1.0), num_organs=1, num_lesions=2, modality="CT"),
    # 2D single-slice CT for nnU-Net's 2d configuration; not a slice stack (no 3D context at all).
    "tiny2d": SyntheticDatasetSpec(name="NNProgTiny2D", num_cases=8, shape=(64, 64), spacing=(1.0, 1.0),
                                   num_organs=1, num_lesions=2, modality="CT"),
    # Anisotropic single-channel MRI (4 mm slices, 1 mm in-plane) like MSD Prostate; not its 2 channels/zones.
    "anisotropic": SyntheticDatasetSpec(name="NNProgAniso", num_cases=10, shape=(20, 64, 64),
                                        spacing=(4.0, 1.0, 1.0), num_organs=1, num_lesions=2, modality="MRI"),
    # Multi-organ abdominal CT like BTCV/AMOS (3 organs + lesions); not their 13-15 classes or sizes.
    "multiorgan": SyntheticDatasetSpec(name="NNProgMultiOrgan", num_cases=10, shape=(64, 64, 64),
                                       spacing=(1.0, 1.0, 1.0), num_organs=3, num_lesions=3, modality="CT"),
    # 4-sequence MRI like MSD BrainTumour (T1/T2/FLAIR/T1c); not its nested tumour regions or zero background.
    "multichannel_mri": SyntheticDatasetSpec(name="NNProgMultiMRI", num_cases=10, shape=(48, 48, 48),
                                             spacing=(1.0, 1.0, 1.0), num_channels=4, num_organs=1,
                                             num_lesions=2, modality="MRI"),
}


def write_preset(preset_name: str, raw_root: str | Path, dataset_id: int, overwrite: bool = False,
                 **overrides: Any) -> Path:
    """Write ``PRESETS[preset_name]`` (with ``SyntheticDatasetSpec`` fields replaced by ``overrides``, e.g.
    ``num_cases=4, seed=1``) via :func:`write_dataset`. Returns the dataset folder.

    Raises:
        ProgressiveConfigError: unknown preset or override field, or an invalid resulting spec.
    """
    if preset_name not in PRESETS:
        raise ProgressiveConfigError(f"Unknown synthetic preset {preset_name!r}; valid names: "
                                     f"{sorted(PRESETS)}.")
    spec = PRESETS[preset_name].replace(**overrides)
    return write_dataset(spec, raw_root, dataset_id, overwrite=overwrite)
