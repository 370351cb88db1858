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
- initialisation: ``CenteredTransformInitializer`` (GEOMETRY: image centres coincide); ``rigid`` is an
  Euler transform, ``affine`` starts from that centred transform, ``rigid_affine`` runs rigid first and
  starts the affine stage from its result;
- result: of the centred start and each stage's result, the one with the best full-image metric
  (mean squared difference, or histogram mutual information for ``mattes``) is kept, so registration
  never makes the alignment worse; ``message`` says which one won.
- a stage that fails (a SimpleITK exception) or an affine result that is degenerate (determinant outside
  [0.2, 5]) is discarded, and the best of the remaining candidates is kept (``message`` says which stage was
  discarded and why): a degenerate affine no longer throws away the rigid result found before it;
- failures: no stage gave a valid transform, another SimpleITK exception or a non-finite result returns
  ``ok=False`` with ``moved`` = the input moving image and the reason in ``message``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

REGISTRATION_METHODS: tuple[str, ...] = ("rigid_affine", "rigid", "affine", "none")
REGISTRATION_METRICS: tuple[str, ...] = ("mattes", "mean_squares")

SAMPLING_PERCENTAGE = 0.1
HISTOGRAM_BINS = 32
FULL_RESOLUTION_BELOW = 48  # grids with fewer voxels on their smallest axis register at full resolution
COARSEST_LEVEL_VOXELS = 8  # a coarser level is added only if it keeps at least this many voxels per axis
ITERATIONS = {"rigid": 40, "affine": 30}
MAX_STEP_VOXELS = {"rigid": 2.0, "affine": 1.0}
DETERMINANT_RANGE = (0.2, 5.0)


@dataclass(frozen=True)
class RegistrationResult:
    """Outcome of :func:`register`.

    moved: the moving image resampled onto the fixed grid (fixed's shape, float32); the input moving
    image when ``ok`` is False. also_moved: the ``also_move`` arrays, transformed the same way.
    ok: False when registration failed (the caller should compare unregistered and record ``message``).
    """

    moved: np.ndarray
    ok: bool
    message: str
    also_moved: tuple[np.ndarray, ...] = field(default=())


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
) -> sitk.Transform:
    """Optimise a copy of ``initial`` with the settings of ``stage`` ("rigid" or "affine")."""
    voxel = float(np.mean(fixed.GetSpacing()))
    method = _registration_method(metric, seed, ITERATIONS[stage], MAX_STEP_VOXELS[stage] * voxel, shrink)
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


def _cost(fixed: np.ndarray, moved: np.ndarray, metric: str) -> float:
    """Full-image cost the registration minimises (lower is better)."""
    if metric == "mattes":
        return -_mutual_information(fixed, moved)
    diff = fixed.astype(np.float64) - moved
    return float(np.mean(diff * diff))


def register(
    fixed: np.ndarray,
    moving: np.ndarray,
    spacing: Sequence[float],
    method: str = "rigid_affine",
    seed: int = 0,
    *,
    metric: str = "mean_squares",
    also_move: Sequence[np.ndarray] = (),
) -> RegistrationResult:
    """Register ``moving`` to ``fixed`` (same shape, 2D or 3D, nnU-Net axis order, spacing in mm).

    ``method``: "rigid_affine" (rigid, then affine from it), "rigid", "affine" or "none" (no-op).
    ``metric``: "mean_squares" (default) or "mattes". ``also_move``: further arrays on the moving grid
    (other channels, masks) moved with the same transform; boolean arrays use nearest-neighbour
    interpolation and fill False, float arrays linear interpolation filled with their border median. A
    singleton leading axis (one slice) is registered in 2D. On failure returns ``ok=False``, ``moved`` =
    ``moving`` and the reason in ``message``.
    """
    if method not in REGISTRATION_METHODS:
        raise ValueError(f"Unknown registration {method!r}; expected one of {', '.join(REGISTRATION_METHODS)}.")
    if metric not in REGISTRATION_METRICS:
        raise ValueError(f"Unknown registration metric {metric!r}; expected one of {REGISTRATION_METRICS}.")
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
    for extra in extras:
        if extra.shape != moving.shape:
            raise ValueError(f"also_move arrays must have the moving shape {moving.shape}; received {extra.shape}.")

    moving32 = moving.astype(np.float32, copy=False)
    if method == "none":
        return RegistrationResult(moving32, True, "no registration", extras)

    if fixed.ndim == 3 and fixed.shape[0] == 1:  # a single slice: register in 2D
        result = register(
            fixed[0], moving[0], spacing[1:], method, seed, metric=metric, also_move=[e[0] for e in extras]
        )
        return RegistrationResult(
            result.moved[None], result.ok, result.message, tuple(e[None] for e in result.also_moved)
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
        euler = sitk.Euler3DTransform() if dimension == 3 else sitk.Euler2DTransform()
        start: sitk.Transform = sitk.CenteredTransformInitializer(
            fixed_image, moving_image, euler, sitk.CenteredTransformInitializerFilter.GEOMETRY
        )
        candidates: list[tuple[str, sitk.Transform]] = [("centred start", start)]
        discarded: list[str] = []  # stages whose result is not a valid candidate, with the reason
        transform = start
        if method in ("rigid", "rigid_affine"):
            try:
                transform = _run_stage(fixed_image, moving_image, transform, metric, seed, "rigid", shrink)
                candidates.append(("rigid", transform))
            except RuntimeError as error:  # SimpleITK's failures (e.g. no valid points) are RuntimeErrors
                discarded.append(f"rigid failed: {' '.join(str(error).split())[:200]}")
        if method in ("affine", "rigid_affine"):
            try:
                affine = _run_stage(fixed_image, moving_image, _affine_from(transform, dimension), metric, seed,
                                    "affine", shrink)
                determinant = _determinant(affine, dimension)
                if DETERMINANT_RANGE[0] <= determinant <= DETERMINANT_RANGE[1]:
                    candidates.append(("affine", affine))
                else:
                    discarded.append(f"affine discarded: degenerate transform (determinant {determinant:.3g})")
            except RuntimeError as error:
                discarded.append(f"affine failed: {' '.join(str(error).split())[:200]}")
        if len(candidates) == 1:  # no stage gave a valid transform: compare unregistered
            return failure("; ".join(discarded))

        def warp(array: np.ndarray, chosen: sitk.Transform) -> np.ndarray:
            is_mask = array.dtype == bool
            image = _to_sitk(array.astype(np.float32), spacing)
            interpolator = sitk.sitkNearestNeighbor if is_mask else sitk.sitkLinear
            fill = 0.0 if is_mask else background_value(array)
            warped = sitk.GetArrayFromImage(
                sitk.Resample(image, fixed_image, chosen, interpolator, fill, sitk.sitkFloat32)
            )
            return warped > 0.5 if is_mask else warped.astype(np.float32, copy=False)

        best_name, best_transform, best_moved, best_cost = "", start, moving32, np.inf
        for name, candidate in candidates:
            moved = warp(moving, candidate)
            cost = _cost(fixed, moved, metric)
            if np.isfinite(cost) and cost <= best_cost:  # ties go to the later (registered) candidate
                best_name, best_transform, best_moved, best_cost = name, candidate, moved, cost
        if not np.isfinite(best_cost):
            return failure("registration produced a non-finite image")
        also_moved = tuple(warp(extra, best_transform) for extra in extras)
        notes = f" ({'; '.join(discarded)})" if discarded else ""
        return RegistrationResult(best_moved, True, f"kept {best_name}{notes}", also_moved)
    except Exception as error:  # noqa: BLE001 - any SimpleITK failure means "compare unregistered"
        message = " ".join(str(error).split())[:300]
        return failure(f"{type(error).__name__}: {message}")
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(show_warnings)
