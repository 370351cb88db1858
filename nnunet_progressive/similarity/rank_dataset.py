"""Rank the training cases of a preprocessed nnU-Net dataset by image dissimilarity (Progressive DL).

Pipeline (pure core first, I/O shell below):

1. Common grid (:func:`common_grid`). Every case is resampled once onto one small grid: per axis
   ``min(grid_size, largest case extent in voxels)`` voxels (``grid_size`` = 64 by default), covering the
   largest physical extent (mm) of any case on that axis, all cases centred. One physical spacing for all
   cases keeps their true sizes (a small patient stays small, unlike resampling each case to fill the
   grid), nothing is cropped away, and the cost of a pair no longer depends on the case size: the
   ranking compares coarse anatomy, which 64^3 shows. Voxels outside a case get its background (the
   median of its border voxels).
2. Region (:func:`body_mask`). ``body``: a case's body mask is nnU-Net's own nonzero mask (the voxels
   the preprocessing kept as non-background; seg == -1 marks the rest) when that mask excludes anything,
   otherwise the Otsu foreground of any channel with holes filled slice by slice (CT: air is the clipped
   minimum, lungs are filled in). A pair is compared inside the union of both body masks (after
   registration). ``image``: all grid voxels.
3. Pair comparison (:func:`compare_pair`). The moving case is registered to the fixed one on channel 0
   (channels of an nnU-Net case are co-registered, so one transform moves all); if registration fails the
   pair is compared unregistered and listed under ``failures``. MSE, PSNR, SSIM and UQI are computed per
   channel and averaged over channels. PSNR/SSIM use one data range per channel for the whole dataset:
   the 0.5-99.5 percentile spread of that channel over all thumbnails, so pair values are comparable.
4. Ranking (:mod:`nnunet_progressive.similarity.ranking`): per-case scores per metric, then the combined
   rank (0 = most dissimilar).

Output JSON (``similarity_ranking_<configuration>.json``), written atomically: ``case_ids`` (sorted),
``case_list_fingerprint``, ``order`` (most dissimilar first), ``combined_rank`` {case: rank}, ``scores``
{metric: {case: dissimilarity}} (higher = more dissimilar), ``mode``, ``reference``, ``registration``,
``region``, ``failures`` [{fixed, moving, message}], ``package_version`` and the grid settings.
Pair results are cached in ``<output stem>.pairs.json`` next to it (rewritten atomically every 20
pairs or 30 s, at the end and on interruption), keyed by the settings (registration, region, grid, data
ranges, configuration, plans): an interrupted or repeated run computes only the missing pairs.

Resources: the thumbnails of all cases stay in memory (64^3 float32 = 1 MiB per case and channel: 1 GiB
for 1000 single-channel cases). ``num_processes > 1`` runs loading and comparisons in a spawn pool
(workers receive thumbnails, never open files other than the case they load); from a script, call
:func:`rank_dataset` under ``if __name__ == "__main__":`` as usual for multiprocessing.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import binary_fill_holes
from tqdm import tqdm

from nnunet_progressive import __version__
from nnunet_progressive.errors import ProgressiveConfigError
from nnunet_progressive.io_utils import atomic_write_text
from nnunet_progressive.similarity import ranking
from nnunet_progressive.similarity.metrics import (
    METRIC_NAMES,
    PSNR_CAP_DB,
    compare_channels,
    dissimilarity,
    identical_value,
)
from nnunet_progressive.similarity.registration import (
    REGISTRATION_METHODS,
    background_value,
    register,
    resample_to_grid,
)

REGIONS: tuple[str, ...] = ("body", "image")
MODE_CHOICES: tuple[str, ...] = ("auto", *ranking.MODES)
DEFAULT_GRID_SIZE = 64
CACHE_FORMAT = 1
OUTPUT_FORMAT = 1
CACHE_FLUSH_EVERY_PAIRS = 20
CACHE_FLUSH_EVERY_SECONDS = 30.0
SEED = 0


# ----------------------------------------------------------------------------------------------------
# Pure core: plain arrays and dicts in, plain data out.
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thumbnail:
    """A case on the common grid. image: (c, *grid) float32; body: grid-shaped bool (see body_mask)."""

    image: np.ndarray
    body: np.ndarray


@dataclass(frozen=True)
class PairResult:
    """Raw metric values of one (fixed, moving) pair (channel means; PSNR capped at PSNR_CAP_DB dB)."""

    values: dict[str, float]
    registration_ok: bool
    message: str


def case_list_fingerprint(case_ids: Iterable[str]) -> str:
    """sha256 (hex) of the sorted case ids joined by "\\n": identifies the case list a ranking covers."""
    return hashlib.sha256("\n".join(sorted(str(c) for c in case_ids)).encode("utf-8")).hexdigest()


def common_grid(
    shapes: Sequence[Sequence[int]], spacings: Sequence[Sequence[float]], grid_size: int = DEFAULT_GRID_SIZE
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Grid shape and spacing (mm) covering every case (spatial ``shapes`` with ``spacings``, same order).

    Per axis: ``min(grid_size, largest shape)`` voxels spanning the largest physical extent.
    """
    if not shapes or len(shapes) != len(spacings):
        raise ValueError(f"Expected one spacing per shape; received {len(shapes)} shapes, {len(spacings)} spacings.")
    ndim = len(shapes[0])
    if any(len(s) != ndim for s in shapes) or any(len(s) != ndim for s in spacings):
        raise ValueError(f"All shapes and spacings must have {ndim} axes.")
    if grid_size < 1:
        raise ValueError(f"grid_size must be >= 1; received {grid_size}.")
    extents = np.array(
        [[n * s for n, s in zip(shape, spacing, strict=True)] for shape, spacing in zip(shapes, spacings, strict=True)]
    )
    largest_shape = np.max(np.asarray(shapes), axis=0)
    grid_shape = tuple(int(min(grid_size, n)) for n in largest_shape)
    grid_spacing = tuple(float(e / n) for e, n in zip(extents.max(axis=0), grid_shape, strict=True))
    return grid_shape, grid_spacing


def body_mask(image: np.ndarray, nonzero: np.ndarray | None = None) -> np.ndarray:
    """Body mask (spatial bool) of a case ``image`` (c, *spatial); ``nonzero``: nnU-Net's nonzero mask.

    nnU-Net's mask when it excludes some voxel; else the union over channels of the Otsu foreground,
    holes filled per slice along axis 0; the whole image if that is empty (e.g. a constant image).
    """
    from skimage.filters import threshold_otsu

    spatial = image.shape[1:]
    if nonzero is not None:
        nonzero = np.asarray(nonzero, dtype=bool)
        if nonzero.shape != spatial:
            raise ValueError(f"nonzero mask shape {nonzero.shape} does not match the image's {spatial}.")
        if nonzero.any() and not nonzero.all():
            return nonzero
    foreground = np.zeros(spatial, dtype=bool)
    for channel in image:
        if np.ptp(channel) > 0:
            foreground |= channel > threshold_otsu(channel)
    if foreground.ndim == 3:
        for index in range(foreground.shape[0]):
            foreground[index] = binary_fill_holes(foreground[index])
    else:
        foreground = binary_fill_holes(foreground)
    return foreground if foreground.any() else np.ones(spatial, dtype=bool)


def make_thumbnail(
    data: np.ndarray,
    spacing: Sequence[float],
    grid_shape: Sequence[int],
    grid_spacing: Sequence[float],
    nonzero: np.ndarray | None = None,
    *,
    name: str | None = None,
) -> Thumbnail:
    """Resample a case ``data`` (c, *spatial), ``spacing`` in mm, onto the common grid (centres aligned)."""
    data = np.asarray(data)
    where = f"case {name}" if name else "the case"
    if data.ndim != len(grid_shape) + 1:
        raise ValueError(
            f"Expected {where} as (channels, {'z, y, x' if len(grid_shape) == 3 else 'y, x'}); "
            f"received shape {data.shape}."
        )
    for channel in range(data.shape[0]):
        finite = np.isfinite(data[channel])
        if not finite.all():
            raise ProgressiveConfigError(
                f"{where.capitalize()} channel {channel} contains {int(finite.size - finite.sum())} NaN or "
                "infinite values. Fix the raw image and re-run nnUNetv2_preprocess, or exclude the case."
            )
    channels = [resample_to_grid(c, spacing, grid_shape, grid_spacing, fill_value=background_value(c)) for c in data]
    image = np.stack(channels).astype(np.float32, copy=False)
    nonzero_grid = None
    if nonzero is not None:
        nonzero_grid = resample_to_grid(np.asarray(nonzero, np.float32), spacing, grid_shape, grid_spacing) > 0.5
    return Thumbnail(image=image, body=body_mask(image, nonzero_grid))


def channel_data_ranges(images: Sequence[np.ndarray], max_samples: int = 5_000_000) -> list[float]:
    """One data range per channel: 99.5th minus 0.5th percentile over all ``images`` (c, *grid).

    Uses an even subsample of at most ``max_samples`` voxels per channel; falls back to max - min, then 1.
    """
    if not images:
        raise ValueError("channel_data_ranges needs at least one image.")
    num_channels = images[0].shape[0]
    stride = max(1, math.ceil(sum(img[0].size for img in images) / max_samples))
    ranges = []
    for channel in range(num_channels):
        pooled = np.concatenate([np.asarray(img[channel]).ravel()[::stride] for img in images])
        low, high = np.percentile(pooled, [0.5, 99.5])
        spread = float(high - low)
        if not spread > 0:
            spread = float(np.max(pooled) - np.min(pooled))
        ranges.append(spread if spread > 0 else 1.0)
    return ranges


def compare_pair(
    fixed: Thumbnail,
    moving: Thumbnail,
    grid_spacing: Sequence[float],
    data_ranges: Sequence[float],
    registration: str = "rigid_affine",
    region: str = "body",
    seed: int = SEED,
    *,
    name: str | None = None,
) -> PairResult:
    """Register ``moving`` to ``fixed`` (channel 0 drives), then MSE/PSNR/SSIM/UQI averaged over channels.

    ``region``: "body" = union of both body masks (the moving one transformed), "image" = all voxels.
    """
    if region not in REGIONS:
        raise ValueError(f"Unknown region {region!r}; expected one of {', '.join(REGIONS)}.")
    if fixed.image.shape != moving.image.shape:
        raise ProgressiveConfigError(
            f"Cases{' ' + name if name else ''} differ in shape on the common grid: {fixed.image.shape} vs "
            f"{moving.image.shape} (channels, *grid). All cases need the same channels."
        )
    result = register(
        fixed.image[0],
        moving.image[0],
        grid_spacing,
        registration,
        seed,
        also_move=[*moving.image[1:], moving.body],
    )
    moved_image = np.stack([result.moved, *result.also_moved[:-1]])
    moved_body = result.also_moved[-1]
    mask = (fixed.body | moved_body) if region == "body" else None

    fixed_image = fixed.image
    if fixed_image.ndim == 4 and fixed_image.shape[1] == 1:  # one slice: compare as 2D images
        fixed_image, moved_image = fixed_image[:, 0], moved_image[:, 0]
        mask = None if mask is None else mask[0]
    values = compare_channels(fixed_image, moved_image, data_ranges, mask, name=name)
    values["psnr"] = min(values["psnr"], PSNR_CAP_DB)
    return PairResult(values=values, registration_ok=result.ok, message=result.message)


def settings_key(settings: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``settings``: the cache key of pair results."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()


def summarise(
    case_ids: Sequence[str],
    pair_results: Mapping[ranking.Pair, PairResult],
    mode: str,
    reference: str | None,
) -> dict[str, Any]:
    """Per-metric per-case dissimilarities, combined ranks, order and failures from pair results."""
    ids = sorted(case_ids)
    scores: dict[str, list[float]] = {}
    for metric in METRIC_NAMES:
        pair_scores = {pair: dissimilarity(metric, r.values[metric]) for pair, r in pair_results.items()}
        scores[metric] = ranking.per_case_scores(
            pair_scores,
            ids,
            mode,
            reference=reference,
            self_score=dissimilarity(metric, identical_value(metric)),
        )
    ranks = ranking.combined_rank(scores, ids)
    failures = [
        {"fixed": fixed, "moving": moving, "message": r.message}
        for (fixed, moving), r in sorted(pair_results.items())
        if not r.registration_ok
    ]
    return {
        "scores": {metric: dict(zip(ids, values, strict=True)) for metric, values in scores.items()},
        "combined_rank": dict(zip(ids, ranks, strict=True)),
        "order": ranking.order_by_rank(ids, ranks),
        "failures": failures,
    }


# ----------------------------------------------------------------------------------------------------
# I/O shell: nnU-Net dataset access, cache, processes, output file.
# ----------------------------------------------------------------------------------------------------


def write_json_atomic(path: Path, content: Mapping[str, Any]) -> None:
    """Write ``content`` as JSON to ``path`` via a temporary file in the same folder (NaN refused)."""
    atomic_write_text(path, json.dumps(content, indent=1, allow_nan=False))


def cache_path_for(output: Path) -> Path:
    """The pair cache sidecar of an output file: ``<stem>.pairs.json`` in the same folder."""
    output = Path(output)
    return output.with_name(f"{output.stem}.pairs.json")


class PairCache:
    """Pair results for one settings key, persisted as a sidecar JSON (atomic rewrites)."""

    def __init__(self, path: Path, settings: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.settings = dict(settings)
        self.key = settings_key(settings)
        self.results: dict[ranking.Pair, PairResult] = {}
        self.seconds: dict[ranking.Pair, float] = {}
        self.discarded = 0
        self._dirty = 0
        self._last_flush = time.monotonic()
        if self.path.exists():
            try:
                stored = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                stored = {}
            if stored.get("format") == CACHE_FORMAT and stored.get("settings_key") == self.key:
                for entry in stored.get("pairs", []):
                    pair = (entry["fixed"], entry["moving"])
                    self.results[pair] = PairResult(
                        {k: float(v) for k, v in entry["values"].items()},
                        bool(entry["registration_ok"]),
                        str(entry["message"]),
                    )
                    self.seconds[pair] = float(entry.get("seconds", 0.0))
            else:
                self.discarded = len(stored.get("pairs", [])) if isinstance(stored, dict) else 0

    def add(self, pair: ranking.Pair, result: PairResult, seconds: float) -> None:
        self.results[pair] = result
        self.seconds[pair] = seconds
        self._dirty += 1
        due = time.monotonic() - self._last_flush > CACHE_FLUSH_EVERY_SECONDS
        if self._dirty >= CACHE_FLUSH_EVERY_PAIRS or due:
            self.flush()

    def flush(self) -> None:
        pairs = [
            {
                "fixed": fixed,
                "moving": moving,
                "values": result.values,
                "registration_ok": result.registration_ok,
                "message": result.message,
                "seconds": round(self.seconds.get((fixed, moving), 0.0), 4),
            }
            for (fixed, moving), result in sorted(self.results.items())
        ]
        write_json_atomic(
            self.path,
            {"format": CACHE_FORMAT, "settings_key": self.key, "settings": self.settings, "pairs": pairs},
        )
        self._dirty = 0
        self._last_flush = time.monotonic()


def _case_spacing(
    configuration_spacing: Sequence[float],
    ndim: int,
    properties: Mapping[str, Any],
    transpose_forward: Sequence[int],
    case_id: str,
) -> tuple[float, ...]:
    """Spacing (mm, array axis order) of a preprocessed case: the configuration's, or for 2d
    configurations (two spacings for 3D arrays) the case's own slice spacing plus the in-plane ones."""
    spacing = [float(s) for s in configuration_spacing]
    if len(spacing) == ndim:
        return tuple(spacing)
    if len(spacing) == ndim - 1 and "spacing" in properties:
        original = [float(properties["spacing"][i]) for i in transpose_forward]
        return (original[0], *spacing)
    raise ProgressiveConfigError(
        f"Case {case_id}: cannot tell its spacing: the configuration has {len(spacing)} spacings "
        f"{spacing} for {ndim}D data and the case properties hold no 'spacing'."
    )


def _open_dataset(data_folder: Path) -> tuple[type, Any]:
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    try:
        dataset_class = infer_dataset_class(str(data_folder))
    except (AssertionError, KeyError, FileNotFoundError) as error:
        raise ProgressiveConfigError(
            f"Cannot read preprocessed cases in {data_folder}: expected nnU-Net's .b2nd (or .npz) case files "
            f"and .pkl properties ({error}). Re-run nnUNetv2_preprocess for this configuration."
        ) from error
    return dataset_class, dataset_class(str(data_folder))


def _load_case(dataset: Any, case_id: str) -> tuple[np.ndarray, np.ndarray | None, dict]:
    data, seg, _, properties = dataset.load_case(case_id)
    data = np.asarray(data[:], dtype=np.float32)
    nonzero = None if seg is None else np.asarray(seg[:])[0] >= 0
    return data, nonzero, properties


# Worker-side state (set by _init_worker in spawned processes, or used in-process).
_WORKER_DATASET: dict[str, Any] = {}


def _init_worker(sitk_threads: int) -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(sitk_threads)))


def _thumbnail_task(task: tuple) -> tuple[str, Thumbnail]:
    data_folder, case_id, spacing, grid_shape, grid_spacing = task
    dataset = _WORKER_DATASET.get(data_folder)
    if dataset is None:
        _, dataset = _open_dataset(Path(data_folder))
        _WORKER_DATASET.clear()
        _WORKER_DATASET[data_folder] = dataset
    data, nonzero, _ = _load_case(dataset, case_id)
    return case_id, make_thumbnail(data, spacing, grid_shape, grid_spacing, nonzero, name=case_id)


def _compare_task(task: tuple) -> tuple[ranking.Pair, PairResult, float]:
    fixed_id, moving_id, fixed, moving, grid_spacing, data_ranges, registration, region = task
    start = time.perf_counter()
    # Looked up as a module global on every call so tests can monkeypatch it (in-process runs).
    result = compare_pair(
        fixed, moving, grid_spacing, data_ranges, registration, region, name=f"{fixed_id} vs {moving_id}"
    )
    return (fixed_id, moving_id), result, time.perf_counter() - start


def _run_tasks(
    function: Callable[[tuple], Any],
    tasks: Sequence[tuple],
    num_processes: int,
    description: str,
    progress: bool,
) -> Iterable[Any]:
    """Yield ``function(task)`` for all tasks, in-process or in a spawn pool (order not guaranteed)."""
    bar = tqdm(total=len(tasks), desc=description, disable=not progress or not tasks, unit="item")
    try:
        if num_processes <= 1 or len(tasks) <= 1:
            for task in tasks:
                yield function(task)
                bar.update()
            return
        threads = max(1, (os.cpu_count() or 1) // num_processes)
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(num_processes, len(tasks)), initializer=_init_worker, initargs=(threads,)) as pool:
            for output in pool.imap_unordered(function, tasks, chunksize=1):
                yield output
                bar.update()
    finally:
        bar.close()


def _format_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def rank_preprocessed_folder(
    data_folder: str | os.PathLike,
    configuration_spacing: Sequence[float],
    output: str | os.PathLike,
    *,
    transpose_forward: Sequence[int] = (0, 1, 2),
    mode: str = "auto",
    reference: str | None = None,
    registration: str = "rigid_affine",
    region: str = "body",
    num_processes: int = 1,
    grid_size: int = DEFAULT_GRID_SIZE,
    pairwise_limit: int = ranking.PAIRWISE_LIMIT,
    extra_settings: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Rank the cases in one preprocessed data folder (``<nnUNet_preprocessed>/DatasetX/<data_identifier>``).

    ``configuration_spacing``: the configuration's spacing (mm, array axis order). ``output``: the JSON
    file to write; the pair cache goes next to it. ``extra_settings`` (e.g. configuration and plans) are
    stored in the output and the cache key. Returns the output path.
    """
    if mode not in MODE_CHOICES:
        raise ProgressiveConfigError(f"Unknown mode {mode!r}; expected one of {', '.join(MODE_CHOICES)}.")
    if registration not in REGISTRATION_METHODS:
        raise ProgressiveConfigError(
            f"Unknown registration {registration!r}; expected one of {', '.join(REGISTRATION_METHODS)}."
        )
    if region not in REGIONS:
        raise ProgressiveConfigError(f"Unknown region {region!r}; expected one of {', '.join(REGIONS)}.")
    if num_processes < 1:
        raise ProgressiveConfigError(f"num_processes must be >= 1; received {num_processes}.")
    if mode == "pairwise" and reference is not None:
        raise ProgressiveConfigError(
            f"A reference ({reference}) is only used in reference mode; pass mode='reference' or 'auto', "
            "or drop the reference."
        )
    started = time.perf_counter()
    data_folder = Path(data_folder)
    output = Path(output)
    if not data_folder.is_dir():
        raise ProgressiveConfigError(
            f"Preprocessed data folder {data_folder} does not exist. Run nnUNetv2_preprocess (or "
            "nnUNetv2_plan_and_preprocess) for this dataset and configuration first."
        )
    _, dataset = _open_dataset(data_folder)
    case_ids = sorted(dataset.identifiers)
    if len(case_ids) < 2:
        raise ProgressiveConfigError(
            f"Ranking needs at least 2 preprocessed cases; found {len(case_ids)} in {data_folder} "
            f"({case_ids}). Check that preprocessing finished."
        )

    # Header pass: shapes, channels, spacings (blosc2 opens lazily, so this reads no voxel data).
    shapes, spacings, channels = {}, {}, {}
    for case_id in case_ids:
        data, _, _, properties = dataset.load_case(case_id)
        channels[case_id] = int(data.shape[0])
        shapes[case_id] = tuple(int(n) for n in data.shape[1:])
        spacings[case_id] = _case_spacing(
            configuration_spacing, len(shapes[case_id]), properties, transpose_forward, case_id
        )
    if len(set(channels.values())) > 1:
        counts: dict[int, list[str]] = {}
        for case_id, count in channels.items():
            counts.setdefault(count, []).append(case_id)
        detail = "; ".join(f"{n} channel(s): {ids[:5]}{' ...' if len(ids) > 5 else ''}" for n, ids in counts.items())
        raise ProgressiveConfigError(
            f"All cases must have the same number of channels; found {detail}. Fix the raw dataset "
            "(one image per channel_names entry for every case) and preprocess again."
        )
    grid_shape, grid_spacing = common_grid([shapes[c] for c in case_ids], [spacings[c] for c in case_ids], grid_size)

    chosen_mode = (
        ("reference" if reference is not None else ranking.choose_mode(len(case_ids), pairwise_limit))
        if mode == "auto"
        else mode
    )
    if reference is not None and reference not in case_ids:
        raise ProgressiveConfigError(
            f"Reference case {reference!r} is not among the {len(case_ids)} preprocessed cases "
            f"(e.g. {case_ids[:5]}). Pass one of them or leave it out to pick one automatically."
        )

    print(
        f"Ranking {len(case_ids)} cases of {data_folder}: mode {chosen_mode}, registration {registration}, "
        f"region {region}, grid {grid_shape} at {tuple(round(s, 3) for s in grid_spacing)} mm.",
        flush=True,
    )
    thumbnail_tasks = [(str(data_folder), c, spacings[c], grid_shape, grid_spacing) for c in case_ids]
    thumbnails: dict[str, Thumbnail] = dict(
        _run_tasks(_thumbnail_task, thumbnail_tasks, num_processes, "Loading cases", progress)
    )
    data_ranges = channel_data_ranges([thumbnails[c].image for c in case_ids])
    if chosen_mode == "reference" and reference is None:
        reference = ranking.medoid_reference({c: thumbnails[c].image for c in case_ids})
        print(f"Reference case (closest to the mean image): {reference}", flush=True)

    settings = {
        "format": CACHE_FORMAT,
        "registration": registration,
        "region": region,
        "seed": SEED,
        "grid_shape": list(grid_shape),
        "grid_spacing": [round(s, 6) for s in grid_spacing],
        "data_ranges": [round(r, 6) for r in data_ranges],
        **dict(extra_settings or {}),
    }
    cache = PairCache(cache_path_for(output), settings)
    if cache.discarded:
        print(f"Pair cache {cache.path} holds {cache.discarded} pairs of other settings; starting afresh.")
    pairs = ranking.planned_pairs(case_ids, chosen_mode, reference)
    pending = [pair for pair in pairs if pair not in cache.results]

    def task(pair: ranking.Pair) -> tuple:
        fixed_id, moving_id = pair
        return (
            fixed_id,
            moving_id,
            thumbnails[fixed_id],
            thumbnails[moving_id],
            grid_spacing,
            data_ranges,
            registration,
            region,
        )

    if pending:
        print(f"{len(pairs)} pairs, {len(pairs) - len(pending)} cached, {len(pending)} to compute.", flush=True)
        pair, result, seconds = _compare_task(task(pending[0]))
        cache.add(pair, result, seconds)
        full_run = ranking.estimate_seconds(len(case_ids), chosen_mode, seconds, num_processes)
        remaining = (len(pending) - 1) * seconds / num_processes
        print(
            f"First pair took {seconds:.2f} s. Estimated time with {num_processes} process(es): about "
            f"{_format_seconds(remaining)} for the remaining {len(pending) - 1} pairs "
            f"(a full run of {len(pairs)} pairs: {_format_seconds(full_run)}).",
            flush=True,
        )
        try:
            outputs = _run_tasks(
                _compare_task, [task(p) for p in pending[1:]], num_processes, "Comparing pairs", progress
            )
            for pair, result, seconds in outputs:
                cache.add(pair, result, seconds)
        finally:
            cache.flush()
    else:
        print(f"All {len(pairs)} pairs found in the cache {cache.path}.", flush=True)

    summary = summarise(case_ids, {pair: cache.results[pair] for pair in pairs}, chosen_mode, reference)
    content = {
        "format": OUTPUT_FORMAT,
        "package_version": __version__,
        "case_ids": case_ids,
        "case_list_fingerprint": case_list_fingerprint(case_ids),
        "mode": chosen_mode,
        "reference": reference,
        "registration": registration,
        "region": region,
        "metrics": list(METRIC_NAMES),
        "score_definition": "per case and metric: dissimilarity, higher = more dissimilar (mse; -psnr in dB, "
        f"capped at {PSNR_CAP_DB:g} dB; 1 - ssim; 1 - uqi), mean over pairs (pairwise) or to the reference",
        "rank_definition": "combined_rank: mean of per-metric ranks (0 = most dissimilar), ties by case id; "
        "order lists the cases most dissimilar first",
        **summary,
        "num_pairs": len(pairs),
        "grid_shape": list(grid_shape),
        "grid_spacing": list(grid_spacing),
        "data_ranges": data_ranges,
        "data_folder": str(data_folder),
        "pair_cache": cache.path.name,
        "settings": {k: v for k, v in settings.items() if k not in ("format",)},
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json_atomic(output, content)
    failures = len(summary["failures"])
    print(
        f"Wrote {output} ({len(case_ids)} cases; {failures} pair(s) compared unregistered after a "
        f"registration failure). Most dissimilar: {summary['order'][:5]}",
        flush=True,
    )
    return output


def default_output_path(preprocessed_dataset_folder: str | os.PathLike, configuration: str) -> Path:
    """``<preprocessed dataset folder>/similarity_ranking_<configuration>.json``."""
    return Path(preprocessed_dataset_folder) / f"similarity_ranking_{configuration}.json"


def rank_dataset(
    dataset_name_or_id: str | int,
    configuration: str = "3d_fullres",
    plans: str = "nnUNetPlans",
    mode: str = "auto",
    reference: str | None = None,
    registration: str = "rigid_affine",
    region: str = "body",
    num_processes: int = 1,
    output: str | os.PathLike | None = None,
) -> Path:
    """Rank the preprocessed training cases of an nnU-Net dataset; returns the written JSON path.

    Reads ``$nnUNet_preprocessed/DatasetXXX_Name/<plans>.json`` for the configuration's data identifier
    and spacing, and the cases in ``<data_identifier>/``. See the module doc for the method and output.
    """
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    if not nnUNet_preprocessed.is_set():
        raise ProgressiveConfigError(
            "The environment variable nnUNet_preprocessed is not set; set it to the folder holding your "
            "preprocessed datasets (see nnU-Net's documentation/setting_up_paths.md)."
        )
    dataset_id_hint = str(dataset_name_or_id)
    try:
        dataset_name = maybe_convert_to_dataset_name(dataset_name_or_id)
    except (RuntimeError, ValueError) as error:
        raise ProgressiveConfigError(
            f"Dataset {dataset_name_or_id!r} was not found under nnUNet_preprocessed="
            f"{nnUNet_preprocessed.get()} (nor nnUNet_raw/nnUNet_results). Check the id, or run "
            f"`nnUNetv2_plan_and_preprocess -d {dataset_id_hint} -c {configuration}` first."
        ) from error
    dataset_id = dataset_name[7:10] if dataset_name.startswith("Dataset") else dataset_id_hint
    dataset_folder = Path(nnUNet_preprocessed.get()) / dataset_name
    plans_file = dataset_folder / f"{plans}.json"
    if not plans_file.is_file():
        raise ProgressiveConfigError(
            f"Dataset {dataset_name} is not planned: {plans_file} does not exist. Run "
            f"`nnUNetv2_plan_and_preprocess -d {int(dataset_id)} -c {configuration}`"
            + ("" if plans == "nnUNetPlans" else f" with the planner that writes {plans}.json")
            + " first."
        )
    plans_manager = PlansManager(str(plans_file))
    if configuration not in plans_manager.available_configurations:
        raise ProgressiveConfigError(
            f"Configuration {configuration!r} is not in {plans_file}; available: "
            f"{plans_manager.available_configurations}."
        )
    configuration_manager = plans_manager.get_configuration(configuration)
    data_folder = dataset_folder / configuration_manager.data_identifier
    if not data_folder.is_dir() or not any(data_folder.iterdir()):
        raise ProgressiveConfigError(
            f"Dataset {dataset_name} is not preprocessed for configuration {configuration}: {data_folder} "
            f"is missing or empty. Run `nnUNetv2_preprocess -d {int(dataset_id)} -plans_name {plans} "
            f"-c {configuration}` (or nnUNetv2_plan_and_preprocess) first."
        )
    output_path = Path(output) if output is not None else default_output_path(dataset_folder, configuration)
    return rank_preprocessed_folder(
        data_folder,
        configuration_manager.spacing,
        output_path,
        transpose_forward=plans_manager.transpose_forward,
        mode=mode,
        reference=reference,
        registration=registration,
        region=region,
        num_processes=num_processes,
        extra_settings={
            "dataset": dataset_name,
            "configuration": configuration,
            "plans": plans,
            "data_identifier": configuration_manager.data_identifier,
        },
    )
