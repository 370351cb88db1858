"""Intensity-based registration and grid resampling with SimpleITK, on numpy arrays in nnU-Net order.

Arrays are ``(z, y, x)`` (3D) or ``(y, x)`` (2D), spacings are in the same axis order (mm), as in
nnU-Net's preprocessed data and plans. SimpleITK wants ``(x, y, z)``; the reversal happens here only.

Registration defaults (chosen for speed on small grids such as 64^3, a few hundred ms per pair):

- metric: mean squares, on a random 10% of the fixed voxels drawn with a fixed seed, so results are
  identical across runs, processes and thread counts (SimpleITK gets ``seed + 1``: its seed 0 means
  "from the wall clock"). nnU-Net
  normalises the intensities of one dataset the same way (CT: one global scheme; MRI: z-score per
  image), so cases of a dataset share an intensity scale, and minimising the squared difference
  aligns exactly what the MSE/PSNR/SSIM comparison measures. ``metric="mattes"`` (Mattes mutual
  information, 32 bins) is there for data whose intensity scales differ; on smooth, low-structure
  images it was less accurate than mean squares in our tests, especially for the affine stage.
- optimiser: regular-step gradient descent, scales from physical shift, maximum step 2 voxels (rigid)
  or 1 voxel (affine) in mm of the grid, halved on every direction change, at most 40 (rigid) and 30
  (affine) iterations per level;
- multi-resolution: two levels, shrink factors (4, 2) for grids of at least 48 voxels on every axis
  (the 64^3 default: the ranking compares coarse anatomy, and skipping the full-resolution level
  halves the time without losing the alignment), (2, 1) for smaller grids; a coarse level is dropped
  if it would leave fewer than 8 voxels on an axis; smoothing sigma = shrink factor / 2 voxels;
- initialisation (``start``): two starts are tried, the *centred start* (``CenteredTransformInitializer``,
  GEOMETRY: the image centres coincide, which on the ranking's common grid is the unregistered image) and the
  *centre-of-mass start* (the centres of mass of the two images' intensities above their border medians
  coincide: a crop of a larger scan, or a body off the centre of its field of view, starts aligned); the one
  with the lower full-image cost starts the stages. ``start="centred"`` keeps the centred start only (the
  behaviour before 2026-12). ``rigid`` is an Euler transform, ``affine`` starts from the start transform,
  ``rigid_affine`` runs rigid first and starts the affine stage from its result;
- result: of the starts and each stage's result, the one with the best full-image metric
  (mean squared difference, or histogram mutual information for ``mattes``) is kept, so registration
  never makes the alignment worse; ``stage_kept`` and ``message`` say which one won.
- a stage that fails (a SimpleITK exception) or an affine result that is degenerate (determinant outside
  [0.2, 5]) is discarded, and the best of the remaining candidates is kept (``discarded`` and ``message`` say
  which stage was discarded and why): a degenerate affine does not throw away the rigid result found before it;
- failures: where no stage gave a valid transform, the best start is still the answer (its status below); no
  usable start or stage, another SimpleITK exception or a non-finite result returns ``ok=False`` with ``moved`` =
  the input moving image and the reason in ``message``.

Outcome (``status``, one per registration; :data:`REGISTRATION_STATUSES`):

- ``registered``: a registration stage was kept and no requested stage was discarded (a valid affine that did
  not beat the rigid result is not a discard: the rigid result is the registration's answer);
- ``partial``: registered less flexibly than asked: a registration stage was kept but a later requested stage
  was discarded (e.g. affine degenerate, rigid kept), or the centre-of-mass or translation-search start was kept
  (a translation found from the images; no stage improved on it);
- ``start``: the pair ended at its centred start, the unregistered image (no stage improved on it):
  compared unregistered;
- ``failed``: no usable start and no valid stage (``ok`` False): compared unregistered;
- ``off``: registration ``none``, nothing was asked.

:func:`registration_ok` is True for ``registered``, ``partial`` and ``off``; False for ``start`` and ``failed``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

REGISTRATION_METHODS: tuple[str, ...] = ("rigid_affine", "rigid", "affine", "none")
REGISTRATION_METRICS: tuple[str, ...] = ("mattes", "mean_squares")
REGISTRATION_STARTS: tuple[str, ...] = ("moments", "centred")
REGISTRATION_STATUSES: tuple[str, ...] = ("registered", "partial", "start", "failed", "off")
CENTRED_START = "centred start"
MOMENTS_START = "centre-of-mass start"
SEARCH_START = "translation-search start"
STARTS = (CENTRED_START, MOMENTS_START, SEARCH_START)
SEARCH_GRID = 32  # the translation search runs on the grid block-averaged to at most this many voxels per axis
SEARCH_MIN_OVERLAP = 0.5  # a searched shift must keep this share of the smaller field of view overlapping

SAMPLING_PERCENTAGE = 0.1
HISTOGRAM_BINS = 32
FULL_RESOLUTION_BELOW = 48  # grids with fewer voxels on their smallest axis register at full resolution
COARSEST_LEVEL_VOXELS = 8  # a coarser level is added only if it keeps at least this many voxels per axis
ITERATIONS = {"rigid": 40, "affine": 30}
MAX_STEP_VOXELS = {"rigid": 2.0, "affine": 1.0}
DETERMINANT_RANGE = (0.2, 5.0)
_ITK_ERROR = re.compile(r"ITK ERROR: (\w+)\(0x[0-9a-fA-F]+\): (.*)")


def error_text(error: BaseException, limit: int = 200) -> str:
    """A SimpleITK exception in one line: ITK's own reason ("MeanSquaresImageToImageMetricv4: VirtualSampledPointSet
    must have 1 or more points."), not the header path it was thrown in, which would fill ``limit`` first."""
    text = " ".join(str(error).split())
    found = _ITK_ERROR.search(text)
    return (f"{found.group(1)}: {found.group(2)}" if found else text)[:limit]


@dataclass(frozen=True)
class RegistrationResult:
    """Outcome of :func:`register`.

    moved: the moving image resampled onto the fixed grid (fixed's shape, float32); the input moving
    image when ``ok`` is False. also_moved: the ``also_move`` arrays, transformed the same way.
    ok: False when registration failed (the caller should compare unregistered and record ``message``).
    stage_kept: the candidate kept ("affine", "rigid", "centre-of-mass start", "centred start"; "none" when
    registration is off, "" on failure). discarded: "<stage> <failed|discarded>: <reason>" per discarded stage.
    status: see the module doc.
    """

    moved: np.ndarray
    ok: bool
    message: str
    also_moved: tuple[np.ndarray, ...] = field(default=())
    stage_kept: str = ""
    discarded: tuple[str, ...] = ()
    status: str = "failed"


def registration_ok(status: str) -> bool:
    """Whether a pair with this ``status`` counts as registered (see the module doc)."""
    if status not in REGISTRATION_STATUSES:
        raise ValueError(f"Unknown registration status {status!r}; expected one of {REGISTRATION_STATUSES}.")
    return status in ("registered", "partial", "off")


def outcome_status(stage_kept: str, discarded: Sequence[str], ok: bool = True) -> str:
    """The status of a registration that kept ``stage_kept`` after discarding ``discarded`` stages."""
    if not ok:
        return "failed"
    if stage_kept == "none":
        return "off"
    if stage_kept == CENTRED_START:
        return "start"
    if stage_kept in STARTS:  # aligned by the start's translation alone
        return "partial"
    return "partial" if discarded else "registered"


def background_value(image: np.ndarray) -> float:
    """Median of the border voxels (first and last index of every axis): the fill value outside a case."""
    image = np.asarray(image)
    if image.size == 0:
        return 0.0
    border = [np.take(image, index, axis=axis).ravel() for axis in range(image.ndim) for index in (0, -1)]
    return float(np.median(np.concatenate(border)))


def _to_sitk(array: np.ndarray, spacing: Sequence[float], origin: Sequence[float] | None = None) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    image.SetSpacing([float(s) for s in reversed(spacing)])
    if origin is not None:
        image.SetOrigin([float(o) for o in reversed(origin)])
    return image


def _check_spacing(spacing: Sequence[float], ndim: int, what: str) -> tuple[float, ...]:
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(
            f"{what}: expected {ndim} positive spacings in the array's axis order (z, y, x); received {spacing}."
        )
    return spacing


def centred_origin(shape: Sequence[int], spacing: Sequence[float]) -> tuple[float, ...]:
    """Origin (physical position of voxel 0, mm) that puts the centre of the array at 0."""
    return tuple(-(n - 1) * s / 2.0 for n, s in zip(shape, spacing, strict=True))


def resample_to_grid(
    image: np.ndarray,
    spacing: Sequence[float],
    grid_shape: Sequence[int],
    grid_spacing: Sequence[float],
    *,
    fill_value: float = 0.0,
    linear: bool = True,
) -> np.ndarray:
    """Resample ``image`` (spacing in mm) onto a grid of ``grid_shape`` x ``grid_spacing``, centres aligned.

    Coarser grids are block-averaged first (integer factor per axis) so that downsampling does not
    alias. Voxels of the grid outside the image get ``fill_value``. Returns float32 of ``grid_shape``.
    """
    image = np.asarray(image, dtype=np.float32)
    spacing = _check_spacing(spacing, image.ndim, "resample_to_grid spacing")
    grid_spacing = _check_spacing(grid_spacing, image.ndim, "resample_to_grid grid_spacing")
    grid_shape = tuple(int(n) for n in grid_shape)
    if len(grid_shape) != image.ndim:
        raise ValueError(f"grid_shape {grid_shape} does not match the image's {image.ndim} dimensions.")

    # Block average by the integer part of the downsampling factor (cheap anti-aliasing).
    factors = [max(1, min(int(g // s), n)) for g, s, n in zip(grid_spacing, spacing, image.shape, strict=True)]
    origin = list(centred_origin(image.shape, spacing))
    if any(f > 1 for f in factors):
        kept = [(n // f) * f for n, f in zip(image.shape, factors, strict=True)]
        image = image[tuple(slice(0, k) for k in kept)]
        blocks = []
        for k, f in zip(kept, factors, strict=True):
            blocks.extend([k // f, f])
        image = image.reshape(blocks).mean(axis=tuple(range(1, 2 * image.ndim, 2)), dtype=np.float32)
        origin = [o + (f - 1) * s / 2.0 for o, f, s in zip(origin, factors, spacing, strict=True)]
        spacing = tuple(s * f for s, f in zip(spacing, factors, strict=True))

    if (
        image.shape == grid_shape
        and np.allclose(spacing, grid_spacing)
        and np.allclose(origin, centred_origin(grid_shape, grid_spacing))
    ):
        return np.ascontiguousarray(image, dtype=np.float32)

    source = _to_sitk(image, spacing, origin)
    reference = sitk.Image([int(n) for n in reversed(grid_shape)], sitk.sitkFloat32)
    reference.SetSpacing([float(s) for s in reversed(grid_spacing)])
    reference.SetOrigin([float(o) for o in reversed(centred_origin(grid_shape, grid_spacing))])
    interpolator = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    result = sitk.Resample(source, reference, sitk.Transform(), interpolator, float(fill_value), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(result).astype(np.float32, copy=False)


def shrink_factors(shape: Sequence[int]) -> tuple[int, ...]:
    """Multi-resolution shrink factors for a registration on an image of ``shape`` (see module doc)."""
    finest = 2 if min(shape) >= FULL_RESOLUTION_BELOW else 1
    coarse = 2 * finest
    if min(shape) // coarse >= COARSEST_LEVEL_VOXELS:
        return (coarse, finest)
    return (finest,)


def _registration_method(
    metric: str, seed: int, iterations: int, max_step: float, shrink: Sequence[int]
) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    if metric == "mattes":
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
    else:
        method.SetMetricAsMeanSquares()
    method.SetMetricSamplingStrategy(method.RANDOM)
    # SimpleITK reads seed 0 as "seed from the wall clock"; shift by one so every seed is reproducible.
    method.SetMetricSamplingPercentage(SAMPLING_PERCENTAGE, int(seed) + 1)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=max_step,
        minStep=1e-3 * max_step,
        numberOfIterations=iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([int(f) for f in shrink])
    method.SetSmoothingSigmasPerLevel([f / 2.0 for f in shrink])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return method


def _run_stage(
    fixed: sitk.Image,
    moving: sitk.Image,
    initial: sitk.Transform,
    metric: str,
    seed: int,
    stage: str,
    shrink: Sequence[int],
    masks: tuple[sitk.Image | None, sitk.Image | None] = (None, None),
) -> sitk.Transform:
    """Optimise a copy of ``initial`` with the settings of ``stage`` ("rigid" or "affine"); ``masks``: the fixed
    and moving fields of view the metric is restricted to (None: all voxels)."""
    voxel = float(np.mean(fixed.GetSpacing()))
    method = _registration_method(metric, seed, ITERATIONS[stage], MAX_STEP_VOXELS[stage] * voxel, shrink)
    if masks[0] is not None:
        method.SetMetricFixedMask(masks[0])
    if masks[1] is not None:
        method.SetMetricMovingMask(masks[1])
    method.SetInitialTransform(sitk.Transform(initial), inPlace=False)
    return method.Execute(fixed, moving)


def _innermost(transform: sitk.Transform) -> sitk.Transform:
    if transform.GetName() == "CompositeTransform":
        composite = sitk.CompositeTransform(transform)
        if composite.GetNumberOfTransforms() == 1:
            return composite.GetNthTransform(0)
    return transform


def _affine_from(transform: sitk.Transform, dimension: int) -> sitk.AffineTransform:
    """An affine transform equal to ``transform`` (a centred Euler transform, maybe in a composite)."""
    inner = _innermost(transform)
    euler = sitk.Euler3DTransform(inner) if dimension == 3 else sitk.Euler2DTransform(inner)
    affine = sitk.AffineTransform(dimension)
    affine.SetMatrix(euler.GetMatrix())
    affine.SetTranslation(euler.GetTranslation())
    affine.SetCenter(euler.GetCenter())
    return affine


def _determinant(transform: sitk.Transform, dimension: int) -> float:
    inner = _innermost(transform)
    if inner.GetName() != "AffineTransform":
        return 1.0
    matrix = np.asarray(sitk.AffineTransform(inner).GetMatrix(), dtype=np.float64)
    return float(np.linalg.det(matrix.reshape(dimension, dimension)))


def _mutual_information(a: np.ndarray, b: np.ndarray, bins: int = HISTOGRAM_BINS) -> float:
    """Histogram mutual information of two images (nats)."""
    joint, _, _ = np.histogram2d(a.ravel(), b.ravel(), bins=bins)
    joint /= joint.sum()
    pa = joint.sum(axis=1, keepdims=True)
    pb = joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float(np.sum(joint[nonzero] * np.log(joint[nonzero] / (pa @ pb)[nonzero])))


def _cost(fixed: np.ndarray, moved: np.ndarray, metric: str, where: np.ndarray | None = None) -> float:
    """Full-image cost the registration minimises (lower is better); ``where``: the fixed field of view."""
    if where is not None:
        fixed, moved = fixed[where], moved[where]
    if metric == "mattes":
        return -_mutual_information(fixed, moved)
    diff = fixed.astype(np.float64) - moved
    return float(np.mean(diff * diff))


def _centre_of_mass(image: np.ndarray, spacing: Sequence[float]) -> np.ndarray | None:
    """Physical centre of mass (mm, SimpleITK's (x, y, z) order, origin 0) of the intensities above the border
    median; None when nothing lies above it."""
    weights = np.clip(image.astype(np.float64) - background_value(image), 0.0, None)
    total = weights.sum()
    if not total > 0 or not np.isfinite(total):
        return None
    centre = [float((weights.sum(axis=tuple(a for a in range(image.ndim) if a != axis)) * np.arange(n)).sum() / total)
              * s for axis, (n, s) in enumerate(zip(image.shape, spacing, strict=True))]
    return np.asarray(centre[::-1])


def _block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return array.astype(np.float64)
    kept = tuple(slice(0, (n // factor) * factor) for n in array.shape)
    cropped = array[kept].astype(np.float64)
    blocks = [v for n in cropped.shape for v in (n // factor, factor)]
    return cropped.reshape(blocks).mean(axis=tuple(range(1, 2 * array.ndim, 2)))


def _searched_shift(fixed: np.ndarray, moving: np.ndarray, spacing: Sequence[float],
                    fields: tuple[np.ndarray | None, np.ndarray | None]) -> np.ndarray | None:
    """The translation (mm, SimpleITK's (x, y, z) order; fixed point + shift = moving point) with the lowest mean
    squared difference over the two fields' overlap, searched exhaustively on a coarse grid by FFT correlation;
    shifts that overlap less than SEARCH_MIN_OVERLAP of the smaller field are not considered. None: no such shift."""
    factor = max(1, int(np.ceil(max(fixed.shape) / SEARCH_GRID)))
    if min(fixed.shape) // factor < 4:
        return None
    f, g = _block_mean(fixed, factor), _block_mean(moving, factor)
    masks = [np.ones(f.shape) if field is None else _block_mean(field, factor) > 0.5 for field in fields]
    mf, mg = (m.astype(np.float64) for m in masks)
    if not mf.any() or not mg.any():
        return None
    size = [2 * n for n in f.shape]

    axes = tuple(range(f.ndim))

    def spectrum(a: np.ndarray) -> np.ndarray:
        return np.fft.rfftn(a, size, axes=axes)

    def correlate(a_spec: np.ndarray, b_spec: np.ndarray) -> np.ndarray:  # sum_x a(x) b(x + s)
        return np.fft.irfftn(np.conj(a_spec) * b_spec, size, axes=axes)

    mf_s, mff_s, mfff_s = spectrum(mf), spectrum(mf * f), spectrum(mf * f * f)
    mg_s, mgg_s, mggg_s = spectrum(mg), spectrum(mg * g), spectrum(mg * g * g)
    overlap = correlate(mf_s, mg_s)
    squares = correlate(mfff_s, mg_s) - 2.0 * correlate(mff_s, mgg_s) + correlate(mf_s, mggg_s)
    valid = overlap >= SEARCH_MIN_OVERLAP * min(mf.sum(), mg.sum())
    if not valid.any():
        return None
    cost = np.where(valid, squares / np.maximum(overlap, 1e-9), np.inf)
    index = np.unravel_index(int(np.argmin(cost)), cost.shape)
    shift = [(i if i < n // 2 else i - n) * factor * s for i, n, s in zip(index, size, spacing, strict=True)]
    return np.asarray(shift[::-1], dtype=np.float64)


def _translated(centred: sitk.Transform, dimension: int, centre: Sequence[float], shift: Sequence[float]
                ) -> sitk.Transform:
    start = sitk.Euler3DTransform(centred) if dimension == 3 else sitk.Euler2DTransform(centred)
    start.SetCenter([float(c) for c in centre])
    start.SetTranslation([float(t) for t in shift])
    return start


def _moments_start(fixed: np.ndarray, moving: np.ndarray, spacing: Sequence[float], centred: sitk.Transform
                   ) -> sitk.Transform | None:
    """The centred start moved so that the two images' centres of mass coincide (None without a mass)."""
    fixed_centre, moving_centre = _centre_of_mass(fixed, spacing), _centre_of_mass(moving, spacing)
    if fixed_centre is None or moving_centre is None:
        return None
    start = sitk.Euler3DTransform(centred) if fixed.ndim == 3 else sitk.Euler2DTransform(centred)
    start.SetCenter([float(c) for c in fixed_centre])
    start.SetTranslation([float(t) for t in moving_centre - fixed_centre])
    return start


def register(
    fixed: np.ndarray,
    moving: np.ndarray,
    spacing: Sequence[float],
    method: str = "rigid_affine",
    seed: int = 0,
    *,
    metric: str = "mean_squares",
    also_move: Sequence[np.ndarray] = (),
    start: str = "moments",
    fields: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
) -> RegistrationResult:
    """Register ``moving`` to ``fixed`` (same shape, 2D or 3D, nnU-Net axis order, spacing in mm).

    ``method``: "rigid_affine" (rigid, then affine from it), "rigid", "affine" or "none" (no-op).
    ``metric``: "mean_squares" (default) or "mattes". ``start``: "moments" (default) or "centred" (see the module
    doc). ``fields``: the fixed and moving images' fields of view (bool, their shape; None: every voxel), the
    voxels that hold image data rather than the fill of a smaller scan: the metric, and the full-image cost that
    picks the result, look at them only (a crop of a larger scan is not pulled towards its fill). ``also_move``:
    further arrays on the moving grid (other channels, masks) moved with the same transform; boolean arrays use
    nearest-neighbour interpolation and fill False, float arrays linear interpolation filled with their border
    median. A singleton leading axis (one slice) is registered in 2D. On failure returns ``ok=False``, ``moved`` =
    ``moving`` and the reason in ``message``; ``status``, ``stage_kept`` and ``discarded`` say what happened.
    """
    if method not in REGISTRATION_METHODS:
        raise ValueError(f"Unknown registration {method!r}; expected one of {', '.join(REGISTRATION_METHODS)}.")
    if metric not in REGISTRATION_METRICS:
        raise ValueError(f"Unknown registration metric {metric!r}; expected one of {REGISTRATION_METRICS}.")
    if start not in REGISTRATION_STARTS:
        raise ValueError(f"Unknown registration start {start!r}; expected one of {REGISTRATION_STARTS}.")
    fixed = np.asarray(fixed)
    moving = np.asarray(moving)
    if fixed.shape != moving.shape:
        raise ValueError(
            f"register expects fixed and moving images of the same shape; received {fixed.shape} and "
            f"{moving.shape}. Resample both to a common grid first (resample_to_grid)."
        )
    if fixed.ndim not in (2, 3):
        raise ValueError(f"register expects 2D (y, x) or 3D (z, y, x) arrays; received shape {fixed.shape}.")
    spacing = _check_spacing(spacing, fixed.ndim, "register spacing")
    extras = tuple(np.asarray(extra) for extra in also_move)
    fields = tuple(None if f is None or np.all(f) else np.asarray(f, dtype=bool) for f in fields)
    for f in fields:
        if f is not None and (f.shape != fixed.shape or not f.any()):
            raise ValueError(f"fields must be non-empty masks of the image shape {fixed.shape}.")
    for extra in extras:
        if extra.shape != moving.shape:
            raise ValueError(f"also_move arrays must have the moving shape {moving.shape}; received {extra.shape}.")

    moving32 = moving.astype(np.float32, copy=False)
    if method == "none":
        return RegistrationResult(moving32, True, "no registration", extras, "none", (), "off")

    if fixed.ndim == 3 and fixed.shape[0] == 1:  # a single slice: register in 2D
        result = register(
            fixed[0], moving[0], spacing[1:], method, seed, metric=metric, also_move=[e[0] for e in extras],
            start=start, fields=tuple(None if f is None else f[0] for f in fields),
        )
        return RegistrationResult(
            result.moved[None], result.ok, result.message, tuple(e[None] for e in result.also_moved),
            result.stage_kept, result.discarded, result.status,
        )

    def failure(reason: str) -> RegistrationResult:
        return RegistrationResult(moving32, False, reason, extras)

    if min(fixed.shape) < 4:
        return failure(f"registration skipped: image too small {fixed.shape} (need 4 voxels per axis)")
    if not np.all(np.isfinite(fixed)) or not np.all(np.isfinite(moving)):
        return failure("registration skipped: non-finite intensities")
    if not np.ptp(fixed) > 0 or not np.ptp(moving) > 0:
        return failure("registration skipped: constant image")

    # ITK prints warnings (e.g. "no valid points") straight to stderr; the outcome is reported instead.
    show_warnings = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        dimension = fixed.ndim
        shrink = shrink_factors(fixed.shape)
        fixed_image = _to_sitk(fixed, spacing)
        moving_image = _to_sitk(moving, spacing)
        masks = tuple(None if f is None else sitk.Cast(_to_sitk(f.astype(np.float32), spacing), sitk.sitkUInt8)
                      for f in fields)
        where = fields[0]
        if where is None and fields[1] is not None:
            where = np.ones(fixed.shape, dtype=bool)
        euler = sitk.Euler3DTransform() if dimension == 3 else sitk.Euler2DTransform()
        centred: sitk.Transform = sitk.CenteredTransformInitializer(
            fixed_image, moving_image, euler, sitk.CenteredTransformInitializerFilter.GEOMETRY
        )
        starts: list[tuple[str, sitk.Transform]] = [(CENTRED_START, centred)]
        if start == "moments":
            moments = _moments_start(fixed, moving, spacing, centred)
            if moments is not None:
                starts.append((MOMENTS_START, moments))
            shift = _searched_shift(fixed, moving, spacing, fields)
            if shift is not None:
                centre = [(n - 1) * sp / 2.0 for n, sp in zip(fixed.shape[::-1], spacing[::-1], strict=True)]
                starts.append((SEARCH_START, _translated(centred, dimension, centre, shift)))

        def warp(array: np.ndarray, chosen: sitk.Transform) -> np.ndarray:
            is_mask = array.dtype == bool
            image = _to_sitk(array.astype(np.float32), spacing)
            interpolator = sitk.sitkNearestNeighbor if is_mask else sitk.sitkLinear
            fill = 0.0 if is_mask else background_value(array)
            warped = sitk.GetArrayFromImage(
                sitk.Resample(image, fixed_image, chosen, interpolator, fill, sitk.sitkFloat32)
            )
            return warped > 0.5 if is_mask else warped.astype(np.float32, copy=False)

        smaller_field = min(int(np.sum(f)) if f is not None else fixed.size for f in fields)

        def score(candidate: sitk.Transform) -> tuple[np.ndarray, float]:
            """The moved image and its cost over the fields' overlap (inf if it keeps less than
            SEARCH_MIN_OVERLAP of the smaller field)."""
            moved = warp(moving, candidate)
            if fields[0] is None and fields[1] is None:
                return moved, _cost(fixed, moved, metric)
            overlap = where if fields[1] is None else warp(fields[1], candidate)
            if where is not None:
                overlap = overlap & where
            if overlap.sum() < SEARCH_MIN_OVERLAP * smaller_field:
                return moved, np.inf
            return moved, _cost(fixed, moved, metric, overlap)

        scored: list[tuple[str, sitk.Transform, np.ndarray, float]] = []
        for name, candidate in starts:
            scored.append((name, candidate, *score(candidate)))
        finite_starts = [entry for entry in scored if np.isfinite(entry[3])] or scored[:1]
        transform = min(finite_starts, key=lambda entry: entry[3])[1]  # ties: the centred start
        candidates: list[tuple[str, sitk.Transform]] = []
        discarded: list[str] = []  # stages whose result is not a valid candidate, with the reason
        if method in ("rigid", "rigid_affine"):
            try:
                transform = _run_stage(fixed_image, moving_image, transform, metric, seed, "rigid", shrink, masks)
                candidates.append(("rigid", transform))
            except RuntimeError as error:  # SimpleITK's failures (e.g. no valid points) are RuntimeErrors
                discarded.append(f"rigid failed: {error_text(error)}")
        if method in ("affine", "rigid_affine"):
            try:
                affine = _run_stage(fixed_image, moving_image, _affine_from(transform, dimension), metric, seed,
                                    "affine", shrink, masks)
                determinant = _determinant(affine, dimension)
                if DETERMINANT_RANGE[0] <= determinant <= DETERMINANT_RANGE[1]:
                    candidates.append(("affine", affine))
                else:
                    discarded.append(f"affine discarded: degenerate transform (determinant {determinant:.3g})")
            except RuntimeError as error:
                discarded.append(f"affine failed: {error_text(error)}")
        best_name, best_transform, best_moved, best_cost = "", centred, moving32, np.inf
        for name, candidate, moved, cost in scored:
            if np.isfinite(cost) and cost < best_cost:
                best_name, best_transform, best_moved, best_cost = name, candidate, moved, cost
        for name, candidate in candidates:
            moved, cost = score(candidate)
            if np.isfinite(cost) and cost <= best_cost:  # ties go to the later (registered) candidate
                best_name, best_transform, best_moved, best_cost = name, candidate, moved, cost
        if not np.isfinite(best_cost):  # no start or stage gave a usable image: compare unregistered
            reason = "; ".join(discarded) or "registration produced a non-finite image"
            return RegistrationResult(moving32, False, reason, extras, "", tuple(discarded), "failed")
        also_moved = tuple(warp(extra, best_transform) for extra in extras)
        notes = f" ({'; '.join(discarded)})" if discarded else ""
        return RegistrationResult(best_moved, True, f"kept {best_name}{notes}", also_moved, best_name,
                                  tuple(discarded), outcome_status(best_name, discarded))
    except Exception as error:  # noqa: BLE001 - any SimpleITK failure means "compare unregistered"
        return failure(f"{type(error).__name__}: {error_text(error, 300)}")
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(show_warnings)
