"""Reading nnU-Net training logs in tests: which line matched in which epoch (resumed runs included)."""
from __future__ import annotations

import re
from pathlib import Path

EPOCH_LINE = re.compile(r": Epoch (\d+)\s*$")


def matches_per_epoch(fold: Path, pattern: re.Pattern) -> dict[int, re.Match]:
    """epoch -> the last match of ``pattern`` logged during that epoch, over all training logs of a fold."""
    found = {}
    for log in sorted(fold.glob("training_log_*.txt")):
        epoch = None
        for line in log.read_text().splitlines():
            if match := EPOCH_LINE.search(line):
                epoch = int(match.group(1))
            elif (match := pattern.search(line)) and epoch is not None:
                found[epoch] = match
    return found
