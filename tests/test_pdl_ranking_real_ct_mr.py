"""The ranking's pair comparison on real CT and MR scans (pyradiomics' test scans, tests/real_scans.py): lung CT of two
patients, brain MR of two patients, and copies of one lung CT and one brain MR at another crop or spacing. Scans of
one patient rank closest; the mixed MR/CT set pairs same-organ scans. Each scan normalised as nnU-Net would: CT with
its CTNormalization (clipped to the CT dataset's tumour-label percentiles, minus their mean, over their std), MR
z-scored. The same code as `nnprog rank` (common grid, registration, metrics, summary), on a 40^3 grid. breast1 is
kept out (scripts/check_ranking_real_scans.py --pyradiomics checks it by hand)."""
from __future__ import annotations

import re

import pytest
from real_scans import (
    CT_SCANS,
    assert_summary_counts_the_records,
    compared_pairs,
    ct_case,
    ct_foreground_statistics,
    mixed_ct_mr_cases,
    pyradiomics_scan,
    read,
)

GRID = 40


@pytest.fixture(scope="module")
def mixed_pairs(pytestconfig):
    cases = mixed_ct_mr_cases(pytestconfig.cache.mkdir("real_scans"))
    return compared_pairs(cases, GRID)


def _symmetric(results, metric: str) -> dict[tuple[str, str], float]:
    return {**{pair: r.values[metric] for pair, r in results.items()},
            **{(b, a): r.values[metric] for (a, b), r in results.items()}}


def _patient(case_id: str) -> str:
    return case_id.split("_")[0]


def _organ(case_id: str) -> str:
    return re.match("[a-z]+", case_id).group()  # "brain1_2mm" -> "brain"


def test_ct_normalisation_uses_the_tumour_labels(pytestconfig):
    scans = [tuple(read(p) for p in pyradiomics_scan(name, pytestconfig.cache.mkdir("real_scans")))
             for name in CT_SCANS]
    mean, std, low, high = ct_foreground_statistics(scans)
    assert -600 < low < -300 and 50 < high < 150 and -50 < mean < 50 and 50 < std < 150  # soft tissue, in HU
    normalised, spacing = ct_case(scans[0][0], (mean, std, low, high))
    assert normalised.min() == pytest.approx((low - mean) / std) and spacing[0] == 5.0  # air and lungs: clipped


def test_scans_of_one_patient_rank_closest(mixed_pairs):
    ids, results = mixed_pairs
    for metric, closest in (("mse", min), ("ssim", max)):
        values = _symmetric(results, metric)
        for case_id in ids:
            if sum(_patient(o) == _patient(case_id) for o in ids) < 2:
                continue
            nearest = closest((o for o in ids if o != case_id), key=lambda o: values[case_id, o])
            assert _patient(nearest) == _patient(case_id), (metric, case_id, nearest)


def test_the_mixed_set_pairs_same_organ_scans(mixed_pairs):
    """By SSIM every scan is closer to each scan of its organ than to any of the other organ. Not by MSE: lung2's
    nearest scan by MSE is brain2 (1.14 against 1.46 for the lung1 crop): after nnU-Net's CT normalisation a chest CT
    is nearly two-valued (air and lungs clipped at -4.7, soft tissue up to 0.9), so lungs of two patients that do
    not overlap cost more than a brain MR whose z-scores lie in -1 to 3. MSE across modalities compares the
    normalisations' scales; a ranking compares the cases of one dataset, one modality per channel."""
    ids, results = mixed_pairs
    ssim = _symmetric(results, "ssim")
    for case_id in ids:
        same = [ssim[case_id, o] for o in ids if o != case_id and _organ(o) == _organ(case_id)]
        other = [ssim[case_id, o] for o in ids if _organ(o) != _organ(case_id)]
        assert min(same) > max(other) + 0.3, (case_id, same, other)


def test_real_pairs_say_how_their_registration_went(mixed_pairs):
    ids, results = mixed_pairs
    assert_summary_counts_the_records(ids, results, 21)
    for pair, result in results.items():
        if _organ(pair[0]) == _organ(pair[1]):  # the same organ: registered, rigid or affine kept
            assert result.status == "registered" and result.stage_kept in ("rigid", "affine"), (pair, result.message)
    # the off-centre crop is registered to the scan it was cut from
    crop = results["lung1", "lung1_crop"]
    assert crop.registration_ok and crop.values["ssim"] > 0.7, crop.message
