"""`nnprog demo`: constant patch vs PGPS Efficiency on generated data, on a CPU, in a few minutes."""
from __future__ import annotations

import argparse

from nnunet_progressive.cli.arguments import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    from nnunet_progressive.benchmark.demo import default_budget

    epochs, iterations = default_budget()
    parser = subparsers.add_parser(
        "demo",
        help="train constant-patch nnU-Net and PGPS Efficiency on generated data and compare them",
        description="Generates a small dataset, plans and preprocesses it with nnU-Net, trains "
        "nnUNetTrainer_ConstantPatch and nnUNetTrainer_PGPS_Efficiency with the same budget on the CPU (a short "
        "benchmark: the runner of `nnprog benchmark run`, with a bar of epochs per training), and writes "
        "demo_results.md and demo_results.png into the workspace. Runs finished by an earlier demo with the same "
        "budget are reused.",
    )
    parser.add_argument("--workspace", default="nnprog_demo", help="folder for data, results and the report")
    parser.add_argument("--epochs", type=positive_int, default=epochs, help=f"epochs per trainer (default {epochs})")
    parser.add_argument("--iterations", type=positive_int, default=iterations,
                        help=f"training iterations per epoch (default {iterations})")
    parser.add_argument("--preset", default="demo", help="generated dataset (a synthetic preset or mni152; "
                        "default demo)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnunet_progressive.benchmark.demo import run_demo, speedup_text
    from nnunet_progressive.core.io import check_writable_folder

    check_writable_folder(args.workspace, "--workspace")  # before anything is generated or trained
    results = run_demo(args.workspace, args.epochs, args.iterations, args.preset)  # a failed training: exit 1
    report = Path(args.workspace) / "demo_results.md"
    print(report.read_text())
    print(speedup_text(results))
    print(f"Report: {report}\nPlot:   {Path(args.workspace) / 'demo_results.png'}")
    return 0
