#!/usr/bin/env python3
"""PDL benchmark: conventional training vs PDL vs its controls, time to validation Dice, side by side.

Generates a synthetic dataset, ranks it (`nnprog rank`), trains nnUNetTrainer_StopAtDice (conventional),
nnUNetTrainer_PDL, nnUNetTrainer_PDL_Random and nnUNetTrainer_PDL_SimilarFirst with the same epochs,
iterations and sliding-window Dice checks (no target: every run goes to the last epoch, so the time to
every threshold is known), then `nnprog compare` writes the time-to-Dice table, CSV and plot into
<workspace>/benchmark_pdl.{md,csv,png}.

    python scripts/benchmark_pdl.py --workspace benchmark_runs/pdl --epochs 16 --iterations 12
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from nnunet_progressive.datasets.prepare import SMALL_PLANS, prepare_generated_dataset
from nnunet_progressive.nnunet.discovery import find_trainer_class
from nnunet_progressive.nnunet.run_state import knobs_for_trainer
from nnunet_progressive.nnunet.runner import NnunetFolders, TrainingRun, run_environment, train

TRAINERS = ("nnUNetTrainer_StopAtDice", "nnUNetTrainer_PDL", "nnUNetTrainer_PDL_Random",
            "nnUNetTrainer_PDL_SimilarFirst")
DATASET_ID = 992


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", default="benchmark_runs/pdl")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--set1-epochs", type=int, default=4)
    parser.add_argument("--check-every", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args(argv)
    workspace = Path(args.workspace).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    folders = NnunetFolders.under(workspace)
    log = workspace / "benchmark.log"
    dataset_name = prepare_generated_dataset(args.preset, DATASET_ID, folders, log_file=log)
    start = time.perf_counter()
    subprocess.run(["nnprog", "rank", "-d", str(DATASET_ID), "-c", "3d_fullres", "-p", SMALL_PLANS],
                   env=run_environment(folders), check=True, stdout=subprocess.DEVNULL)
    rank_seconds = time.perf_counter() - start
    knobs = {"NNPROG_EPOCHS": str(args.epochs), "NNPROG_ITERATIONS": str(args.iterations),
             "NNPROG_VAL_ITERATIONS": "2", "NNPROG_SET1_EPOCHS": str(args.set1_epochs),
             "NNPROG_CHECK_EVERY": str(args.check_every), "NNPROG_DICE_METHOD": "sliding_window"}
    fold_folders = []
    for trainer in tqdm(TRAINERS, desc="trainers", unit="run"):
        # one knob set for all trainers: each gets the knobs it reads (trainers refuse knobs they do not read)
        trainer_knobs = knobs_for_trainer(find_trainer_class(trainer), knobs)
        run = TrainingRun(str(DATASET_ID), "3d_fullres", 0, trainer, SMALL_PLANS, device=args.device,
                          knobs=trainer_knobs)
        fold = run.output_folder(folders, dataset_name)
        if fold.exists():
            shutil.rmtree(fold)
        train(run, folders, log)
        fold_folders.append(str(fold))
    labels = ",".join(t.replace("nnUNetTrainer_", "") for t in TRAINERS)
    subprocess.run(["nnprog", "compare", *fold_folders, "--labels", labels, "-o", str(workspace / "benchmark_pdl")],
                   check=True)
    command = "python scripts/benchmark_pdl.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"\nCommand: `{command.strip()}`\nRanking ({dataset_name}, nnprog rank): {rank_seconds:.0f} s")
    print((workspace / "benchmark_pdl.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
