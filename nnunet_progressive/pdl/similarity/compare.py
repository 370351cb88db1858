"""Rank the training cases of a preprocessed nnU-Net dataset by image dissimilarity (Progressive DL).

Pipeline (pure core first, I/O shell below):

0. Cases. ``nnprog rank`` ranks one nnU-Net fold's training cases (``rank_dataset``): everything below, grid
   and data ranges and reference included, is computed from them, never from the fold's validation cases.
1. Common grid (:func:`common_grid`). Every case is resampled once onto one small grid: per axis
   ``min(grid_size, largest case extent in voxels)`` voxels (``grid_size`` = 64 by default), covering the
   largest physical extent (mm) of any case on that axis, all cases centred. One physical spacing for all
   cases keeps their true sizes (a small patient stays small, unlike resampling each case to fill the
   grid), nothing is cropped away, and the cost of a pair no longer depends on the case size: the
   ranking compares coarse anatomy, which 64^3 shows. Voxels outside a case get its background (the
   median of its border voxels); ``Thumbnail.field`` marks the voxels inside the case's own field of view.
2. Region (:func:`body_mask`). ``body``: a case's body mask is nnU-Net's own nonzero mask (the voxels
   the preprocessing kept as non-background; seg == -1 marks the rest) when that mask excludes anything,
   otherwise the Otsu foreground of any channel with holes filled slice by slice (CT: air is the clipped
   minimum, lungs are filled in). A pair is compared inside the union of both body masks (after
   registration). ``image``: all grid voxels. Either way only where both cases hold data (both fields of
   view): a crop of a larger scan is compared on what it shows, not on its fill.
3. Pair comparison (:func:`compare_pair`). The moving case is registered to the fixed one on channel 0
   (channels of an nnU-Net case are co-registered, so one transform moves all; see
   :mod:`~nnunet_progressive.pdl.similarity.registration` for the starts, stages and outcomes). MSE, PSNR, SSIM
   and UQI are computed per channel and averaged over channels. PSNR/SSIM use one data range per channel for
   the ranked cases: the 0.5-99.5 percentile spread of that channel over their thumbnails, so pair values are
   comparable.
4. Ranking (:mod:`nnunet_progressive.pdl.similarity.ranking`): per-case scores per metric, then the combined
   rank (0 = most dissimilar), and the order by each of MSE, PSNR and SSIM alone (:data:`RANKING_METRICS`).

Registration outcome of a pair (``status``): ``registered``; ``partial`` (registered less flexibly than asked: a
requested stage discarded, e.g. a degenerate affine with the rigid result kept, or only a start's translation
kept); ``start`` (ended at the centred start: unregistered); ``failed`` (no valid transform: unregistered);
``off`` (registration ``none``). ``registration_ok`` is False for ``start`` and ``failed``.

Output JSON (``similarity_ranking_<data identifier>_fold<F>.json``), written atomically: ``case_ids`` (sorted),
``case_list_fingerprint``, ``order`` (combined, most dissimilar first), ``orders`` {combined|mse|psnr|ssim:
order}, ``combined_rank`` {case: rank}, ``scores`` {metric: {case: dissimilarity}} (higher = more dissimilar),
``pairs`` [{fixed, moving, registration_ok, status, stage_kept, discarded: [reason], message, values: {metric:
value}}], ``registration_summary`` (pairs per status, registered / not registered, stage kept, affine / rigid
stages discarded: counted from ``pairs``), ``failures`` [{fixed, moving, status, message}] (the pairs not
registered), ``mode``, ``reference``, ``registration``, ``region``, ``package_version``, the grid settings and
``settings`` (fold, split source, data identifier, spacing, plans, configuration and the comparison settings).
Pair results are cached in ``<output stem>.pairs.json`` next to it (rewritten atomically every 20
pairs or 30 s, at the end and on interruption), keyed by the settings (registration, region, grid, data
ranges, configuration, plans, fold): an interrupted or repeated run computes only the missing pairs.

Resources: the thumbnails of all cases stay in memory (64^3 float32 = 1 MiB per case and channel: 1 GiB
for 1000 single-channel cases). ``num_processes > 1`` runs loading and comparisons in a spawn pool
(workers receive thumbnails, never open files other than the case they load); from a script, call
:func:`rank_dataset` under ``if __name__ == "__main__":`` as usual for multiprocessing.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import binary_fill_holes

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.records import CachedPair, PairCacheFile, read_record, write_record
from nnunet_progressive.pdl.similarity import ranking
from nnunet_progressive.pdl.similarity.metrics import (
    METRIC_NAMES,
    PSNR_CAP_DB,
    compare_channels,
    dissimilarity,
    identical_value,
)
from nnunet_progressive.pdl.similarity.registration import (
    REGISTRATION_STATUSES,
    background_value,
    register,
    registration_ok,
    resample_to_grid,
)

REGIONS: tuple[str, ...] = ("body", "image")
MODE_CHOICES: tuple[str, ...] = ("auto", *ranking.MODES)
DEFAULT_GRID_SIZE = 64
CACHE_FORMAT = 3  # 2: registration status, stage kept, discarded stages; 3: failed stages keep the best start
OUTPUT_FORMAT = 2  # 2: per-fold rankings, pair records, registration counts, orders per metric
CACHE_FLUSH_EVERY_PAIRS = 20
CACHE_FLUSH_EVERY_SECONDS = 30.0
SEED = 0


# ----------------------------------------------------------------------------------------------------
# Pure core: plain arrays and dicts in, plain data out.
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thumbnail:
    """A case on the common grid. image: (c, *grid) float32; body: grid-shaped bool (see body_mask); field: the
    grid voxels inside the case's own field of view (grid-shaped bool; None: all of them), the rest is fill."""

    image: np.ndarray
    body: np.ndarray
    field: np.ndarray | None = None


@dataclass(frozen=True)
class PairResult:
    """Raw metric values of one (fixed, moving) pair (channel means; PSNR capped at PSNR_CAP_DB dB) and how its
    registration went: ``status`` (registration.REGISTRATION_STATUSES), the stage kept, the discarded stages with
    their reasons; ``registration_ok`` follows from ``status`` (registration.registration_ok)."""

    values: dict[str, float]
    registration_ok: bool
    message: str
    status: str = "registered"
    stage_kept: str = ""
    discarded: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        """The pair's entry in the ranking JSON and its cache (without the pair's case ids)."""
        return {"registration_ok": self.registration_ok, "status": self.status, "stage_kept": self.stage_kept,
                "discarded": list(self.discarded), "message": self.message, "values": self.values}

    @classmethod
    def from_record(cls, entry: Mapping[str, Any]) -> PairResult:
        return cls({k: float(v) for k, v in entry["values"].items()}, bool(entry["registration_ok"]),
                   str(entry["message"]), str(entry["status"]), str(entry["stage_kept"]),
                   tuple(str(d) for d in entry["discarded"]))


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
    field = resample_to_grid(np.ones(data.shape[1:], np.float32), spacing, grid_shape, grid_spacing) > 0.999
    return Thumbnail(image=image, body=body_mask(image, nonzero_grid) & field, field=None if field.all() else field)


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
    start: str = "moments",
) -> PairResult:
    """Register ``moving`` to ``fixed`` (channel 0 drives), then MSE/PSNR/SSIM/UQI averaged over channels.

    ``region``: "body" = union of both body masks (the moving one transformed), "image" = all voxels; either
    within both fields of view (a crop of a larger scan is compared where it holds data, not on its fill).
    ``start``: the registration's start (registration.REGISTRATION_STARTS).
    """
    if region not in REGIONS:
        raise ValueError(f"Unknown region {region!r}; expected one of {', '.join(REGIONS)}.")
    if fixed.image.shape != moving.image.shape:
        raise ProgressiveConfigError(
            f"Cases{' ' + name if name else ''} differ in shape on the common grid: {fixed.image.shape} vs "
            f"{moving.image.shape} (channels, *grid). All cases need the same channels."
        )
    moving_field = np.ones(moving.body.shape, bool) if moving.field is None else moving.field
    result = register(
        fixed.image[0],
        moving.image[0],
        grid_spacing,
        registration,
        seed,
        also_move=[*moving.image[1:], moving.body, moving_field],
        start=start,
        fields=(fixed.field, moving.field),
    )
    moved_image = np.stack([result.moved, *result.also_moved[:-2]])
    moved_body, moved_field = result.also_moved[-2], result.also_moved[-1]
    mask = (fixed.body | moved_body) if region == "body" else None
    if fixed.field is not None or moving.field is not None:  # compare where both scans hold data
        both = moved_field if fixed.field is None else fixed.field & moved_field
        mask = both if mask is None else mask & both
        if not mask.any():
            mask = (fixed.body | moved_body) if region == "body" else None

    fixed_image = fixed.image
    if fixed_image.ndim == 4 and fixed_image.shape[1] == 1:  # one slice: compare as 2D images
        fixed_image, moved_image = fixed_image[:, 0], moved_image[:, 0]
        mask = None if mask is None else mask[0]
    values = compare_channels(fixed_image, moved_image, data_ranges, mask, name=name)
    values["psnr"] = min(values["psnr"], PSNR_CAP_DB)
    return PairResult(values=values, registration_ok=registration_ok(result.status), message=result.message,
                      status=result.status, stage_kept=result.stage_kept, discarded=result.discarded)


def settings_key(settings: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``settings``: the cache key of pair results."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()


RANKING_METRICS: tuple[str, ...] = ("combined", "mse", "psnr", "ssim")


def order_by_metric(scores: Mapping[str, Mapping[str, float]], metric: str) -> list[str]:
    """Case ids most dissimilar first by one metric's per-case scores; ties by case id (sorted order)."""
    per_case = scores[metric]
    return sorted(per_case, key=lambda case_id: (-per_case[case_id], case_id))


def registration_counts(pair_records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ranking's registration summary from its pair records: pairs per status, pairs registered
    (``registration_ok``) or not, and pairs whose affine / rigid stage was discarded."""
    counts: dict[str, Any] = {"pairs": len(pair_records)}
    counts["by_status"] = {status: sum(r["status"] == status for r in pair_records)
                           for status in REGISTRATION_STATUSES}
    counts["registered"] = sum(bool(r["registration_ok"]) for r in pair_records)
    counts["not_registered"] = len(pair_records) - counts["registered"]
    counts["kept"] = dict(sorted(Counter(r["stage_kept"] or "nothing (failed)" for r in pair_records).items()))
    for stage in ("rigid", "affine"):
        counts[f"{stage}_discarded"] = sum(any(d.startswith(f"{stage} ") for d in r["discarded"])
                                           for r in pair_records)
    return counts


def summarise(
    case_ids: Sequence[str],
    pair_results: Mapping[ranking.Pair, PairResult],
    mode: str,
    reference: str | None,
) -> dict[str, Any]:
    """Per-metric per-case dissimilarities, combined ranks, orders (combined and per metric), pair records,
    registration counts and failures (pairs not registered) from pair results."""
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
    score_table = {metric: dict(zip(ids, values, strict=True)) for metric, values in scores.items()}
    order = ranking.order_by_rank(ids, ranks)
    pairs = [{"fixed": fixed, "moving": moving, **r.record()} for (fixed, moving), r in sorted(pair_results.items())]
    failures = [{"fixed": p["fixed"], "moving": p["moving"], "status": p["status"], "message": p["message"]}
                for p in pairs if not p["registration_ok"]]
    return {
        "scores": score_table,
        "combined_rank": dict(zip(ids, ranks, strict=True)),
        "order": order,
        "orders": {"combined": order, **{m: order_by_metric(score_table, m) for m in RANKING_METRICS[1:]}},
        "registration_summary": registration_counts(pairs),
        "failures": failures,
        "pairs": pairs,
    }

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
                stored = read_record(self.path, PairCacheFile)
            except ProgressiveConfigError:  # damaged: a cache, computed again
                stored = None
            if stored is not None and stored.format == CACHE_FORMAT and stored.settings_key == self.key:
                for entry in stored.pairs:
                    pair = (entry.fixed, entry.moving)
                    self.results[pair] = PairResult.from_record(entry.to_json())
                    self.seconds[pair] = entry.seconds
            else:
                self.discarded = len(stored.pairs) if stored is not None else 0

    def add(self, pair: ranking.Pair, result: PairResult, seconds: float) -> None:
        self.results[pair] = result
        self.seconds[pair] = seconds
        self._dirty += 1
        due = time.monotonic() - self._last_flush > CACHE_FLUSH_EVERY_SECONDS
        if self._dirty >= CACHE_FLUSH_EVERY_PAIRS or due:
            self.flush()

    def flush(self) -> None:
        pairs = [
            CachedPair(
                fixed=fixed,
                moving=moving,
                **result.record(),
                seconds=round(self.seconds.get((fixed, moving), 0.0), 4),
            )
            for (fixed, moving), result in sorted(self.results.items())
        ]
        write_record(
            self.path, PairCacheFile(format=CACHE_FORMAT, settings_key=self.key, settings=self.settings, pairs=pairs)
        )
        self._dirty = 0
        self._last_flush = time.monotonic()
