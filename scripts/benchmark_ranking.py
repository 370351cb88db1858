"""Registration outcomes, quality and cost of the PDL ranking's pair comparison on generated CT-like scans.

Cases (tests/ranking_phantoms.py): two patients, each as a full scan at 3 mm, a crop of it, the full scan at 1.5 mm
and mirrored in x (a flipped direction); a copy of patient 1 with its intensities scaled and shifted (a changed
normalisation); a small third patient. Every pair is compared as `nnprog rank` does (the common grid, at most 64
voxels per axis; rigid then affine; body region), in 3D and on the middle slices (2D). Prints per dimension the
count of each outcome (stage kept, affine discarded, ended at the start), how many scans have a scan of the same
patient as their nearest neighbour by MSE, and the seconds per pair. Runs against whichever nnunet_progressive is
importable (set PYTHONPATH to another checkout to measure it "before"). Usage:
    python scripts/benchmark_ranking.py [--grid 64] [--dims 3,2]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ranking_phantoms import benchmark_cases  # noqa: E402

from nnunet_progressive.pdl.similarity import compare  # noqa: E402


def _patient(case_id: str) -> str:
    return case_id.split("_")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=64)
    parser.add_argument("--dims", default="3,2")
    args = parser.parse_args()
    print(f"nnunet_progressive from {Path(compare.__file__).parents[2]}", flush=True)
    cases = benchmark_cases()
    ids = sorted(cases)
    for ndim in (int(d) for d in args.dims.split(",")):
        shapes = [cases[c][0].shape if ndim == 3 else cases[c][0].shape[1:] for c in ids]
        spacings = [cases[c][1] if ndim == 3 else cases[c][1][1:] for c in ids]
        grid_shape, grid_spacing = compare.common_grid(shapes, spacings, args.grid)
        thumbs = {}
        for c, (image, spacing) in cases.items():
            data = image[None] if ndim == 3 else image[None, image.shape[0] // 2]
            thumbs[c] = compare.make_thumbnail(data, spacing if ndim == 3 else spacing[1:], grid_shape, grid_spacing)
        ranges = compare.channel_data_ranges([thumbs[c].image for c in ids])
        pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
        outcomes, seconds, mse = Counter(), [], {}
        for fixed, moving in pairs:
            clock = time.perf_counter()
            result = compare.compare_pair(thumbs[fixed], thumbs[moving], grid_spacing, ranges)
            seconds.append(time.perf_counter() - clock)
            kept = result.message.split(" (")[0]
            outcomes[kept + (", affine discarded" if "affine discarded" in result.message else "")] += 1
            outcomes["registration_ok false"] += not result.registration_ok
            mse[fixed, moving] = mse[moving, fixed] = result.values["mse"]
        same = [c for c in ids if c not in ("p3_small",)
                and _patient(min((o for o in ids if o != c), key=lambda o: mse[c, o])) == _patient(c)]
        print(f"{ndim}D grid {grid_shape}: {len(pairs)} pairs, outcomes {dict(sorted(outcomes.items()))}; nearest "
              f"neighbour by MSE of the same patient for {len(same)} of {len(ids) - 1} scans; "
              f"{np.mean(seconds):.2f} s per pair (median {np.median(seconds):.2f})", flush=True)


if __name__ == "__main__":
    main()
