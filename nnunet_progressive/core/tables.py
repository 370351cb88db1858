"""Plain-text tables (markdown, CSV) and time units for reports and command output."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells are converted with ``str`` and ``|`` is escaped."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV with a header line; None becomes an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue()


def time_unit(max_seconds: float) -> tuple[str, float]:
    """Axis unit for a time span: (name, seconds per unit)."""
    if max_seconds > 2 * 3600:
        return "h", 3600.0
    if max_seconds > 120:
        return "min", 60.0
    return "s", 1.0
