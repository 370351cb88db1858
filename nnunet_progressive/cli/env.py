"""`nnprog env`: print the line that lets nnU-Net find the trainers (use: eval "$(nnprog env)")."""
from __future__ import annotations

import argparse

from nnunet_progressive.nnunet.discovery import export_lines, trainers_directory


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "env",
        help="print `export nnUNet_extTrainer=...` so nnUNetv2_train/_predict find the trainers",
        description='Prints the export line; run  eval "$(nnprog env)"  in your shell (or add it to ~/.bashrc).',
    )
    parser.add_argument("--path", action="store_true", help="print only the trainers folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(trainers_directory() if args.path else export_lines())
    return 0
