"""Ranking rules for Progressive DL: which pairs to compare and how pair scores become one case order.

Pure functions of plain data (case ids, dicts of floats, arrays); no files, no nnU-Net.

- Mode. ``pairwise`` compares every unordered pair of cases (N(N-1)/2 registrations) and scores a case
  by its mean dissimilarity to all others; ``reference`` compares every case to one reference case (N-1
  registrations) and scores it by its dissimilarity to that reference. :func:`choose_mode` picks
  pairwise up to ``PAIRWISE_LIMIT`` = 64 cases (2016 pairs: about 17 min at the measured 0.5 s per
  pair on one core, 64^3 grid, rigid + affine) and reference mode above (1000 cases: 999 pairs, about
  8 min at that speed, where pairwise would need 499500 pairs, about 69 h). Pairwise scores are less
  sensitive to the choice of one case, so it is preferred while it is affordable.
- Reference rule (:func:`medoid_reference`). The case whose (downsampled) image is closest, in mean
  squared difference, to the voxel-wise mean of all downsampled images: a one-pass stand-in for the
  medoid, the most "typical" case. Ties go to the smaller case id.
- Pair order. A pair is ``(fixed, moving)``. Pairwise: the smaller case id (sorted order) is fixed.
  Reference mode: the reference is always fixed.
- Fold (:func:`fold_training_cases`). A ranking for nnU-Net fold F ranks that fold's training cases only (its
  grid, data ranges, reference and every mean dissimilarity come from them), as nnU-Net's ``do_split`` names
  them: ``splits[F]["train"]``, all cases for fold ``all``, and nnU-Net's seeded random 80:20 split for a fold
  beyond the split file.
- Combination (:func:`combined_rank`). Per metric, cases are ranked by dissimilarity, most dissimilar
  first (rank 0; equal scores share their average rank). The combined score of a case is the mean of
  its per-metric ranks; cases are ordered by that mean, ties broken by case id (sorted order), and the
  position in that order is the combined rank: 0 = most dissimilar. Ranks rather than raw values are
  averaged because the metrics have unrelated scales (MSE in intensity^2, PSNR in dB, SSIM/UQI unitless).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

MODES: tuple[str, ...] = ("pairwise", "reference")
PAIRWISE_LIMIT: int = 64

Pair = tuple[str, str]


def _check_case_ids(case_ids: Sequence[str]) -> list[str]:
    ids = [str(case_id) for case_id in case_ids]
    if len(set(ids)) != len(ids):
        duplicates = sorted({case_id for case_id in ids if ids.count(case_id) > 1})
        raise ValueError(f"Case ids must be unique; duplicated: {duplicates[:10]}.")
    return ids


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"Unknown ranking mode {mode!r}; expected one of {', '.join(MODES)}.")


def choose_mode(num_cases: int, pairwise_limit: int = PAIRWISE_LIMIT) -> str:
    """ "pairwise" for ``num_cases <= pairwise_limit``, else "reference" (see module doc for the cost)."""
    if num_cases < 2:
        raise ValueError(f"Ranking needs at least 2 cases; received {num_cases}.")
    return "pairwise" if num_cases <= pairwise_limit else "reference"


def num_pairs(num_cases: int, mode: str) -> int:
    """Registrations needed: N(N-1)/2 (pairwise) or N-1 (reference)."""
    _check_mode(mode)
    if num_cases < 2:
        return 0
    return num_cases * (num_cases - 1) // 2 if mode == "pairwise" else num_cases - 1


def estimate_seconds(num_cases: int, mode: str, seconds_per_pair: float, num_processes: int = 1) -> float:
    """Wall-clock estimate in seconds: pairs x seconds per pair / processes (ideal parallel speed-up)."""
    if seconds_per_pair < 0 or not math.isfinite(seconds_per_pair):
        raise ValueError(f"seconds_per_pair must be a finite number >= 0; received {seconds_per_pair}.")
    if num_processes < 1:
        raise ValueError(f"num_processes must be >= 1; received {num_processes}.")
    return num_pairs(num_cases, mode) * float(seconds_per_pair) / num_processes


def planned_pairs(case_ids: Sequence[str], mode: str, reference: str | None = None) -> list[Pair]:
    """The ``(fixed, moving)`` pairs to compare, in a deterministic order (see module doc)."""
    _check_mode(mode)
    ids = sorted(_check_case_ids(case_ids))
    if mode == "pairwise":
        return [(ids[i], ids[j]) for i in range(len(ids)) for j in range(i + 1, len(ids))]
    if reference is None or reference not in ids:
        raise ValueError(
            f"Reference mode needs a reference among the case ids; received {reference!r} "
            f"(cases: {ids[:5]}{' ...' if len(ids) > 5 else ''})."
        )
    return [(reference, case_id) for case_id in ids if case_id != reference]


def medoid_reference(images: Mapping[str, np.ndarray]) -> str:
    """The case whose image is closest (mean squared difference) to the mean image; ties: smaller id.

    ``images``: case id -> downsampled image, all of the same shape (any number of axes, channels
    included). Cost: two passes over the images, O(N).
    """
    if not images:
        raise ValueError("medoid_reference needs at least one image; received none.")
    ids = sorted(images)
    shape = np.shape(images[ids[0]])
    total = np.zeros(shape, dtype=np.float64)
    for case_id in ids:
        image = np.asarray(images[case_id], dtype=np.float64)
        if image.shape != shape:
            raise ValueError(
                f"All images must share one shape; case {case_id} has {image.shape}, case {ids[0]} has {shape}."
            )
        total += image
    mean = total / len(ids)
    distances = {case_id: float(np.mean((np.asarray(images[case_id], np.float64) - mean) ** 2)) for case_id in ids}
    return min(ids, key=lambda case_id: (distances[case_id], case_id))


def per_case_scores(
    pair_scores: Mapping[Pair, float],
    case_ids: Sequence[str],
    mode: str,
    *,
    reference: str | None = None,
    self_score: float = 0.0,
) -> list[float]:
    """One dissimilarity per case (aligned with ``case_ids``) from one metric's pair dissimilarities.

    ``pair_scores``: ``(fixed, moving)`` -> dissimilarity (higher = more dissimilar); a pair counts for
    both of its cases, whichever is fixed. Pairwise: the mean over all pairs that contain the case.
    Reference: the score of the pair (reference, case); the reference itself gets ``self_score``, its
    dissimilarity to itself (the metric's value for identical images, e.g. 0 for MSE).
    """
    _check_mode(mode)
    ids = _check_case_ids(case_ids)
    known = set(ids)
    sums = dict.fromkeys(ids, 0.0)
    counts = dict.fromkeys(ids, 0)
    for (first, second), score in pair_scores.items():
        if first not in known or second not in known:
            raise ValueError(f"Pair ({first}, {second}) names a case that is not in case_ids.")
        if math.isnan(score):
            raise ValueError(f"Pair ({first}, {second}) has a NaN score.")
        if mode == "reference" and reference not in (first, second):
            raise ValueError(f"Pair ({first}, {second}) does not contain the reference {reference!r}.")
        for case_id in (first, second):
            if mode == "reference" and case_id == reference:
                continue
            sums[case_id] += float(score)
            counts[case_id] += 1
    if mode == "reference":
        if reference not in known:
            raise ValueError(f"Reference {reference!r} is not one of the case ids.")
        counts[reference] = 1
        sums[reference] = float(self_score)
    missing = [case_id for case_id in ids if counts[case_id] == 0]
    if missing:
        raise ValueError(f"No pair score for cases {missing[:10]}; compare them before ranking.")
    return [sums[case_id] / counts[case_id] for case_id in ids]


def _ranks_descending(values: Sequence[float]) -> np.ndarray:
    """0-based ranks, largest value first; equal values share the average of their ranks."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(-array, kind="stable")
    ranks = np.empty(len(array), dtype=np.float64)
    start = 0
    while start < len(order):
        stop = start
        while stop + 1 < len(order) and array[order[stop + 1]] == array[order[start]]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2.0
        start = stop + 1
    return ranks


def combined_rank(per_metric_scores: Mapping[str, Sequence[float]], case_ids: Sequence[str]) -> list[int]:
    """Combined rank per case (aligned with ``case_ids``): 0 = most dissimilar (see module doc).

    ``per_metric_scores``: metric name -> per-case dissimilarities aligned with ``case_ids``.
    """
    ids = _check_case_ids(case_ids)
    if not per_metric_scores:
        raise ValueError("combined_rank needs scores of at least one metric; received none.")
    mean_rank = np.zeros(len(ids), dtype=np.float64)
    for metric, scores in per_metric_scores.items():
        if len(scores) != len(ids):
            raise ValueError(f"Metric {metric!r} has {len(scores)} scores for {len(ids)} cases.")
        if any(math.isnan(float(score)) for score in scores):
            raise ValueError(f"Metric {metric!r} has NaN scores; cannot rank.")
        mean_rank += _ranks_descending(scores)
    mean_rank /= len(per_metric_scores)
    order = sorted(range(len(ids)), key=lambda index: (mean_rank[index], ids[index]))
    ranks = [0] * len(ids)
    for position, index in enumerate(order):
        ranks[index] = position
    return ranks


def order_by_rank(case_ids: Sequence[str], ranks: Sequence[int]) -> list[str]:
    """Case ids sorted by rank: most dissimilar first."""
    if len(case_ids) != len(ranks):
        raise ValueError(f"Expected one rank per case; received {len(ranks)} ranks for {len(case_ids)} cases.")
    return [case_id for _, case_id in sorted(zip(ranks, case_ids, strict=True))]


def parse_fold(value: str | int) -> int | str:
    """nnU-Net's fold argument: a non-negative integer or "all"."""
    if str(value) == "all":
        return "all"
    try:
        fold = int(value)
    except ValueError:
        raise ValueError(f"A fold is an integer >= 0 or 'all'; received {value!r}.") from None
    if fold < 0 or str(fold) != str(value).strip():
        raise ValueError(f"A fold is an integer >= 0 or 'all'; received {value!r}.")
    return fold


def fold_training_cases(all_case_ids: Sequence[str], splits: Sequence[Mapping[str, Sequence[str]]],
                        fold: int | str) -> list[str]:
    """The training cases of nnU-Net fold ``fold`` (sorted), exactly as nnU-Net's ``do_split`` picks them.

    ``splits``: the content of ``splits_final.json`` (or nnU-Net's default 5-fold split of ``all_case_ids``).
    """
    fold = parse_fold(fold)
    ids = sorted(_check_case_ids(all_case_ids))
    if fold == "all":
        return ids
    if fold < len(splits):
        training = [str(c) for c in splits[fold]["train"]]
        unknown = sorted(set(training) - set(ids))
        if unknown:
            raise ValueError(f"Fold {fold}'s training cases {unknown[:5]} are not preprocessed cases.")
        return sorted(training)
    rng = np.random.RandomState(seed=12345 + fold)  # nnU-Net's do_split for a fold beyond the split file
    chosen = rng.choice(len(ids), int(len(ids) * 0.8), replace=False)
    return sorted(ids[i] for i in chosen)

