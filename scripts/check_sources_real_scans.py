"""`nnprog transfer sources` on real scans, by hand: the lung CT tumour target of
tests/test_transfer_sources_real_scans.py (pyradiomics' lung1) against candidates built the same way, by default the
tests' CT tumour source (lung2) and what the tests keep out: a breast MR lesion source (pyradiomics' breast1 whole,
mirrored and cropped, 1 x 1 x 2.1 mm). Writes the raw datasets under WORKDIR (new nnUNet_raw/_preprocessed/_results
there), runs the command with nnprog's environment and prints its table; the JSON is WORKDIR/sources.json. Scans are
fetched once into --cache (the tests' cache by default). Needs nnU-Net's commands on PATH (the venv's bin).
Usage: python scripts/check_sources_real_scans.py WORKDIR [--candidates "lung2 tumour CT" "breast lesion MR" ...]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from real_scans import REAL_SOURCE_DATASETS, write_real_source_dataset  # noqa: E402

from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders, run_environment  # noqa: E402

TARGET_KIND, TARGET_ID = "lung1 tumour CT", 641


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    candidates = [kind for kind in REAL_SOURCE_DATASETS if kind != TARGET_KIND]
    parser.add_argument("--candidates", nargs="+", choices=candidates, default=["lung2 tumour CT", "breast lesion MR"])
    parser.add_argument("--grid", default="32")
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parents[1] / ".pytest_cache" / "d"
                        / "real_scans")
    args = parser.parse_args()
    if args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"{args.workdir} is not empty; give a new or empty folder")
    args.cache.mkdir(parents=True, exist_ok=True)
    folders = NnunetFolders.under(args.workdir)
    write_real_source_dataset(TARGET_KIND, folders.raw, TARGET_ID, args.cache)
    ids = [str(TARGET_ID + 1 + candidates.index(kind)) for kind in args.candidates]
    for kind, dataset_id in zip(args.candidates, ids, strict=True):
        write_real_source_dataset(kind, folders.raw, int(dataset_id), args.cache)
    command = [sys.executable, "-m", "nnunet_progressive.cli.main", "transfer", "sources", "--target", str(TARGET_ID),
               "--candidates", *ids, "--grid", args.grid, "-o", str(args.workdir / "sources.json")]
    result = subprocess.run(command, capture_output=True, text=True, env=run_environment(folders))
    print(result.stdout[result.stdout.find("target:"):] if "target:" in result.stdout else result.stdout)
    if result.returncode != 0:
        sys.exit(f"nnprog transfer sources failed (exit {result.returncode}): {result.stderr[-2000:]}")


if __name__ == "__main__":
    main()
