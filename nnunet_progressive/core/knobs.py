"""Knobs of the progressive trainers, settable without code through NNPROG_* environment variables.

A trainer class fixes the defaults (e.g. ``_100epochs``); the environment overrides them for one run.
The values a run started with are stored in its checkpoints, so ``--c`` continues with the same
schedule even if the environment changed (a warning names the differences).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from nnunet_progressive.core.errors import ProgressiveConfigError

ENV_PREFIX = "NNPROG_"
DICE_METHODS = ("sliding_window", "pseudo_dice")


@dataclass(frozen=True)
class ProgressiveSettings:
    """Every knob; ``None`` means "nnU-Net's or the plan's own value"."""

    epochs: int | None = None  # NNPROG_EPOCHS: total epochs (nnU-Net default 1000)
    iterations: int | None = None  # NNPROG_ITERATIONS: training iterations per epoch (default 250)
    val_iterations: int | None = None  # NNPROG_VAL_ITERATIONS: validation iterations per epoch (default 50)
    growth_share: float | None = None  # NNPROG_GROWTH_SHARE: share of epochs before the planned patch
    min_patch: tuple[int, ...] | None = None  # NNPROG_MIN_PATCH: e.g. "32,32,32"
    max_batch: int | None = None  # NNPROG_MAX_BATCH: Performance mode's hard batch cap
    batch_budget: float = 1.0  # NNPROG_BATCH_BUDGET: Performance voxel budget / planned footprint
    save_every: int | None = None  # NNPROG_SAVE_EVERY: checkpoint_latest every N epochs (default 50)
    target_dice: float | None = None  # NNPROG_TARGET_DICE: stop when the validation Dice reaches it
    check_every: int = 5  # NNPROG_CHECK_EVERY: epochs between validation Dice checks (StopAtDice, PDL)
    dice_method: str = "sliding_window"  # NNPROG_DICE_METHOD: sliding_window | pseudo_dice
    set1_share: float = 0.5  # NNPROG_SET1_SHARE: PDL Set 1 size as a share of the fold's training cases
    set1_epochs: int = 10  # NNPROG_SET1_EPOCHS: PDL epochs on Set 1 alone
    pdl_seed: int = 0  # NNPROG_PDL_SEED: seed of the random Set 1 (PDL_Random control)
    ranking: str | None = None  # NNPROG_RANKING: similarity ranking JSON (default: the dataset's)

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.min_patch is not None:
            data["min_patch"] = list(self.min_patch)
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> ProgressiveSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("min_patch") is not None:
            values["min_patch"] = tuple(int(v) for v in values["min_patch"])
        return cls(**values)

    def differences(self, other: ProgressiveSettings) -> dict[str, tuple]:
        """Fields whose values differ: name -> (self's value, other's value)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}


def _parse_int(name: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ProgressiveConfigError(f"{ENV_PREFIX}{name}={text!r} is not an integer") from None
    if value < minimum:
        raise ProgressiveConfigError(f"{ENV_PREFIX}{name}={value} must be >= {minimum}")
    return value


def _parse_float(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ProgressiveConfigError(f"{ENV_PREFIX}{name}={text!r} is not a number") from None


def _parse_fraction(name: str, text: str) -> float:
    value = _parse_float(name, text)
    if not 0.0 < value <= 1.0:
        raise ProgressiveConfigError(f"{ENV_PREFIX}{name}={value} must lie in (0, 1]")
    return value


def _parse_choice(name: str, text: str, choices: tuple[str, ...]) -> str:
    if text not in choices:
        raise ProgressiveConfigError(f"{ENV_PREFIX}{name}={text!r} must be one of {choices}")
    return text


def _parse_patch(name: str, text: str) -> tuple[int, ...]:
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        patch = tuple(int(p) for p in parts)
    except ValueError:
        raise ProgressiveConfigError(
            f"{ENV_PREFIX}{name}={text!r} is not a patch size; write it like 32,32,32 (nnU-Net axis order)"
        ) from None
    if len(patch) not in (2, 3) or min(patch) < 1:
        raise ProgressiveConfigError(f"{ENV_PREFIX}{name}={text!r} needs 2 or 3 positive sizes")
    return patch


def settings_from_env(
    defaults: ProgressiveSettings | None = None, environ: Mapping[str, str] | None = None
) -> ProgressiveSettings:
    """``defaults`` with every NNPROG_* variable that is set (and non-empty) applied on top."""
    defaults = defaults or ProgressiveSettings()
    environ = os.environ if environ is None else environ
    parsers = {
        "epochs": lambda n, t: _parse_int(n, t, 1),
        "iterations": lambda n, t: _parse_int(n, t, 1),
        "val_iterations": lambda n, t: _parse_int(n, t, 1),
        "growth_share": _parse_float,
        "min_patch": _parse_patch,
        "max_batch": lambda n, t: _parse_int(n, t, 1),
        "batch_budget": _parse_float,
        "save_every": lambda n, t: _parse_int(n, t, 1),
        "target_dice": _parse_fraction,
        "check_every": lambda n, t: _parse_int(n, t, 1),
        "dice_method": lambda n, t: _parse_choice(n, t, DICE_METHODS),
        "set1_share": _parse_fraction,
        "set1_epochs": lambda n, t: _parse_int(n, t, 1),
        "pdl_seed": lambda n, t: _parse_int(n, t, 0),
        "ranking": lambda n, t: t,
    }
    updates = {}
    for field_name, parse in parsers.items():
        env_name = field_name.upper()
        text = environ.get(ENV_PREFIX + env_name, "").strip()
        if text:
            updates[field_name] = parse(env_name, text)
    return replace(defaults, **updates)


def env_variable_help() -> str:
    """One line per knob, for CLI help and the README."""
    return "\n".join(
        [
            "NNPROG_EPOCHS          total epochs (nnU-Net: 1000)",
            "NNPROG_ITERATIONS      training iterations per epoch (nnU-Net: 250)",
            "NNPROG_VAL_ITERATIONS  validation iterations per epoch (nnU-Net: 50)",
            "NNPROG_GROWTH_SHARE    share of epochs spent growing, 0..1 (default: even split per stage)",
            "NNPROG_MIN_PATCH       smallest patch, e.g. 32,32,32 (default: smallest the network accepts)",
            "NNPROG_MAX_BATCH       Performance mode: hard batch cap (default 64)",
            "NNPROG_BATCH_BUDGET    Performance mode: voxel budget as a multiple of the planned footprint",
            "NNPROG_SAVE_EVERY      write checkpoint_latest every N epochs (nnU-Net: 50)",
            "NNPROG_TARGET_DICE     stop when the validation Dice reaches this (StopAtDice and PDL trainers)",
            "NNPROG_CHECK_EVERY     epochs between validation Dice checks (default 5)",
            "NNPROG_DICE_METHOD     sliding_window (default, real Dice) or pseudo_dice (cheap, patches)",
            "NNPROG_SET1_SHARE      PDL: Set 1 share of the fold's training cases (default 0.5)",
            "NNPROG_SET1_EPOCHS     PDL: epochs on Set 1 alone (default 10)",
            "NNPROG_PDL_SEED        PDL_Random: seed of the random Set 1 (default 0)",
            "NNPROG_RANKING         PDL: ranking JSON (default: written by nnprog rank in nnUNet_preprocessed)",
        ]
    )
