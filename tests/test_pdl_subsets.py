"""Unit tests of PDL Set 1 selection (pure functions)."""
import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.pdl.subsets import select_set1, set1_size

ORDER = ["c", "a", "e", "b", "d", "f"]  # most dissimilar first


def test_set1_size():
    assert set1_size(6, 0.5) == 3 and set1_size(5, 0.5) == 3 and set1_size(1, 0.1) == 1 and set1_size(4, 1.0) == 4
    with pytest.raises(ProgressiveConfigError):
        set1_size(0, 0.5)
    with pytest.raises(ProgressiveConfigError):
        set1_size(4, 0.0)


def test_select_set1_orders_and_excludes_validation():
    training = ["a", "b", "c", "d"]  # e and f are validation cases of this fold
    assert select_set1(training, 0.5, "dissimilar_first", ORDER) == ["c", "a"]
    assert select_set1(training, 0.5, "similar_first", ORDER) == ["d", "b"]
    random_set = select_set1(training, 0.5, "random", None, seed=3)
    assert len(random_set) == 2 and set(random_set) <= set(training)
    assert random_set == select_set1(list(reversed(training)), 0.5, "random", None, seed=3), "seeded, order-free"


def test_select_set1_errors():
    with pytest.raises(ProgressiveConfigError, match="stale"):
        select_set1(["a", "zz"], 0.5, "dissimilar_first", ORDER)
    with pytest.raises(ProgressiveConfigError, match="ranking is needed"):
        select_set1(["a"], 0.5, "dissimilar_first", None)
    with pytest.raises(ProgressiveConfigError, match="unknown PDL order"):
        select_set1(["a"], 0.5, "hardest_first", ORDER)
