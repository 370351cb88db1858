"""The training's heartbeat: a line on stdout every few seconds within an epoch, for progress bars.

nnU-Net logs when an epoch starts and ends, nothing in between (an epoch can take minutes). With the environment
variable :data:`HEARTBEAT_SECONDS_ENV` set (the benchmark runner and ``nnprog demo`` set it), the package's
trainers print :func:`heartbeat_line` at most that often; the bar reads it back with :func:`parse_heartbeat`.
Display only: not a knob, not part of a run's identity (its name is outside the ``NNPROG_`` family on purpose).
"""
from __future__ import annotations

import re

HEARTBEAT_SECONDS_ENV = "NNUNET_PROGRESSIVE_HEARTBEAT_SECONDS"
_LINE = re.compile(r"^nnprog heartbeat: epoch (\d+) iteration (\d+)/(\d+)\s*$", re.M)


def heartbeat_line(epoch: int, iteration: int, iterations: int) -> str:
    return f"nnprog heartbeat: epoch {epoch} iteration {iteration}/{iterations}"


def parse_heartbeat(text: str) -> tuple[int, int, int] | None:
    """(epoch, iteration, iterations) of the last heartbeat line in ``text``, or None."""
    found = _LINE.findall(text)
    return tuple(int(x) for x in found[-1]) if found else None  # type: ignore[return-value]


def heartbeat_seconds(environ: dict[str, str] | None = None) -> float | None:
    """The heartbeat interval the environment asks for (None: off; a bad value: off, as it is display only)."""
    import os

    value = (os.environ if environ is None else environ).get(HEARTBEAT_SECONDS_ENV, "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds > 0 else None
