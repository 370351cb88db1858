"""The one validation kit: pydantic models, with errors turned into this package's messages.

Knobs (:mod:`.knobs`), benchmark specs, synthetic presets and the JSON records (:mod:`.records`) are pydantic
models; :func:`validate` checks data against one and raises :class:`ProgressiveConfigError` listing every
problem as ``<where>: <key>: <what is wrong> (got <value>)``, or ``<key>: expected <what>, got <value>`` when
the text says what was expected. Field validators raise ``ValueError`` with a short text ("must be >= 1",
"expected an integer >= 0") that ends up in that message verbatim; pydantic's own texts for the common cases
(wrong type, not one of the choices, missing key) are rewritten in the same words.

Models that users write (specs, presets) derive from :class:`StrictModel`: unknown keys are an error that lists
the valid ones; a :class:`CheckedModel` also raises the same message as :func:`validate` when constructed
directly (``Model(field=...)``). The annotated types below (:func:`integer`, :func:`number`, :data:`Name`) give their
fields the same wording everywhere.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

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


def _choices_text(expected: str) -> str:
    """pydantic's ``'a', 'b' or 'c'`` -> ``('a', 'b', 'c')``."""
    return "(" + ", ".join(part.strip() for part in re.split(r",| or ", expected) if part.strip()) + ")"


# pydantic error type -> our wording (``ctx`` holds the limits pydantic checked)
_MESSAGES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "missing": lambda ctx: "required key is missing",
    "extra_forbidden": lambda ctx: "unknown key",
    "literal_error": lambda ctx: f"expected one of {_choices_text(str(ctx.get('expected', '')))}",
    "enum": lambda ctx: f"expected one of {_choices_text(str(ctx.get('expected', '')))}",
    "int_type": lambda ctx: "expected an integer",
    "int_parsing": lambda ctx: "expected an integer",
    "int_from_float": lambda ctx: "expected an integer",
    "float_type": lambda ctx: "expected a number",
    "float_parsing": lambda ctx: "expected a number",
    "finite_number": lambda ctx: "expected a finite number",
    "string_type": lambda ctx: "expected a string",
    "bool_type": lambda ctx: "expected true or false",
    "bool_parsing": lambda ctx: "expected true or false",
    "list_type": lambda ctx: "expected a list",
    "tuple_type": lambda ctx: "expected a list",
    "dict_type": lambda ctx: "expected a mapping (key: value)",
    "model_type": lambda ctx: "expected a mapping (key: value)",
    "model_attributes_type": lambda ctx: "expected a mapping (key: value)",
    "greater_than_equal": lambda ctx: f"expected a value >= {ctx.get('ge')}",
    "greater_than": lambda ctx: f"expected a value > {ctx.get('gt')}",
    "less_than_equal": lambda ctx: f"expected a value <= {ctx.get('le')}",
    "less_than": lambda ctx: f"expected a value < {ctx.get('lt')}",
    "too_short": lambda ctx: f"expected at least {ctx.get('min_length')} item(s)",
    "too_long": lambda ctx: f"expected at most {ctx.get('max_length')} item(s)",
}


def problem_text(problem: Mapping[str, Any]) -> str:
    """The message of one pydantic problem, in our words (without location and value)."""
    kind = problem.get("type")
    if kind in _MESSAGES:
        return _MESSAGES[kind](problem.get("ctx") or {})
    message = str(problem.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def error_lines(error: ValidationError, name_of: Callable[[str], str] | None = None) -> list[str]:
    """One line per problem: ``key: message (got value)`` or ``key: expected ..., got value``."""
    lines = []
    for problem in error.errors(include_url=False):
        message = problem_text(problem)
        where = location_text(tuple(problem.get("loc", ())), name_of)
        got = problem.get("input")
        shown = ""
        if problem.get("type") not in ("missing", "extra_forbidden") and not isinstance(got, Mapping | BaseModel):
            shown = f", got {got!r}" if message.startswith("expected ") else f" (got {got!r})"
        lines.append(f"{where}: {message}{shown}" if where else f"{message}{shown}")
    return lines


def problems_message(error: ValidationError, where: str, fix: str = "",
                     name_of: Callable[[str], str] | None = None) -> str:
    """``where: problem`` (one problem) or ``where:`` and one indented line per problem, then ``fix``; without
    ``where`` (the caller names the place) the problems alone."""
    lines = error_lines(error, name_of)
    message = (f"{where}: " if where else "") + ("; ".join(lines) if len(lines) == 1 else "\n  " + "\n  ".join(lines))
    return message + (f"\n{fix}" if fix else "")


def validate(model: type[Model], data: Any, where: str, fix: str = "",
             name_of: Callable[[str], str] | None = None, context: Mapping[str, Any] | None = None) -> Model:
    """``model.model_validate(data)``, or one :class:`ProgressiveConfigError` naming ``where`` and every problem.

    ``context`` reaches the model's validators as ``info.context`` (e.g. the folder relative paths start from).
    """
    try:
        return model.model_validate(data, context=dict(context) if context is not None else None)
    except ValidationError as error:
        raise ProgressiveConfigError(problems_message(error, where, fix, name_of)) from None


class StrictModel(BaseModel):
    """A model users write (spec files, presets): frozen; unknown keys are listed with the valid ones.

    ``required_hints`` maps a required key to an example that fixes its absence (``None``, ``[]`` and ``""``
    count as absent).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    required_hints: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _known_and_required_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data  # pydantic says "expected a mapping"
        valid = sorted(info.alias or name for name, info in cls.model_fields.items())
        unknown = sorted(str(key) for key in data if str(key) not in valid)
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; valid keys are {valid}")
        for key, hint in cls.required_hints.items():
            if data.get(key) in (None, [], (), ""):
                raise ValueError(f"missing required key {key!r}; add e.g. `{hint}`")
        return data


# ------------------------------------------------------------------------------------- annotated field types

def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(minimum: int | None = None, maximum: int | None = None, what: str = "an integer") -> Any:
    """An ``int`` field that refuses booleans, floats and strings: ``expected an integer >= 1, got 0``."""
    bounds = " and ".join(text for text in (None if minimum is None else f">= {minimum}",
                                            None if maximum is None else f"<= {maximum}") if text)
    expected = f"expected {what}" + (f" {bounds}" if bounds else "")

    def check(value: Any) -> int:
        if (not _is_integer(value) or (minimum is not None and value < minimum)
                or (maximum is not None and value > maximum)):
            raise ValueError(expected)
        return value

    return Annotated[int, BeforeValidator(check)]


def number(minimum: float | None = None, exclusive: bool = False, what: str = "a number") -> Any:
    """A finite ``float`` field (ints accepted, booleans and strings refused)."""
    bound = "" if minimum is None else f" {'>' if exclusive else '>='} {minimum:g}"
    expected = f"expected {what}{bound}"

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(expected)
        if minimum is not None and (value <= minimum if exclusive else value < minimum):
            raise ValueError(expected)
        return float(value)

    return Annotated[float, BeforeValidator(check)]


_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError("expected a name of letters, digits, '_', '-' or '.'")
    return value


Name = Annotated[str, BeforeValidator(_name)]  # trainer, plans and label names: safe in file names


class CheckedModel(StrictModel):
    """A :class:`StrictModel` that code also builds directly (``Model(field=...)``): errors in our words.

    (pydantic hands no validation context to a model with its own ``__init__``: models that need one, such as
    a spec whose paths are relative to its file, stay plain :class:`StrictModel` and go through :func:`validate`.)
    """

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise ProgressiveConfigError(problems_message(error, type(self).__name__)) from None
