"""The one validation kit: pydantic models, with errors turned into this package's messages.

Knobs (:mod:`.knobs`), benchmark specs, synthetic presets and the JSON records (:mod:`.records`) are pydantic
models; :func:`validate` checks data against one and raises :class:`ProgressiveConfigError` listing every
problem as ``<where>.<key>: <what is wrong> (got <value>)``. Field validators raise ``ValueError`` with a short
text ("must be >= 1") that ends up in that message verbatim.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from nnunet_progressive.core.errors import ProgressiveConfigError

Model = TypeVar("Model", bound=BaseModel)


def location_text(location: tuple, name_of: Callable[[str], str] | None = None) -> str:
    """``("datasets", 0, "id")`` -> ``datasets[0].id``; ``name_of`` renames the first key (e.g. to an env name)."""
    text = ""
    for index, part in enumerate(location):
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        part = name_of(str(part)) if (index == 0 and name_of is not None) else str(part)
        text += f".{part}" if text else part
    return text


def error_lines(error: ValidationError, name_of: Callable[[str], str] | None = None) -> list[str]:
    """One line per problem: ``key: message (got value)``."""
    lines = []
    for problem in error.errors(include_url=False):
        message = str(problem.get("msg", "invalid"))
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        if problem.get("type") == "extra_forbidden":
            message = "unknown key"
        where = location_text(tuple(problem.get("loc", ())), name_of)
        got = problem.get("input")
        shown = "" if problem.get("type") in ("missing",) or isinstance(got, Mapping) else f" (got {got!r})"
        lines.append(f"{where}: {message}{shown}" if where else f"{message}{shown}")
    return lines


def validate(model: type[Model], data: Any, where: str, fix: str = "",
             name_of: Callable[[str], str] | None = None) -> Model:
    """``model.model_validate(data)``, or one :class:`ProgressiveConfigError` naming ``where`` and every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        lines = error_lines(error, name_of)
        message = f"{where}: " + ("; ".join(lines) if len(lines) == 1 else "\n  " + "\n  ".join(lines))
        raise ProgressiveConfigError(message + (f"\n{fix}" if fix else "")) from None
