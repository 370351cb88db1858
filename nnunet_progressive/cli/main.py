"""`nnprog`: the command-line home of nnunet-progressive's tools.

Each subcommand lives in its own module under ``nnunet_progressive.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to the callable that runs it. Subcommands raise
the package's errors (``core/errors.py``); :func:`main` is the one place that turns them into one line on stderr
and an exit code (2 for a user error, 1 for a failed nnU-Net command).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from nnunet_progressive import __version__

# Modules are imported lazily by name so that a subcommand with a heavy or optional dependency
# never breaks `nnprog --help` or the other subcommands.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "nnunet_progressive.cli.env",
    "nnunet_progressive.cli.pgps",
    "nnunet_progressive.cli.demo",
    "nnunet_progressive.cli.pdl",
    "nnunet_progressive.cli.datasets",
    "nnunet_progressive.cli.benchmark",
    "nnunet_progressive.cli.stopping",
    "nnunet_progressive.cli.transfer",
    "nnunet_progressive.cli.verify",
    "nnunet_progressive.cli.check_dataset",
    "nnunet_progressive.cli.trainers",
    "nnunet_progressive.cli.predict",
    "nnunet_progressive.cli.profile",
)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse with the package's error style: one line on stderr (the usage is one ``--help`` away), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="nnprog",
        description="nnunet-progressive: progressive training strategies for nnU-Net v2.",
    )
    parser.add_argument("--version", action="version", version=f"nnunet-progressive {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue  # subcommand not shipped in this version
            raise
        module.register(subparsers)
    return parser


def fail(command: str | None, message: str, exit_code: int = 2) -> int:
    """The one way ``nnprog`` reports an error: one message on stderr; returns the exit code (2: a user error)."""
    print(f"nnprog{' ' + command if command else ''}: error: {message}", file=sys.stderr)
    return exit_code


def main(argv: list[str] | None = None) -> int:
    from nnunet_progressive.core.errors import NnprogError

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "passes_through", False):  # only `nnprog predict` hands arguments on
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.passed_through = unknown
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except NnprogError as error:  # the one mapping of the package's errors (core/errors.py) to stderr and exit code
        return fail(args.command, str(error), error.exit_code)
    except BrokenPipeError:  # the reader went away (`nnprog knobs | head`): stop quietly, as other tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback (128 + SIGINT, as a shell reports it)
        print(f"nnprog{' ' + args.command if args.command else ''}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
