"""What a ranking was computed from (finding 13) and registration that keeps its best valid result (finding 12)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.nnunet.hooks.pdl import load_ranking_order
from nnunet_progressive.pdl.similarity import registration
from nnunet_progressive.pdl.similarity.compare import case_list_fingerprint
from nnunet_progressive.pdl.subsets import ranking_mismatches

CASES = ["a", "b", "c"]
SOURCE = {"data_identifier": "nnUNetPlans_3d_fullres", "spacing": [1.5, 1.0, 1.0],
          "case_list_fingerprint": case_list_fingerprint(CASES), "num_cases": 3}
COMMAND = "nnprog rank -d Dataset501_X -c 3d_fullres -p nnUNetPlans_small"


def test_a_ranking_of_the_same_data_matches():
    assert ranking_mismatches(SOURCE, SOURCE) == []
    shared = {**SOURCE, "plans": "nnUNetResEncUNetMPlans", "spacing": [1.5000000001, 1.0, 1.0]}
    assert ranking_mismatches(shared, SOURCE) == [], "plans sharing the data identifier share the ranking"


@pytest.mark.parametrize("change, problem", [
    ({"data_identifier": "nnUNetPlans_2d"}, "its data identifier is 'nnUNetPlans_2d'"),
    ({"spacing": [3.0, 1.0, 1.0]}, "its spacing is [3.0, 1.0, 1.0]"),
    ({"case_list_fingerprint": "0" * 64, "num_cases": 2}, "different case list (2 cases ranked, 3 preprocessed"),
    ({"spacing": None}, "does not record its spacing"),
])
def test_a_ranking_of_other_data_is_refused(change, problem):
    problems = ranking_mismatches({**SOURCE, **change}, SOURCE)
    assert len(problems) == 1 and problem in problems[0]


def _ranking_file(path, settings, cases=CASES):
    path.write_text(json.dumps({"case_ids": cases, "case_list_fingerprint": case_list_fingerprint(cases),
                                "order": list(reversed(cases)), "settings": settings}))
    return path


def test_trainer_side_check_names_the_rank_command(tmp_path):
    settings = {k: v for k, v in SOURCE.items() if k in ("data_identifier", "spacing")}
    good = _ranking_file(tmp_path / "good.json", settings)
    assert load_ranking_order(good, SOURCE, COMMAND) == ["c", "b", "a"]
    other = _ranking_file(tmp_path / "other.json", {**settings, "spacing": [2.0, 2.0, 2.0]})
    with pytest.raises(ProgressiveConfigError) as failure:
        load_ranking_order(other, SOURCE, COMMAND)
    assert "was not computed from this run's data" in str(failure.value) and COMMAND in str(failure.value)
    old = _ranking_file(tmp_path / "old.json", {})
    with pytest.raises(ProgressiveConfigError, match="written by an older version"):
        load_ranking_order(old, SOURCE, COMMAND)


def test_invalid_ranking_json_names_the_file(tmp_path):
    broken = tmp_path / "ranking.json"
    broken.write_text('{"case_ids": [')
    with pytest.raises(ProgressiveConfigError, match=f"{broken} is not valid JSON"):
        load_ranking_order(broken, SOURCE, COMMAND)
    missing = tmp_path / "none.json"
    with pytest.raises(ProgressiveConfigError, match=f"no similarity ranking at {missing}"):
        load_ranking_order(missing, SOURCE, COMMAND + f" -o {missing}")


def _ball(shape, radius):
    z, y, x = np.indices(shape)
    centre = [(n - 1) / 2 for n in shape]
    return (((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) <= radius ** 2).astype(np.float32)


def test_degenerate_affine_keeps_the_rigid_result(monkeypatch):
    """A large ball against a small one: the affine stage shrinks to a near-zero determinant (a real case)."""
    determinants = []
    measured = registration._determinant
    monkeypatch.setattr(registration, "_determinant",
                        lambda t, d: determinants.append(measured(t, d)) or determinants[-1])
    fixed, moving = _ball((32, 32, 32), 12), _ball((32, 32, 32), 3)
    result = registration.register(fixed, moving, (1.0, 1.0, 1.0), "rigid_affine")
    low, high = registration.DETERMINANT_RANGE
    assert determinants and not low <= determinants[0] <= high, "this pair must degenerate in the affine stage"
    assert result.ok, result.message
    assert result.stage_kept in ("rigid", *registration.STARTS)
    assert result.message.startswith(f"kept {result.stage_kept}")
    assert "affine discarded: degenerate transform" in result.message
    unregistered = float(np.mean((fixed - moving) ** 2))
    assert float(np.mean((fixed - result.moved) ** 2)) <= unregistered + 1e-6


def test_affine_alone_that_degenerates_ends_at_its_start_and_is_not_counted_registered():
    fixed, moving = _ball((32, 32, 32), 12), _ball((32, 32, 32), 3)
    result = registration.register(fixed, moving, (1.0, 1.0, 1.0), "affine")
    assert result.status == "start" and not registration.registration_ok(result.status)
    assert "degenerate" in result.message
    assert np.allclose(result.moved, moving, atol=1e-5)  # the centred start of two centred balls moves nothing


def test_a_fold_reads_its_own_ranking_by_the_chosen_metric(tmp_path):
    """Issue 23: a fold's ranking ranks its training cases; an all-cases ranking (older versions: validation cases
    included) or another fold's is refused with the command; NNPROG_RANKING_METRIC picks the order."""
    expected = {**SOURCE, "fold": 0}
    command = COMMAND + " --fold 0"
    settings = {"data_identifier": SOURCE["data_identifier"], "spacing": SOURCE["spacing"], "fold": 0}
    orders = {"combined": ["c", "b", "a"], "mse": ["a", "c", "b"], "psnr": ["b", "a", "c"], "ssim": ["c", "a", "b"]}
    path = _ranking_file(tmp_path / "fold0.json", settings)
    path.write_text(json.dumps({**json.loads(path.read_text()), "orders": orders}))
    for metric, order in orders.items():
        assert load_ranking_order(path, expected, command, metric) == order
    all_cases = _ranking_file(tmp_path / "all.json", {k: v for k, v in settings.items() if k != "fold"})
    with pytest.raises(ProgressiveConfigError) as failure:
        load_ranking_order(all_cases, expected, command)
    assert "ranks all 3 preprocessed cases, the validation cases of fold 0 included" in str(failure.value)
    assert command in str(failure.value)
    other_fold = _ranking_file(tmp_path / "fold1.json", {**settings, "fold": 1})
    with pytest.raises(ProgressiveConfigError, match="it ranks fold 1's training cases, this run trains fold 0"):
        load_ranking_order(other_fold, expected, command)
    without_orders = _ranking_file(tmp_path / "old.json", settings)
    with pytest.raises(ProgressiveConfigError, match="has no order by ssim"):
        load_ranking_order(without_orders, expected, command, "ssim")
