"""The ranking's registration on generated scans (issue 23): a crop of a larger scan, a flipped direction, 3 mm vs
1.5 mm, 2D; every pair's record says what was kept and why, and the summary counts equal the records'."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ranking_phantoms import registration_cases

from nnunet_progressive.pdl.similarity import compare, registration

GRID = 40  # small enough for a quick test, large enough for two registration levels


def _thumbnails(ndim: int):
    cases = registration_cases()
    ids = sorted(cases)
    shapes = [cases[c][0].shape[3 - ndim:] for c in ids]
    spacings = [cases[c][1][3 - ndim:] for c in ids]
    grid_shape, grid_spacing = compare.common_grid(shapes, spacings, GRID)
    thumbs = {}
    for case_id, (image, spacing) in cases.items():
        data = image[None] if ndim == 3 else image[None, image.shape[0] // 2]
        thumbs[case_id] = compare.make_thumbnail(data, spacing[3 - ndim:], grid_shape, grid_spacing)
    ranges = compare.channel_data_ranges([thumbs[c].image for c in ids])
    results = {(a, b): compare.compare_pair(thumbs[a], thumbs[b], grid_spacing, ranges)
               for i, a in enumerate(ids) for b in ids[i + 1:]}
    return thumbs, grid_spacing, ranges, results


@pytest.fixture(scope="module")
def pairs_3d():
    return _thumbnails(3)


@pytest.fixture(scope="module")
def pairs_2d():
    return _thumbnails(2)


def _mse(results, a, b):
    return results[(a, b) if (a, b) in results else (b, a)].values["mse"]


def _closest(results, case_id):
    others = {o for pair in results for o in pair} - {case_id}
    return min(others, key=lambda other: _mse(results, case_id, other))


def test_a_crop_of_a_larger_scan_is_registered_and_compared_where_it_holds_data(pairs_3d):
    thumbs, grid_spacing, ranges, results = pairs_3d
    assert thumbs["p1_crop"].field is not None and not thumbs["p1_crop"].field.all(), "the crop covers part of the grid"
    assert thumbs["p1_full"].field is None
    crop = results["p1_crop", "p1_full"]
    assert crop.registration_ok and crop.status in ("registered", "partial"), crop.message
    assert crop.stage_kept in ("rigid", "affine") and crop.message.startswith(f"kept {crop.stage_kept}")
    # the same patient, cropped, is closer than the other patient's full scan
    assert crop.values["mse"] < _mse(results, "p1_full", "p2_full")
    assert crop.values["mse"] < _mse(results, "p1_crop", "p2_full")
    # without its field of view the crop's fill would be compared against the larger scan's body
    no_field = compare.Thumbnail(thumbs["p1_crop"].image, thumbs["p1_crop"].body)
    blind = compare.compare_pair(thumbs["p1_full"], no_field, grid_spacing, ranges)
    assert blind.values["mse"] > 2 * crop.values["mse"]


def test_scans_at_3_mm_and_1_5_mm_of_one_patient_are_closest(pairs_3d):
    _, _, _, results = pairs_3d
    fine = results["p1_fine", "p1_full"]
    assert fine.registration_ok and fine.status in ("registered", "partial", "start")
    for case_id in ("p1_full", "p1_fine", "p2_full", "p2_fine"):
        patient = case_id.split("_")[0]
        assert _closest(results, case_id).split("_")[0] == patient


@pytest.mark.parametrize("pairs", ["pairs_3d", "pairs_2d"])
def test_every_record_says_what_was_kept_and_why(pairs, request):
    _, _, _, results = request.getfixturevalue(pairs)
    for pair, result in results.items():
        record = result.record()
        assert record["status"] in registration.REGISTRATION_STATUSES
        assert record["registration_ok"] == registration.registration_ok(record["status"])
        assert record["message"].startswith(f"kept {record['stage_kept']}"), (pair, record)
        assert set(record["values"]) == {"mse", "psnr", "ssim", "uqi"}
        for reason in record["discarded"]:
            assert reason in record["message"] and reason.split()[0] in ("rigid", "affine")
        if record["stage_kept"] == registration.CENTRED_START:
            assert record["status"] == "start" and not record["registration_ok"]
        elif record["stage_kept"] in registration.STARTS:  # a translation from the images' geometry
            assert record["status"] == "partial" and record["registration_ok"]


def test_a_flipped_direction_ends_at_its_start_and_says_so(pairs_3d, pairs_2d):
    """A mirrored scan cannot be undone by a rigid or affine transform of positive determinant: the pair ends at a
    start, is recorded as not registered and is counted so."""
    for _, _, _, results in (pairs_3d, pairs_2d):
        flipped = results["p1_flipped", "p1_full"]
        assert flipped.status == "start" and not flipped.registration_ok, flipped.message
        assert flipped.stage_kept == registration.CENTRED_START
        summary = compare.summarise(["p1_flipped", "p1_full"], {("p1_flipped", "p1_full"): flipped}, "pairwise", None)
        assert summary["registration_summary"]["by_status"]["start"] == 1
        assert summary["failures"] == [{"fixed": "p1_flipped", "moving": "p1_full", "status": "start",
                                        "message": flipped.message}]


def test_2d_slices_of_one_patient_are_closest(pairs_2d):
    _, _, _, results = pairs_2d
    assert results["p1_crop", "p1_full"].registration_ok
    for case_id in ("p1_full", "p1_fine", "p2_full"):
        assert _closest(results, case_id).split("_")[0] == case_id.split("_")[0]


@pytest.mark.parametrize("pairs", ["pairs_3d", "pairs_2d"])
def test_the_summary_counts_equal_the_records(pairs, request):
    _, _, _, results = request.getfixturevalue(pairs)
    ids = sorted({c for pair in results for c in pair})
    summary = compare.summarise(ids, results, "pairwise", None)
    records = summary["pairs"]
    assert len(records) == len(results) == summary["registration_summary"]["pairs"]
    counts = summary["registration_summary"]
    assert counts["by_status"] == {s: sum(r["status"] == s for r in records)
                                   for s in registration.REGISTRATION_STATUSES}
    assert counts["registered"] == sum(r["registration_ok"] for r in records)
    assert counts["not_registered"] == len(summary["failures"]) == sum(not r["registration_ok"] for r in records)
    assert counts["kept"] == dict(Counter(r["stage_kept"] for r in records))
    assert counts["affine_discarded"] == sum(any(d.startswith("affine") for d in r["discarded"]) for r in records)
    assert counts["by_status"]["start"] >= 1, "the flipped pairs are in the set"


def _ball(shape, radius):
    grid = np.indices(shape)
    centre = [(n - 1) / 2 for n in shape]
    return (sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius ** 2).astype(np.float32)


def test_statuses_of_a_discarded_affine():
    """A large ball against a small one: the affine stage degenerates. The pair keeps the rigid result (partial) or
    a start; with the affine stage alone the best start is the answer (here the centred one: "start", not
    registered)."""
    fixed, moving = _ball((32, 32, 32), 12), _ball((32, 32, 32), 3)
    kept = registration.register(fixed, moving, (1.0, 1.0, 1.0), "rigid_affine")
    assert any(d.startswith("affine discarded: degenerate") for d in kept.discarded)
    assert kept.status == ("start" if kept.stage_kept == "centred start" else "partial"), kept.message
    alone = registration.register(fixed, moving, (1.0, 1.0, 1.0), "affine")
    assert alone.status == "start" and alone.stage_kept == "centred start", alone.message
    assert not registration.registration_ok(alone.status) and "affine discarded: degenerate" in alone.message
    off = registration.register(fixed, moving, (1.0, 1.0, 1.0), "none")
    assert off.status == "off" and off.stage_kept == "none" and registration.registration_ok("off")
    assert registration.outcome_status("affine", []) == "registered"
    assert registration.outcome_status("rigid", ["affine discarded: degenerate transform"]) == "partial"
    assert registration.outcome_status("centred start", ["affine failed: x"]) == "start"
    assert registration.outcome_status("centre-of-mass start", []) == "partial"
    with pytest.raises(ValueError, match="Unknown registration status"):
        registration.registration_ok("fine")


def test_the_centre_of_mass_start_aligns_shifted_anatomy():
    """A body off the centre of its field of view: the centre-of-mass start puts it on the other; the
    translation search does the same for a crop, whose centre of mass is the crop's own centre."""
    fixed = np.zeros((32, 32, 32), np.float32)
    fixed[8:20, 10:22, 6:18] = 1.0
    moving = np.roll(fixed, (6, -4, 8), axis=(0, 1, 2))
    shift = registration._centre_of_mass(moving, (2.0, 1.0, 1.0)) - registration._centre_of_mass(fixed,
                                                                                                  (2.0, 1.0, 1.0))
    assert shift == pytest.approx([8.0, -4.0, 12.0])  # x, y, z in mm
    searched = registration._searched_shift(fixed, moving, (2.0, 1.0, 1.0), (None, None))
    assert searched == pytest.approx([8.0, -4.0, 12.0])
    result = registration.register(fixed, moving, (2.0, 1.0, 1.0), "rigid")
    assert registration.registration_ok(result.status), result.message
    assert float(np.mean((fixed - result.moved) ** 2)) < 0.01


def test_a_simpleitk_failure_is_recorded_with_itks_reason():
    """pyradiomics' breast1 (a 30 x 80 x 44 mm crop) against a chest CT on a 64^3 grid: no metric sample in its
    field; the record keeps ITK's reason, not the header path it was thrown in."""
    thrown = RuntimeError(
        "Exception thrown in SimpleITK ImageRegistrationMethod_Execute: /tmp/SimpleITK-build/ITK-prefix/include/"
        "ITK-5.4/itkImageToImageMetricv4.hxx:263:\nITK ERROR: MeanSquaresImageToImageMetricv4(0x562a6c7a48e0): "
        "VirtualSampledPointSet must have 1 or more points.")
    assert registration.error_text(thrown) == ("MeanSquaresImageToImageMetricv4: VirtualSampledPointSet must have 1 "
                                               "or more points.")
    assert registration.error_text(RuntimeError("no  valid\npoints"), 8) == "no valid"
