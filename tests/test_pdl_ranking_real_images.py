"""The ranking's pair comparison on real MR scans shipped inside registry packages (tests/real_scans.py): scans of
one patient rank closest, whatever their crop, resolution or stored direction, and every pair says how its
registration went. The same code as `nnprog rank` (common grid, registration, metrics, summary), on a 40^3 grid."""
from __future__ import annotations

import pytest
from real_scans import (
    MNI_T1,
    NIBABEL_ANATOMICAL,
    NIBABEL_MOVED,
    assert_summary_counts_the_records,
    compared_pairs,
    mr_case,
    read,
    resampled,
    shipped_file,
)

GRID = 40


@pytest.fixture(scope="module")
def real_pairs(tmp_path_factory):
    cache = tmp_path_factory.mktemp("shipped_scans")
    template = read(shipped_file(*MNI_T1, cache))
    anatomical = read(shipped_file(*NIBABEL_ANATOMICAL, cache))
    template_3mm = mr_case(resampled(template, 3.0))
    cases = {
        "mni_3mm": template_3mm,
        "mni_1.5mm": mr_case(resampled(template, 1.5)),
        "mni_crop": (template_3mm[0][template_3mm[0].shape[0] * 2 // 5:], template_3mm[1]),  # upper 60% in z
        "anat_2mm": mr_case(anatomical),
        "anat_4mm": mr_case(resampled(anatomical, 4.0)),
        "anat_moved": mr_case(read(shipped_file(*NIBABEL_MOVED, cache))),  # moved, x flipped, 4 mm
    }
    return compared_pairs(cases, GRID)


def _patient(case_id: str) -> str:
    return case_id.split("_")[0]


def test_scans_of_one_patient_rank_closest(real_pairs):
    ids, results = real_pairs
    mse = {**{pair: r.values["mse"] for pair, r in results.items()},
           **{(b, a): r.values["mse"] for (a, b), r in results.items()}}
    for case_id in ids:
        nearest = min((o for o in ids if o != case_id), key=lambda o: mse[case_id, o])
        assert _patient(nearest) == _patient(case_id), (case_id, nearest)
    # the same brain at 3 mm and 1.5 mm, and its crop, are far closer than the other patient
    assert mse["mni_1.5mm", "mni_3mm"] < 0.2 * min(mse["mni_3mm", o] for o in ids if o.startswith("anat"))


def test_real_pairs_say_how_their_registration_went(real_pairs):
    ids, results = real_pairs
    assert_summary_counts_the_records(ids, results, 15)
    for pair, result in results.items():
        assert result.message.startswith(f"kept {result.stage_kept}"), pair
    # the crop of the template is registered to the template it was cut from
    crop = results["mni_3mm", "mni_crop"]
    assert crop.registration_ok and crop.values["mse"] < 0.05, crop.message
