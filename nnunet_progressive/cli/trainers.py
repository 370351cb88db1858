"""`nnprog trainers`: every trainer of the package with what it changes (from the trainer catalogue, no torch)."""
from __future__ import annotations

import argparse

from nnunet_progressive.nnunet.catalogue import METHODS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trainers",
        help="list the trainers of nnunet-progressive and what each changes",
        description="Lists every trainer nnUNetv2_train -tr accepts from nnunet-progressive: its name, its default "
        "epochs and what it changes against nnU-Net's nnUNetTrainer.",
    )
    parser.add_argument("--method", choices=tuple(METHODS), default=None, help="only the trainers of one method")
    parser.add_argument("--markdown", action="store_true", help="markdown tables (the README's trainer table)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunet_progressive.nnunet.catalogue import trainers_markdown, trainers_text

    print(trainers_markdown(args.method) if args.markdown else trainers_text(args.method), end="" if args.markdown
          else "\n")
    return 0
