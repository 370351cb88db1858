"""Progress of one ``nnUNetv2_train`` as a newcomer can follow it: a tqdm bar of epochs, fed from the training log.

nnU-Net prints ``<time>: Epoch N`` when epoch N starts and ``<time>: Epoch time: X s`` when it ends; this
package's PGPS trainers add ``PGPS stage k/n | patch ...`` and the stop-at-Dice trainers ``Dice check ...``.
:class:`LogProgress` reads what the log gained since its last look and moves the bar; :func:`parse_log_progress`
is the pure part.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from time import monotonic
from typing import Any

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.heartbeat import parse_heartbeat
from nnunet_progressive.core.knobs import ProgressiveSettings
from nnunet_progressive.core.settings import knob_settings

_EPOCH_START = re.compile(r"^.*?: Epoch (\d+)\s*$", re.M)
_EPOCH_END = re.compile(r"^.*?: Epoch time: ([0-9.]+) s\s*$", re.M)
_PSEUDO_DICE = re.compile(r"^.*?: Pseudo dice \[(.*)\]\s*$", re.M)
_STAGE = re.compile(r"PGPS stage (\d+)/(\d+)")
NNUNET_DEFAULT_EPOCHS = 1000


@dataclass(frozen=True)
class LogProgress:
    """What a stretch of training log says: epochs finished, the epoch running, the last stage and pseudo Dice."""

    epochs_done: int | None = None  # epochs finished (the running epoch's index, or the last ended + 1)
    epoch_running: int | None = None
    stage: str | None = None  # "3/9"
    pseudo_dice: str | None = None  # as nnU-Net printed it, e.g. "0.81, 0.02"


def parse_log_progress(text: str) -> LogProgress:
    """The latest epoch, stage and pseudo Dice in ``text`` (part of an nnU-Net training log)."""
    events = sorted([(m.start(), int(m.group(1))) for m in _EPOCH_START.finditer(text)]
                    + [(m.start(), None) for m in _EPOCH_END.finditer(text)])
    running = done = None
    for _, epoch in events:
        if epoch is not None:  # epoch N starts: N epochs are done (a resumed run starts past 0)
            running, done = epoch, epoch
        elif running is not None:
            done = running + 1
    stage = _STAGE.findall(text)
    dice = _PSEUDO_DICE.findall(text)
    cleaned = re.sub(r"np\.float\d+\(([^)]*)\)", r"\1", dice[-1]) if dice else None
    return LogProgress(done, running, f"{stage[-1][0]}/{stage[-1][1]}" if stage else None, cleaned)


def expected_epochs(defaults: ProgressiveSettings, knobs: Mapping[str, str]) -> int:
    """Epochs a run will train: its trainer's default settings (``_Xepochs`` variants, fine-tuning's 150) with the
    run's ``NNPROG_*`` knobs on top, read as the trainer reads them; nnU-Net's 1000 where neither says."""
    try:
        epochs = knob_settings(knobs, defaults).epochs
    except ProgressiveConfigError:  # the run itself will say what is wrong; the bar only needs a length
        epochs = defaults.epochs
    return epochs or NNUNET_DEFAULT_EPOCHS


class EpochBar:
    """A tqdm bar of one training's epochs; :meth:`look` takes the whole log so far and reads only what is new.

    ``start`` is the log's length when this training began (earlier attempts of the run are in the same log).
    """

    def __init__(self, description: str, total: int, start: int = 0, position: int = 1, enabled: bool = True):
        from tqdm import tqdm

        self.offset = start
        self.text = ""
        self.refreshed = 0.0
        self.bar: Any = tqdm(total=total, desc=description, unit="epoch", position=position, leave=False,
                             disable=not enabled, dynamic_ncols=True)

    def look(self, log_text: str) -> None:
        if len(log_text) <= self.offset:
            if monotonic() - self.refreshed >= 1.0:  # the elapsed time ticks while the log is quiet
                self.refreshed = monotonic()
                self.bar.refresh()
            return
        self.text += log_text[self.offset:]
        self.offset = len(log_text)
        progress = parse_log_progress(self.text)
        if progress.epochs_done is not None and progress.epochs_done != self.bar.n:
            self.bar.n = progress.epochs_done
        details = []
        beat = parse_heartbeat(self.text)
        if beat is not None and beat[0] == progress.epoch_running:
            details.append(f"iteration {beat[1]}/{beat[2]}")
        if progress.stage:
            details.append(f"stage {progress.stage}")
        if progress.pseudo_dice:
            details.append(f"pseudo Dice {progress.pseudo_dice}")
        if self.bar.total and self.bar.n >= self.bar.total:
            details = ["final validation (sliding window)"]  # nnU-Net predicts the fold's validation cases
        self.bar.set_postfix_str(", ".join(details), refresh=False)
        self.refreshed = monotonic()
        self.bar.refresh()
        self.text = self.text[-20000:]  # enough for the latest lines

    def close(self) -> None:
        self.bar.close()
