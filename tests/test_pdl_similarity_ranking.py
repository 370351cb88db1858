"""Pure ranking rules: mode choice, pairs, reference, per-case scores, combined rank (no files)."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_progressive.pdl.similarity import ranking
from nnunet_progressive.pdl.similarity.compare import (
    PairResult,
    Thumbnail,
    body_mask,
    case_list_fingerprint,
    channel_data_ranges,
    common_grid,
    compare_pair,
    make_thumbnail,
    summarise,
)
from nnunet_progressive.pdl.similarity.metrics import dissimilarity


def test_choose_mode_threshold_and_estimate() -> None:
    assert ranking.choose_mode(2) == "pairwise"
    assert ranking.choose_mode(ranking.PAIRWISE_LIMIT) == "pairwise"
    assert ranking.choose_mode(ranking.PAIRWISE_LIMIT + 1) == "reference"
    assert ranking.choose_mode(10, pairwise_limit=5) == "reference"
    with pytest.raises(ValueError, match="at least 2 cases"):
        ranking.choose_mode(1)
    assert ranking.num_pairs(10, "pairwise") == 45
    assert ranking.num_pairs(1000, "reference") == 999
    assert ranking.estimate_seconds(1000, "reference", 0.5) == pytest.approx(499.5)
    assert ranking.estimate_seconds(10, "pairwise", 2.0, num_processes=3) == pytest.approx(30.0)
    with pytest.raises(ValueError, match="mode"):
        ranking.estimate_seconds(10, "all", 1.0)


def test_planned_pairs() -> None:
    assert ranking.planned_pairs(["c", "a", "b"], "pairwise") == [("a", "b"), ("a", "c"), ("b", "c")]
    assert ranking.planned_pairs(["c", "a", "b"], "reference", "b") == [("b", "a"), ("b", "c")]
    with pytest.raises(ValueError, match="reference among the case ids"):
        ranking.planned_pairs(["a", "b"], "reference", "z")
    with pytest.raises(ValueError, match="unique"):
        ranking.planned_pairs(["a", "a"], "pairwise")


def test_medoid_reference_is_the_case_closest_to_the_mean() -> None:
    images = {"a": np.zeros((4, 4)), "b": np.ones((4, 4)), "c": np.full((4, 4), 0.4), "d": np.full((4, 4), 0.6)}
    # mean = 0.5: c and d are equally close; the tie goes to the smaller id
    assert ranking.medoid_reference(images) == "c"
    with pytest.raises(ValueError, match="share one shape"):
        ranking.medoid_reference({"a": np.zeros((2, 2)), "b": np.zeros((3, 3))})


def test_per_case_scores_pairwise_and_reference() -> None:
    ids = ["a", "b", "c"]
    pair_scores = {("a", "b"): 1.0, ("a", "c"): 3.0, ("b", "c"): 5.0}
    assert ranking.per_case_scores(pair_scores, ids, "pairwise") == [2.0, 3.0, 4.0]
    ref_scores = {("b", "a"): 2.0, ("b", "c"): 7.0}
    assert ranking.per_case_scores(ref_scores, ids, "reference", reference="b", self_score=-1.0) == [2.0, -1.0, 7.0]
    with pytest.raises(ValueError, match="No pair score"):
        ranking.per_case_scores({("a", "b"): 1.0}, ids, "pairwise")
    with pytest.raises(ValueError, match="not in case_ids"):
        ranking.per_case_scores({("a", "x"): 1.0}, ids, "pairwise")


def test_combined_rank_mean_of_ranks_ties_by_case_id() -> None:
    ids = ["a", "b", "c", "d"]
    scores = {
        "mse": [4.0, 3.0, 2.0, 1.0],  # ranks a0 b1 c2 d3
        "ssim": [0.1, 0.4, 0.3, 0.2],  # ranks b0 c1 d2 a3
    }
    # mean ranks: a 1.5, b 0.5, c 1.5, d 2.5 -> b, then a/c tied (a first by id), then d
    assert ranking.combined_rank(scores, ids) == [1, 0, 2, 3]
    assert ranking.order_by_rank(ids, [1, 0, 2, 3]) == ["b", "a", "c", "d"]
    # equal scores share the average rank, so the id decides
    assert ranking.combined_rank({"mse": [1.0, 1.0, 1.0]}, ["z", "y", "x"]) == [2, 1, 0]
    with pytest.raises(ValueError, match="NaN"):
        ranking.combined_rank({"mse": [1.0, float("nan")]}, ["a", "b"])


def test_case_list_fingerprint_is_order_independent_sha256() -> None:
    import hashlib

    assert case_list_fingerprint(["b", "a"]) == hashlib.sha256(b"a\nb").hexdigest()
    assert case_list_fingerprint(["a", "b"]) != case_list_fingerprint(["a", "b", "c"])


def test_common_grid_covers_largest_extent() -> None:
    shape, spacing = common_grid([(10, 100, 80), (20, 50, 50)], [(3.0, 1.0, 1.0), (2.0, 1.0, 1.0)], 64)
    assert shape == (20, 64, 64)
    assert spacing == pytest.approx((40.0 / 20, 100 / 64, 80 / 64))


def test_body_mask_prefers_nnunet_nonzero_mask_else_otsu_with_holes_filled() -> None:
    image = np.zeros((1, 6, 20, 20), np.float32)
    image[0, :, 4:16, 4:16] = 10.0
    image[0, :, 8:12, 8:12] = 0.0  # a dark "lung" inside the body
    mask = body_mask(image)
    assert mask[:, 9, 9].all() and not mask[:, 1, 1].any()
    nonzero = np.zeros((6, 20, 20), bool)
    nonzero[:, 2:18, 2:18] = True
    assert np.array_equal(body_mask(image, nonzero), nonzero)
    assert body_mask(np.ones((1, 4, 5, 5), np.float32)).all()  # constant image: whole image


def _structured_case(seed: int, invert: bool = False, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(20.0)] * 3, indexing="ij")
    centre = 10 + rng.uniform(-1, 1, 3)
    r2 = sum(((g - c) / 5.0) ** 2 for g, c in zip(grids, centre, strict=True))
    image = np.exp(-r2) + 0.05 * rng.standard_normal((20, 20, 20))
    if invert:
        image = 1.0 - image
    return np.stack([image * (c + 1) for c in range(channels)]).astype(np.float32)


@pytest.mark.parametrize("mode", ["pairwise", "reference"])
def test_outlier_ranks_first_and_duplicates_last(mode: str) -> None:
    """End to end on arrays: thumbnails, registration, metrics, per-case scores, combined rank."""
    cases = {f"case_{i}": _structured_case(i) for i in range(4)}
    cases["case_dup"] = cases["case_1"].copy()
    cases["case_out"] = _structured_case(9, invert=True)
    ids = sorted(cases)
    spacing = (1.0, 1.0, 1.0)
    grid_shape, grid_spacing = common_grid([c.shape[1:] for c in cases.values()], [spacing] * len(cases), 64)
    thumbs = {k: make_thumbnail(v, spacing, grid_shape, grid_spacing, name=k) for k, v in cases.items()}
    ranges = channel_data_ranges([t.image for t in thumbs.values()])
    reference = ranking.medoid_reference({k: t.image for k, t in thumbs.items()}) if mode == "reference" else None
    assert reference != "case_out"
    pairs = ranking.planned_pairs(ids, mode, reference)
    results = {p: compare_pair(thumbs[p[0]], thumbs[p[1]], grid_spacing, ranges, "rigid", "image") for p in pairs}
    summary = summarise(ids, results, mode, reference)
    assert summary["order"][0] == "case_out"
    assert all(scores["case_out"] == max(scores.values()) for scores in summary["scores"].values())
    if mode == "pairwise":
        assert results[("case_1", "case_dup")].values["mse"] == pytest.approx(0.0, abs=1e-8)
        assert set(summary["order"][-2:]) == {"case_1", "case_dup"}


def test_compare_pair_uses_body_region_and_reports_failed_registration() -> None:
    image = _structured_case(0, channels=2)
    fixed = Thumbnail(image, np.ones(image.shape[1:], bool))
    flat = Thumbnail(np.ones_like(image), np.ones(image.shape[1:], bool))
    result = compare_pair(fixed, flat, (1.0, 1.0, 1.0), [1.0, 2.0], "rigid_affine", "body")
    assert isinstance(result, PairResult)
    assert not result.registration_ok and "constant" in result.message
    same = compare_pair(fixed, fixed, (1.0, 1.0, 1.0), [1.0, 2.0], "none", "body")
    assert same.values["mse"] == 0.0 and same.values["psnr"] == 100.0
    assert dissimilarity("psnr", same.values["psnr"]) == -100.0
