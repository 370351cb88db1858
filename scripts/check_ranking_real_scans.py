"""The ranking's pair comparison on real MR scans shipped in wheels (tests/real_scans.py), by hand.

The test set of tests/test_pdl_ranking_real_images.py (nilearn's MNI152 T1 at 3 mm, 1.5 mm and a crop; nibabel's
anatomical.nii at 2 mm and 4 mm and its moved, x-flipped copy), plus with --epi a scan kept out of the tests (the
first volume of nibabel's example4d.nii.gz, EPI of another subject). With --pyradiomics instead the real CT and MR
set of tests/test_pdl_ranking_real_ct_mr.py (pyradiomics' lung CT and brain MR of two patients each, with crops and
spacings; fetched once into --cache, by default the tests' cache .pytest_cache/d/real_scans) plus what the tests keep
out: breast1 (a breast MR crop around its lesion, 30 x 80 x 44 mm) and lung2 at 3 mm. Prints every pair's
registration outcome, MSE and SSIM, each scan's nearest scan by MSE and by SSIM and the seconds per pair. Runs
against whichever nnunet_progressive is importable.
Usage: python scripts/check_ranking_real_scans.py [--grid 40] [--epi | --pyradiomics] [--cache DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from real_scans import (  # noqa: E402
    CT_SCANS,
    MNI_T1,
    NIBABEL_ANATOMICAL,
    NIBABEL_MOVED,
    ct_case,
    ct_foreground_statistics,
    mixed_ct_mr_cases,
    mr_case,
    pyradiomics_scan,
    read,
    resampled,
    shipped_file,
)

from nnunet_progressive.pdl.similarity import compare  # noqa: E402


def mr_cases(cache: Path, epi: bool) -> dict[str, tuple[np.ndarray, tuple[float, ...]]]:
    template, anatomical = read(shipped_file(*MNI_T1, cache)), read(shipped_file(*NIBABEL_ANATOMICAL, cache))
    template_3mm = mr_case(resampled(template, 3.0))
    cases = {"mni_3mm": template_3mm, "mni_1.5mm": mr_case(resampled(template, 1.5)),
             "mni_crop": (template_3mm[0][template_3mm[0].shape[0] * 2 // 5:], template_3mm[1]),
             "anat_2mm": mr_case(anatomical), "anat_4mm": mr_case(resampled(anatomical, 4.0)),
             "anat_moved": mr_case(read(shipped_file(*NIBABEL_MOVED, cache)))}
    if epi:
        first = read(shipped_file("nibabel", "tests/data/example4d.nii.gz", cache))[:, :, :, 0]
        cases["epi"] = mr_case(first)
    return cases


def ct_mr_cases(cache: Path) -> dict[str, tuple[np.ndarray, tuple[float, ...]]]:
    """The tests' mixed set, with breast1 and lung2 at 3 mm (kept out of the tests)."""
    cases = mixed_ct_mr_cases(cache)
    statistics = ct_foreground_statistics([tuple(read(p) for p in pyradiomics_scan(n, cache)) for n in CT_SCANS])
    cases["lung2_3mm"] = ct_case(resampled(read(pyradiomics_scan("lung2", cache)[0]), 3.0), statistics)
    cases["breast1"] = mr_case(read(pyradiomics_scan("breast1", cache)[0]))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=40)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--epi", action="store_true")
    group.add_argument("--pyradiomics", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parents[1] / ".pytest_cache" / "d"
                        / "real_scans")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    cases = ct_mr_cases(args.cache) if args.pyradiomics else mr_cases(args.cache, args.epi)
    ids = sorted(cases)
    grid_shape, grid_spacing = compare.common_grid([cases[c][0].shape for c in ids], [cases[c][1] for c in ids],
                                                   args.grid)
    thumbs = {c: compare.make_thumbnail(cases[c][0][None], cases[c][1], grid_shape, grid_spacing) for c in ids}
    ranges = compare.channel_data_ranges([thumbs[c].image for c in ids])
    mse, ssim, seconds = {}, {}, []
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            clock = time.perf_counter()
            result = compare.compare_pair(thumbs[a], thumbs[b], grid_spacing, ranges)
            seconds.append(time.perf_counter() - clock)
            mse[a, b] = mse[b, a] = result.values["mse"]
            ssim[a, b] = ssim[b, a] = result.values["ssim"]
            status = getattr(result, "status", "ok" if result.registration_ok else "not registered")
            print(f"{a} vs {b}: {status}, {result.message}; MSE {result.values['mse']:.3f}, "
                  f"SSIM {result.values['ssim']:.3f}", flush=True)
    for case_id in ids:
        others = [o for o in ids if o != case_id]
        print(f"{case_id}: nearest by MSE {min(others, key=lambda o: mse[case_id, o])}, "
              f"by SSIM {max(others, key=lambda o: ssim[case_id, o])}")
    print(f"grid {grid_shape}: {np.mean(seconds):.2f} s per pair")


if __name__ == "__main__":
    main()
