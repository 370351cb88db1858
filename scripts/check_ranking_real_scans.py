"""The ranking's pair comparison on real MR scans shipped in wheels (tests/real_scans.py), by hand.

The test set of tests/test_pdl_ranking_real_images.py (nilearn's MNI152 T1 at 3 mm, 1.5 mm and a crop; nibabel's
anatomical.nii at 2 mm and 4 mm and its moved, x-flipped copy), plus with --epi a scan kept out of the tests (the
first volume of nibabel's example4d.nii.gz, EPI of another subject). Prints every pair's registration outcome, MSE
and SSIM, each scan's nearest scan by MSE and the seconds per pair. Runs against whichever nnunet_progressive is
importable. Usage: python scripts/check_ranking_real_scans.py [--grid 40] [--epi]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from real_scans import MNI_T1, NIBABEL_ANATOMICAL, NIBABEL_MOVED, mr_case, read, resampled, shipped_file  # noqa: E402

from nnunet_progressive.pdl.similarity import compare  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=40)
    parser.add_argument("--epi", action="store_true")
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp())
    template, anatomical = read(shipped_file(*MNI_T1, cache)), read(shipped_file(*NIBABEL_ANATOMICAL, cache))
    template_3mm = mr_case(resampled(template, 3.0))
    cases = {"mni_3mm": template_3mm, "mni_1.5mm": mr_case(resampled(template, 1.5)),
             "mni_crop": (template_3mm[0][template_3mm[0].shape[0] * 2 // 5:], template_3mm[1]),
             "anat_2mm": mr_case(anatomical), "anat_4mm": mr_case(resampled(anatomical, 4.0)),
             "anat_moved": mr_case(read(shipped_file(*NIBABEL_MOVED, cache)))}
    if args.epi:
        epi = read(shipped_file("nibabel", "tests/data/example4d.nii.gz", cache))
        first = epi[:, :, :, 0]
        cases["epi"] = mr_case(first)
    ids = sorted(cases)
    grid_shape, grid_spacing = compare.common_grid([cases[c][0].shape for c in ids], [cases[c][1] for c in ids],
                                                   args.grid)
    thumbs = {c: compare.make_thumbnail(cases[c][0][None], cases[c][1], grid_shape, grid_spacing) for c in ids}
    ranges = compare.channel_data_ranges([thumbs[c].image for c in ids])
    mse, seconds = {}, []
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            clock = time.perf_counter()
            result = compare.compare_pair(thumbs[a], thumbs[b], grid_spacing, ranges)
            seconds.append(time.perf_counter() - clock)
            mse[a, b] = mse[b, a] = result.values["mse"]
            status = getattr(result, "status", "ok" if result.registration_ok else "not registered")
            print(f"{a} vs {b}: {status}, {result.message}; MSE {result.values['mse']:.3f}, "
                  f"SSIM {result.values['ssim']:.3f}", flush=True)
    for case_id in ids:
        print(f"{case_id}: nearest by MSE {min((o for o in ids if o != case_id), key=lambda o: mse[case_id, o])}")
    print(f"grid {grid_shape}: {np.mean(seconds):.2f} s per pair")


if __name__ == "__main__":
    main()
