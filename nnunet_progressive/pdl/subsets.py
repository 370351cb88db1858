"""Set 1 of Progressive DL: the training cases the first stage uses alone (pure functions)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nnunet_progressive.core.errors import ProgressiveConfigError

ORDERS = ("dissimilar_first", "similar_first", "random")


def set1_size(num_training_cases: int, share: float) -> int:
    """ceil(share x N), at least 1 and at most N."""
    if num_training_cases < 1:
        raise ProgressiveConfigError("the fold has no training cases")
    if not 0.0 < share <= 1.0:
        raise ProgressiveConfigError(f"the Set 1 share must lie in (0, 1], got {share}")
    return min(num_training_cases, max(1, math.ceil(share * num_training_cases)))


def select_set1(
    training_ids: Sequence[str],
    share: float,
    order: str,
    ranking_order: Sequence[str] | None = None,
    seed: int = 0,
) -> list[str]:
    """The Set 1 case ids of one fold.

    Args:
        training_ids: the fold's training cases (validation cases are never part of any set).
        share: Set 1 size as a share of ``training_ids``.
        order: "dissimilar_first" (the paper's default), "similar_first", or "random" (control).
        ranking_order: all ranked case ids, most dissimilar first (``order`` in the ranking JSON);
            needed unless ``order`` is "random".
        seed: seed of the random control.
    """
    if order not in ORDERS:
        raise ProgressiveConfigError(f"unknown PDL order {order!r}; expected one of {ORDERS}")
    size = set1_size(len(training_ids), share)
    if order == "random":
        rng = np.random.default_rng(seed)
        chosen = rng.choice(sorted(training_ids), size=size, replace=False)
        return sorted(str(c) for c in chosen)
    if ranking_order is None:
        raise ProgressiveConfigError("a similarity ranking is needed for similarity-ordered PDL")
    train = set(training_ids)
    missing = sorted(train - set(ranking_order))
    if missing:
        raise ProgressiveConfigError(
            f"{len(missing)} training cases are not in the similarity ranking (e.g. {missing[:3]}); "
            f"the ranking is stale: rerun nnprog rank"
        )
    ranked = [case for case in ranking_order if case in train]
    if order == "similar_first":
        ranked = ranked[::-1]
    return ranked[:size]


RANKING_SOURCE_KEYS = ("data_identifier", "spacing", "case_list_fingerprint")


def ranking_mismatches(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Why a ranking cannot choose this run's Set 1: what it was computed from vs. what the run trains on.

    Both map ``data_identifier`` (the preprocessed data folder), ``spacing`` (mm) and ``case_list_fingerprint``;
    ``expected`` may add ``num_cases`` and ``recorded`` ``num_cases`` for the message. Plans and configuration
    names are not compared: plans that share a data identifier (nnU-Net's ResEnc presets) share the images.
    """
    problems = []
    for key in RANKING_SOURCE_KEYS:
        if recorded.get(key) is None:
            problems.append(f"it does not record its {key.replace('_', ' ')} (written by an older version)")
            continue
        mine, theirs = recorded[key], expected[key]
        if key == "spacing":
            same = len(mine) == len(theirs) and np.allclose(np.asarray(mine, float), np.asarray(theirs, float),
                                                             rtol=1e-6, atol=0.0)
        else:
            same = mine == theirs
        if same:
            continue
        if key == "case_list_fingerprint":
            problems.append(f"it was made for a different case list ({recorded.get('num_cases', '?')} cases ranked, "
                            f"{expected.get('num_cases', '?')} preprocessed now)")
        else:
            problems.append(f"its {key.replace('_', ' ')} is {mine!r}, this run's is {theirs!r}")
    return problems
