"""Range-checked numbers for ``nnprog`` options: every numeric option uses one of these as its argparse ``type``.

A bad value is an argparse error naming the option and the range (``--grid: expected an integer >= 16, got 0``);
tests/test_cli_errors.py walks every subcommand and fails on a numeric option without a range.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class NumberRange:
    """An argparse ``type``: parses an int (or float) and checks ``minimum <= value <= maximum``.

    ``open_minimum`` makes the lower bound exclusive (``> 0`` for a float)."""

    kind: type
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False

    @property
    def __name__(self) -> str:  # argparse names the type in its "invalid ... value" message
        return "integer" if self.kind is int else "number"

    def rule(self) -> str:
        """The range in words: ``an integer >= 1``, ``a number in [0, 1]``."""
        noun = "an integer" if self.kind is int else "a number"
        low = "(" if self.open_minimum else "["
        if self.minimum is not None and self.maximum is not None:
            return f"{noun} in {low}{_text(self.minimum)}, {_text(self.maximum)}]"
        if self.minimum is not None:
            return f"{noun} {'>' if self.open_minimum else '>='} {_text(self.minimum)}"
        if self.maximum is not None:
            return f"{noun} <= {_text(self.maximum)}"
        return noun

    def __call__(self, text: str) -> int | float:
        try:
            value = self.kind(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.rule()}, got {text}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {self.rule()}, got {text}")
        too_low = self.minimum is not None and (value <= self.minimum if self.open_minimum else value < self.minimum)
        too_high = self.maximum is not None and value > self.maximum
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"expected {self.rule()}, got {text}")
        return value


def _text(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def int_at_least(minimum: int, maximum: int | None = None) -> NumberRange:
    """An integer option with a lower (and optional upper) bound."""
    return NumberRange(int, minimum, maximum)


positive_int = int_at_least(1)
"""A count: processes, epochs, cases."""

random_seed = int_at_least(0, 2**32 - 1)
"""A random seed (numpy's range)."""

fraction = NumberRange(float, 0.0, 1.0)
"""A share in [0, 1]."""

positive_seconds = NumberRange(float, 0.0, None, open_minimum=True)
"""A duration in seconds, > 0."""


def add_planned_trainer_arguments(parser: argparse.ArgumentParser) -> None:
    """``-d -c -p -tr``: a planned dataset's configuration and the PGPS trainer that would train it (the options of
    ``nnUNetv2_train`` that choose the schedule, under the same names)."""
    parser.add_argument("-d", "--dataset", required=True, help="dataset name or id (e.g. 4 or Dataset004_Hippocampus)")
    parser.add_argument("-c", "--configuration", required=True, help="e.g. 3d_fullres or 2d")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-tr", "--trainer", default="nnUNetTrainer_PGPS_Efficiency", help="trainer class name")
