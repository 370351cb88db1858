"""Time to Dice: how long each run trained before its validation Dice first reached a threshold.

This is the comparison of Progressive DL (Choi et al., Med Phys 2023): for each Dice threshold, the training
time of every run and its ratio to a reference run. Input is the ``checks`` list of ``time_to_dice.json``
(written into the fold folder by the ``*_StopAtDice`` and PDL trainers)::

    {"trainer": str, "target_dice": float | null, "check_every": int,
     "method": "sliding_window" | "pseudo_dice",
     "checks": [{"epoch": int, "train_wall_seconds": float, "check_seconds": float, "dice": float,
                 "dice_per_class": [float, ...], "stage": str}, ...],
     "reached": {"epoch": int, "train_wall_seconds": float, "dice": float} | null,
     "stopped_by": "target" | "max_epochs" | null}

``train_wall_seconds`` is the cumulative training wall time at the end of that epoch, without the time spent
in the Dice checks themselves. Times here are always that number, in seconds.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.tables import csv_text, markdown_table, time_unit

Check = Mapping[str, Any]
NOT_REACHED = "not reached"


@dataclass(frozen=True)
class TimeToDiceRow:
    """One threshold: seconds each run needed (``None``: never reached), the ratio to its reference, and which run
    that reference is (``None``: no reference run to pair it with)."""

    threshold: float
    seconds: dict[str, float | None]
    ratio: dict[str, float | None]
    reference: dict[str, str | None] = field(default_factory=dict)


def _ordered(checks: Sequence[Check]) -> list[Check]:
    return sorted(checks, key=lambda c: float(c["train_wall_seconds"]))


def time_to_reach(checks: Sequence[Check], threshold: float) -> float | None:
    """``train_wall_seconds`` of the first check (in training time) with ``dice >= threshold``; else None.

    A NaN Dice (no foreground anywhere) never reaches a threshold.
    """
    for check in _ordered(checks):
        if float(check["dice"]) >= threshold:
            return float(check["train_wall_seconds"])
    return None


def default_thresholds(runs: Mapping[str, Sequence[Check]], step: float = 0.05) -> list[float]:
    """Every multiple of ``step`` from the lowest to the highest Dice any check of any run reached."""
    values = [float(c["dice"]) for checks in runs.values() for c in checks if math.isfinite(float(c["dice"]))]
    if not values:
        return []
    first = math.ceil(min(values) / step - 1e-9)
    last = math.floor(max(values) / step + 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def time_to_dice_table(runs: Mapping[str, Sequence[Check]], thresholds: Sequence[float],
                       reference: str, paired: Mapping[str, str | None] | None = None) -> list[TimeToDiceRow]:
    """One row per threshold (ascending): time per run and ratio ``time / time of its reference``.

    Every run is compared with ``reference`` unless ``paired`` names its own reference run (for repeats: the
    reference run of the same fold and seed; ``None``: none, so no ratio). A ratio is None where the run or its
    reference never reached the threshold.
    """
    references = {name: (paired[name] if paired is not None and name in paired else reference) for name in runs}
    for name in [reference, *references.values()]:
        if name is not None and name not in runs:
            raise ValueError(f"reference {name!r} is not one of the runs {list(runs)}")
    rows = []
    for threshold in sorted(thresholds):
        seconds = {name: time_to_reach(checks, threshold) for name, checks in runs.items()}
        ratio = {}
        for name, t in seconds.items():
            base = seconds[references[name]] if references[name] is not None else None
            ratio[name] = None if t is None or base is None or base <= 0 else t / base
        rows.append(TimeToDiceRow(float(threshold), seconds, ratio, dict(references)))
    return rows


# -------------------------------------------------------------------------------------------- rendering

def format_seconds(seconds: float | None) -> str:
    """``12.3``, ``20386``; ``not reached`` for None."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return NOT_REACHED
    return f"{seconds:.1f}" if seconds < 100 else f"{seconds:.0f}"


def table_markdown(rows: Sequence[TimeToDiceRow], reference: str) -> str:
    """Threshold rows; the reference runs' times (s) first, then per other run its time and the ratio to its
    reference (with several reference runs, a line under the table says which run each ratio is to)."""
    names = list(rows[0].seconds) if rows else [reference]
    pairs = rows[0].reference if rows and rows[0].reference else {name: reference for name in names}
    references = list(dict.fromkeys([reference, *(r for r in pairs.values() if r is not None)]))
    others = [n for n in names if n not in references]
    headers = ["Dice", *(f"{name} (s)" for name in references)]
    for name in others:
        headers += [f"{name} (s)", f"{name} / ref"]
    body = []
    for row in rows:
        line = [f"{row.threshold:.2f}", *(format_seconds(row.seconds[name]) for name in references)]
        for name in others:
            ratio = row.ratio[name]
            line += [format_seconds(row.seconds[name]), "-" if ratio is None else f"{ratio:.2f}"]
        body.append(line)
    table = markdown_table(headers, body)
    if len(references) > 1 or any(pairs.get(name) is None for name in others):
        table += "\n\nEach ratio is to the reference run of the same fold and seed: " + "; ".join(
            f"{name} / {pairs.get(name) or 'none (no reference run with its fold and seed)'}" for name in others)
    return table


def table_csv(rows: Sequence[TimeToDiceRow], reference: str) -> str:
    """Long format: ``threshold, run, train_wall_seconds, ratio_to_reference, reference`` (empty: not reached);
    ``reference`` is the run the ratio is to."""
    body = [[f"{row.threshold:g}", name, row.seconds[name], row.ratio[name], row.reference.get(name, reference)]
            for row in rows for name in row.seconds]
    return csv_text(["threshold", "run", "train_wall_seconds", "ratio_to_reference", "reference"], body)


def plot_dice_vs_time(runs: Mapping[str, Sequence[Check]], path: str | os.PathLike,
                      thresholds: Sequence[float] = (), reference: str | None = None, title: str = "") -> None:
    """Dice against training wall time, one step line per run (held until the next check), dashed thresholds."""
    from matplotlib.figure import Figure

    from nnunet_progressive.core.io import atomic_save_figure

    longest = max((float(c["train_wall_seconds"]) for checks in runs.values() for c in checks), default=1.0)
    unit, per_unit = time_unit(longest)
    figure = Figure(figsize=(7.5, 4.8), layout="constrained")
    axes = figure.add_subplot()
    for name, checks in runs.items():
        ordered = _ordered(checks)
        x = [float(c["train_wall_seconds"]) / per_unit for c in ordered]
        y = [float(c["dice"]) for c in ordered]
        is_reference = name == reference
        axes.step(x, y, where="post", marker="o", markersize=3, linewidth=2.2 if is_reference else 1.4,
                  label=f"{name} (reference)" if is_reference else name)
    for threshold in thresholds:
        axes.axhline(threshold, color="grey", linestyle="--", linewidth=0.6, alpha=0.7)
    axes.set_xlabel(f"training wall time ({unit}, Dice checks excluded)")
    axes.set_ylabel("validation Dice")
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    if runs:
        axes.legend(fontsize="small", loc="lower right")
    axes.set_title(title or "Dice against training time")
    atomic_save_figure(figure, path, dpi=120)


# ----------------------------------------------------------------------------------------------- inputs

def parse_thresholds(text: str) -> list[float]:
    """``"0.7,0.8,0.9"`` -> [0.7, 0.8, 0.9]; each in (0, 1]."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ProgressiveConfigError(f"thresholds: expected numbers separated by commas like 0.7,0.8,0.9; "
                                     f"got {text!r}") from None
    if not values or not all(0 < v <= 1 for v in values):
        raise ProgressiveConfigError(f"thresholds: expected Dice values in (0, 1] like 0.7,0.8; got {text!r}")
    return sorted(set(values))


def validate_time_to_dice(data: Any, source: str = "time_to_dice.json") -> dict[str, Any]:
    """``data`` if it has the fields this module reads (``checks`` with ``dice`` and ``train_wall_seconds``)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("checks"), list):
        keys = sorted(data) if isinstance(data, Mapping) else []
        raise ProgressiveConfigError(f"{source}: expected a mapping with a `checks` list, got "
                                     f"{type(data).__name__} with keys {keys}")
    for i, check in enumerate(data["checks"]):
        if not isinstance(check, Mapping):
            raise ProgressiveConfigError(f"{source}: checks[{i}] should be a mapping, got {check!r}")
        for key in ("dice", "train_wall_seconds"):
            value = check.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ProgressiveConfigError(f"{source}: checks[{i}].{key} should be a number, got {value!r}")
    return dict(data)
