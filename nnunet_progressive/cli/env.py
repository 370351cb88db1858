"""`nnprog env`: print the line that lets nnU-Net find the trainers (use: eval "$(nnprog env)")."""
from __future__ import annotations

import argparse

from nnunet_progressive.nnunet.orchestration.discovery import export_lines, trainers_directory


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "env",
        help="print the export lines that let nnUNetv2_train/_predict find the trainers",
        description='Prints `export nnUNet_extTrainer=...` and, where torchvision cannot load its operators (a CPU '
        'torch beside a CUDA torchvision), a second line that puts a small start-up hook on PYTHONPATH; run  '
        'eval "$(nnprog env)"  in your shell (or add it to ~/.bashrc).',
    )
    parser.add_argument("--path", action="store_true", help="print only the trainers folder")
    parser.set_defaults(func=run)
    knobs = subparsers.add_parser(
        "knobs", help="list the NNPROG_* knobs (type, default, which trainers read them)",
        description="The knob table of nnunet-progressive: every NNPROG_* environment variable, its meaning, "
        "default and the trainers that read it. A knob set for a trainer that does not read it is an error.")
    knobs.add_argument("--markdown", action="store_true", help="print the table as markdown (the README's copy)")
    knobs.set_defaults(func=run_knobs)


def run_knobs(args: argparse.Namespace) -> int:
    from nnunet_progressive.core.knobs import env_variable_help, readme_table

    print(readme_table() if args.markdown else env_variable_help())
    return 0


def run(args: argparse.Namespace) -> int:
    print(trainers_directory() if args.path else export_lines())
    return 0
