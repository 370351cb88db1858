"""`nnprog` as tests run it: this interpreter's module, not a script that must be on PATH."""
from __future__ import annotations

import sys

NNPROG = [sys.executable, "-m", "nnunet_progressive.cli.main"]  # the console script `nnprog` runs main() the same way
