"""A run's settings resolved from the knob table (:mod:`.knobs`): the one reader of ``NNPROG_*`` knobs.

Wherever knobs come from (the environment of ``nnUNetv2_train``, the ``knobs`` of a benchmark spec or run), they
are read once (:class:`~.knobs.EnvironmentKnobs`) and applied on top of the trainer's own defaults
(``default_settings``: ``_Xepochs`` variants, fine-tuning's 150 epochs) as :class:`~.knobs.ProgressiveSettings`.
Torch-free: the trainers (``nnunet/hooks/run_state.py``), the benchmark's spec check, progress bars and run status all
resolve through here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import (
    ENV_PREFIX,
    EnvironmentKnobs,
    ProgressiveSettings,
    env_name,
    unknown_knob_message,
)


def resolve_new_run(trainer_name: str, defaults: ProgressiveSettings, features: Iterable[str],
                    environ: Mapping[str, str] | None = None,
                    refusal: Callable[[ProgressiveSettings], str | None] | None = None) -> ProgressiveSettings:
    """The settings a new run of ``trainer_name`` starts with: ``defaults`` plus the ``NNPROG_*`` environment.

    Strict: unknown ``NNPROG_*`` names (with the closest knob), invalid values, knobs the trainer (reading
    ``features``) does not read and what ``refusal`` says of the settings are all reported in one
    :class:`ProgressiveConfigError`. A knob that is set but ignored is an error, not a warning: the run would
    otherwise be a different experiment from the one its user believes it is.
    """
    knobs = EnvironmentKnobs.read(environ)
    problems = [unknown_knob_message(n) for n in knobs.unknown]
    settings = None
    try:
        settings = knobs.settings(defaults)
    except ProgressiveConfigError as error:
        problems.insert(0, str(error))
    problems += knobs.ignored_by(trainer_name, features)
    if settings is not None and refusal is not None and (refused := refusal(settings)):
        problems.append(refused)
    if problems:
        raise ProgressiveConfigError(f"{trainer_name} cannot start: " + (
            "\n  ".join([""] + problems) if len(problems) > 1 else problems[0]))
    return settings


def notes_for_continued_run(stored: ProgressiveSettings, defaults: ProgressiveSettings,
                            environ: Mapping[str, str] | None = None) -> list[str]:
    """What the environment would have changed in a continued run (it does not: the stored settings hold)."""
    knobs = EnvironmentKnobs.read(environ)
    notes = []
    if knobs.unknown:
        notes.append(f"ignored {', '.join(knobs.unknown)}: no knob of nnunet-progressive")
    try:
        from_environment = knobs.settings(defaults)
    except ProgressiveConfigError as error:
        return [*notes, f"ignored invalid NNPROG settings ({error})"]
    now, run = from_environment.to_dict(), stored.to_dict()
    differing = [f"{env_name(f)}: now {now[f]!r}, run {run[f]!r}" for f in knobs.values if now[f] != run[f]]
    if differing:
        notes.append(f"NNPROG settings differ from the run being continued ({', '.join(differing)})")
    return notes


def check_spec_knobs(knobs: Mapping[str, str]) -> ProgressiveSettings:
    """The settings the ``NNPROG_*`` entries of a spec's ``knobs`` give (with the table's defaults); unknown names
    and bad values in one :class:`ProgressiveConfigError` (a ValueError, so a spec validator can raise it) that
    names the knobs (the spec's own message names the place)."""
    read = EnvironmentKnobs.read(knobs)
    if read.unknown:
        raise ProgressiveConfigError("; ".join(unknown_knob_message(n, in_environment=False) for n in read.unknown))
    return read.settings(where="")


def knob_settings(knobs: Mapping[str, Any], defaults: ProgressiveSettings | None = None) -> ProgressiveSettings:
    """The settings a run with ``knobs`` (a benchmark run's environment; values as strings or numbers) trains with:
    ``defaults`` (the trainer's; default: the table's) with its ``NNPROG_*`` knobs on top, read as the trainer
    reads them (other names are no knob here). Bad values raise :class:`ProgressiveConfigError`."""
    return EnvironmentKnobs.read({k: str(v) for k, v in knobs.items() if k.startswith(ENV_PREFIX)}).settings(defaults)
