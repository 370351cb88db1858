"""Fault matrix (issue #20): ``kill -9`` of ``nnUNetv2_train`` at each phase of a run, for each trainer family, then
``--c`` in a fresh environment (no knob of the run set); the resumed run must equal an uninterrupted one epoch by
epoch, and nothing may outlive the kill.

Each phase is hit by watching the run as it goes (its log through inotify, and its fold folder), not by a knob of
the product: at the phase's marker the training process gets SIGSTOP, the script checks that it stopped inside the
phase (e.g. the checkpoint's temporary file exists), records every process below it, and sends SIGKILL to the
training process alone (its workers must end by themselves). Then it resumes with ``--c`` and compares, per epoch:
the learning rate (``checkpoint_final.pth``), the training data (PGPS stage, patch and batch; RPSS sizes and batch;
PDL stage and its case list; fine-tuning phase), that the cases seen in a PDL epoch belong to that epoch's case
list, the epochs of the Dice checks and the stage each saw, how the run stopped and its number of epochs. Dice
values and losses are not compared: batches are drawn at random and a resumed run draws others.

    python scripts/fault_matrix.py --workspace /tmp/fault_matrix [--only NAME ...] [-o docs/results/fault_matrix.md]

Writes a markdown table (and ``fault_matrix.json`` beside it) and exits 1 if a combination fails.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

FAST = {"NNPROG_ITERATIONS": "2", "NNPROG_VAL_ITERATIONS": "1", "NNPROG_FINAL_VALIDATION": "off",
        "NNPROG_SAVE_EVERY": "1"}
EPOCH_LINE = re.compile(r": Epoch (\d+)\s*$")
TEMPORARY_CHECKPOINT = re.compile(r"^\.checkpoint_\w+\.pth\..*\.tmp$")


# --- what a run did, epoch by epoch (pure) ------------------------------------------------------------------------

@dataclass(frozen=True)
class LogLine:
    epoch: int | None  # the epoch whose "Epoch N" line came last before it (None: before the first)
    text: str  # without nnU-Net's timestamp


def log_lines(texts: Sequence[str]) -> list[LogLine]:
    """The lines of a fold's training logs (oldest first), each with the epoch it was written in."""
    lines = []
    for text in texts:
        epoch = None
        for raw in text.splitlines():
            text_part = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ", "", raw).rstrip()
            if match := EPOCH_LINE.search(raw):
                epoch = int(match.group(1))
            lines.append(LogLine(epoch, text_part))
    return lines


LOADER_LINE = re.compile(r"^Training loader rebuilt for epoch (\d+) in [\d.]+ s: (.*)$")
PGPS_LINE = re.compile(r"PGPS stage (\d+/\d+) \| patch ([\dx]+) \| batch (\d+)")
RPSS_LINE = re.compile(r"RPSS: (\d+) patch sizes drawn per batch \| batch (\d+)")
PHASE_LINE = re.compile(r"(Fine-tuning phase \d+/\d+ .*?)( \| optimiser.*)?$")
CASES_SEEN_LINE = re.compile(r"^PDL stage (\d)/2 cases seen this epoch: \[(.*)\]$")
CHECK_LINE = re.compile(r"^Validation Dice check \((\w+)\) after epoch (\d+): ")
TARGET_LINE = re.compile(r"^Target Dice \S+ reached after epoch (\d+): stopping training\.$")
SET1_TEXT = re.compile(r"PDL stage 1/2: Set 1 \(\w+\) = \d+ training cases \[(.*)\]")


def _names(listed: str) -> list[str]:
    return re.findall(r"'([^']+)'", listed)


def epoch_records(texts: Sequence[str], learning_rates: Sequence[float], num_epochs: int,
                  dice_checks: Sequence[dict] = (), training_cases: Sequence[str] = ()) -> list[dict]:
    """Per trained epoch what must not depend on an interruption: learning rate, training data (from the last
    loader rebuild at or before the epoch and the epoch's own lines), whether the cases seen lie in the epoch's case
    list, and its Dice check (epoch and stage). The last log line of an epoch wins (a resumed epoch ran twice)."""
    lines = log_lines(texts)
    rebuilt: dict[int, str] = {}
    per_epoch: dict[int, dict[str, str]] = {}
    for line in lines:
        if match := LOADER_LINE.match(line.text):
            rebuilt[int(match.group(1))] = match.group(2)
            continue
        if line.epoch is None:
            continue
        own = per_epoch.setdefault(line.epoch, {})
        if match := PGPS_LINE.search(line.text):
            own["pgps"] = "stage {} | patch {} | batch {}".format(*match.groups())
        if match := RPSS_LINE.search(line.text):
            own["rpss"] = "{} sizes | batch {}".format(*match.groups())
        if match := PHASE_LINE.search(line.text):
            own["phase"] = match.group(1)
        if match := CASES_SEEN_LINE.match(line.text):
            own["cases_seen"] = match.group(2)
    checks = {int(c["epoch"]): c for c in dice_checks}
    records = []
    for epoch in range(num_epochs):
        own = per_epoch.get(epoch, {})
        loader = next((rebuilt[e] for e in sorted(rebuilt, reverse=True) if e <= epoch), "")
        record = {"epoch": epoch, "lr": float(learning_rates[epoch]), "pgps": own.get("pgps"),
                  "rpss": own.get("rpss"), "phase": own.get("phase"),
                  "pdl": "set1" if "PDL stage 1/2" in loader else "all" if "PDL stage 2/2" in loader else None,
                  "check": None}
        if record["pdl"] is not None:
            allowed = _names(SET1_TEXT.search(loader).group(1)) if record["pdl"] == "set1" else list(training_cases)
            seen = _names(own.get("cases_seen", ""))
            record["pdl_cases"] = sorted(allowed)
            record["cases_seen_in_stage"] = bool(seen) and set(seen) <= set(allowed)
        if epoch in checks:
            record["check"] = checks[epoch].get("stage", "checked")
        records.append(record)
    return records


def differences(reference: Sequence[dict], resumed: Sequence[dict], rel: float = 1e-9) -> list[str]:
    """Where two runs' epoch records differ (learning rates to ``rel``); empty when they are the same run."""
    found = []
    if len(reference) != len(resumed):
        found.append(f"{len(resumed)} epochs, the uninterrupted run {len(reference)}")
    for ref, res in zip(reference, resumed):
        for key in sorted(set(ref) | set(res)):
            a, b = ref.get(key), res.get(key)
            same = abs(a - b) <= rel * max(abs(a), abs(b)) if key == "lr" else a == b
            if not same:
                found.append(f"epoch {ref['epoch']} {key}: resumed {b!r}, uninterrupted {a!r}")
    for record in resumed:
        if record.get("cases_seen_in_stage") is False:
            found.append(f"epoch {record['epoch']}: cases seen outside the epoch's case list")
    return found


# --- phases: where to kill ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Observation:
    """What the watcher sees of a running training: its output so far and its fold folder."""

    output: str
    fold: Path

    def after_epoch_start(self, epoch: int) -> str | None:
        """The output since ``Epoch <epoch>`` began (None before)."""
        starts = list(re.finditer(rf": Epoch {epoch}\s*$", self.output, re.M))
        return self.output[starts[-1].end():] if starts else None

    def latest_checkpoint_epoch(self) -> int | None:
        """``current_epoch`` in checkpoint_latest's sidecar: the number of epochs it holds."""
        sidecar = self.fold / "checkpoint_latest.pth.nnprog.json"
        try:
            return int(json.loads(sidecar.read_text())["current_epoch"])
        except (OSError, ValueError, KeyError):
            return None

    def temporary_checkpoints(self) -> list[str]:
        return sorted(p.name for p in self.fold.glob(".checkpoint_*.tmp")) if self.fold.is_dir() else []


@dataclass(frozen=True)
class Phase:
    """A moment of a run: ``reached`` says the watcher is there; ``inside`` (checked with the training stopped)
    says what was hit, or None if the stop came too late. ``again``: a moment that recurs (a checkpoint write), so a
    stop that came too late lets the training go on to the next one instead of ending the combination."""

    name: str
    reached: Callable[[Observation], bool]
    inside: Callable[[Observation], str | None]
    again: bool = False


def before_first_checkpoint() -> Phase:
    return Phase("before the first checkpoint",
                 lambda o: o.after_epoch_start(0) is not None,
                 lambda o: None if list(o.fold.glob("checkpoint_*.pth")) else "epoch 0, no checkpoint yet")


def mid_epoch(epoch: int) -> Phase:
    return Phase(f"mid-epoch {epoch}",
                 lambda o: "Current learning rate" in (o.after_epoch_start(epoch) or ""),
                 lambda o: f"epoch {epoch} running, checkpoint holds {o.latest_checkpoint_epoch()} epochs"
                 if (o.latest_checkpoint_epoch() or 0) <= epoch else None)


def checkpoint_write(after_epoch: int) -> Phase:
    return Phase(f"checkpoint write (after epoch {after_epoch})",
                 lambda o: o.after_epoch_start(after_epoch) is not None and bool(o.temporary_checkpoints()),
                 lambda o: f"{o.temporary_checkpoints()[0]} being written" if o.temporary_checkpoints() else None,
                 again=True)  # a write lasts milliseconds: a loaded machine can stop the training just after one


def line_of_epoch(name: str, epoch: int, pattern: str, before_line: bool = False) -> Phase:
    """The line ``pattern`` logged for ``epoch`` (``before_line``: it comes before ``Epoch <epoch>``, as the loader
    rebuild does), the checkpoint of that epoch not yet written."""
    def reached(o: Observation) -> bool:
        text = o.output if before_line else (o.after_epoch_start(epoch) or "")
        return re.search(pattern, text, re.M) is not None

    return Phase(name, reached, lambda o: f"at epoch {epoch}, checkpoint holds {o.latest_checkpoint_epoch()} epochs"
                 if (o.latest_checkpoint_epoch() or 0) <= epoch else None)


def stage_switch(epoch: int) -> Phase:
    return line_of_epoch(f"stage switch (epoch {epoch})", epoch, rf"Training loader rebuilt for epoch {epoch} ", True)


def set1_to_all(epoch: int) -> Phase:
    return line_of_epoch(f"Set 1 -> all (epoch {epoch})", epoch,
                         rf"Training loader rebuilt for epoch {epoch} .*PDL stage 2/2", True)


def dice_check(epoch: int) -> Phase:
    return line_of_epoch(f"Dice check (epoch {epoch}), before its checkpoint", epoch,
                         rf"Validation Dice check \(\w+\) after epoch {epoch}: ")


def phase_change(epoch: int) -> Phase:
    return line_of_epoch(f"fine-tuning phase change (epoch {epoch})", epoch, r"Fine-tuning phase \d+/\d+ .*")


def target_reached() -> Phase:
    return Phase("target Dice reached, before checkpoint_final",
                 lambda o: re.search(r"Target Dice \S+ reached after epoch", o.output) is not None,
                 lambda o: None if (o.fold / "checkpoint_final.pth").exists() else "target logged, no final checkpoint")


def final_validation() -> Phase:
    return Phase("final validation",
                 lambda o: ": predicting " in o.output,
                 lambda o: "predicting" if (o.fold / "checkpoint_final.pth").exists() and not (
                     o.fold / "validation" / "summary.json").exists() else None)


# --- the matrix ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Combination:
    """One trainer run (its knobs) and the phase it is killed at."""

    trainer: str
    knobs: dict[str, str]
    phase: Phase
    pretrained: bool = False  # fine-tuning: starts from a checkpoint of a short ConstantPatch run
    preset: str = "tiny3d"  # the generated dataset it trains on (a key of DATASETS)

    @property
    def name(self) -> str:
        return f"{self.trainer.removeprefix('nnUNetTrainer_')}: {self.phase.name}"

    @property
    def reference_key(self) -> tuple:
        return self.trainer, tuple(sorted(self.knobs.items()))


def _knobs(**values) -> dict[str, str]:
    return {**FAST, **{f"NNPROG_{k.upper()}": str(v) for k, v in values.items()}}


PGPS_KNOBS = _knobs(epochs=9)
RPSS_KNOBS = _knobs(epochs=9)  # RPSS draws from the 9 PGPS sizes of tiny3d: 9 epochs at least
PDL_KNOBS = _knobs(epochs=6, set1_epochs=3, check_every=2, dice_method="pseudo_dice")
STOP_KNOBS = _knobs(epochs=6, check_every=1, dice_method="pseudo_dice")
STOP_RPSS_KNOBS = _knobs(epochs=9, check_every=1, dice_method="pseudo_dice")  # RPSS: 9 epochs at least (tiny3d)
TARGET_KNOBS = _knobs(epochs=6, check_every=2, dice_method="pseudo_dice", target_dice=0.001)
VALIDATING_KNOBS = {**_knobs(epochs=2), "NNPROG_FINAL_VALIDATION": "on"}
FINETUNE_KNOBS = _knobs(epochs=5, warmup_epochs=2)
HEAD_FIRST_KNOBS = _knobs(epochs=5, warmup_epochs=1, head_epochs=3)
FROZEN_KNOBS = _knobs(epochs=5, warmup_epochs=1, frozen_epochs=2)
ARCHITECTURE_KNOBS = _knobs(epochs=6)
SWIN_KNOBS = _knobs(epochs=3)  # demo: SwinUNETR's patch multiple of 32 gives 3 stages to 64^3, one epoch each

# generated dataset (datasets/generated.py) -> (dataset id, network features of its small plans): tiny3d (8 cases of
# 32^3) for every trainer; demo (12 cases of 64^3) where tiny3d leaves a trainer a single PGPS stage (SwinUNETR)
DATASETS = {"tiny3d": (501, (4, 8, 16, 32, 32, 32, 32, 32)), "demo": (503, (4, 8, 16, 32, 32))}

QUICK = ("PDL_Random: Set 1 -> all (epoch 3)", "PDL_Random: Dice check (epoch 1), before its checkpoint",
         "PDL_Random: checkpoint write (after epoch 4)")


def combinations() -> list[Combination]:
    """Every trainer family at the phases that matter for it (the quick ones, QUICK, run in the test suite).
    Mid-epoch kills of PGPS Performance, RPSS, Finetune and the architecture trainers are also tests of their own
    (tests/test_nnunet_pgps_trainers.py, test_transfer_e2e.py, test_nnunet_architectures_e2e.py)."""
    c = Combination
    return [
        c("nnUNetTrainer_PGPS_Efficiency", PGPS_KNOBS, before_first_checkpoint()),
        c("nnUNetTrainer_PGPS_Efficiency", PGPS_KNOBS, checkpoint_write(2)),
        c("nnUNetTrainer_PGPS_Efficiency", PGPS_KNOBS, stage_switch(5)),
        c("nnUNetTrainer_PGPS_Performance", PGPS_KNOBS, stage_switch(3)),
        c("nnUNetTrainer_RPSS", RPSS_KNOBS, checkpoint_write(3)),
        c("nnUNetTrainer_PDL_Random", PDL_KNOBS, mid_epoch(1)),
        c("nnUNetTrainer_PDL_Random", PDL_KNOBS, set1_to_all(3)),
        c("nnUNetTrainer_PDL_Random", PDL_KNOBS, dice_check(1)),
        c("nnUNetTrainer_PDL_Random", PDL_KNOBS, checkpoint_write(4)),
        c("nnUNetTrainer_StopAtDice", STOP_KNOBS, dice_check(2)),
        c("nnUNetTrainer_StopAtDice", TARGET_KNOBS, target_reached()),
        c("nnUNetTrainer_ConstantPatch", VALIDATING_KNOBS, final_validation()),
        c("nnUNetTrainer_Finetune", FINETUNE_KNOBS, phase_change(2), pretrained=True),
        c("nnUNetTrainer_Finetune_HeadFirst", HEAD_FIRST_KNOBS, phase_change(3), pretrained=True),
        c("nnUNetTrainer_Finetune_FrozenEncoder", FROZEN_KNOBS, phase_change(2), pretrained=True),
        c("nnUNetTrainer_TinyUNETR_PGPS_Efficiency", ARCHITECTURE_KNOBS, stage_switch(2)),
        # second run (2026-12-07): mid-epoch kills of the families without a test of their own, checkpoint writes
        # of the families the first run left out
        c("nnUNetTrainer_PGPS_Efficiency", PGPS_KNOBS, mid_epoch(3)),
        c("nnUNetTrainer_PGPS_Performance", PGPS_KNOBS, checkpoint_write(4)),
        c("nnUNetTrainer_StopAtDice", STOP_KNOBS, mid_epoch(3)),
        c("nnUNetTrainer_StopAtDice", STOP_KNOBS, checkpoint_write(1)),
        c("nnUNetTrainer_Finetune", FINETUNE_KNOBS, checkpoint_write(1), pretrained=True),
        c("nnUNetTrainer_Finetune_HeadFirst", HEAD_FIRST_KNOBS, mid_epoch(2), pretrained=True),
        c("nnUNetTrainer_Finetune_FrozenEncoder", FROZEN_KNOBS, checkpoint_write(2), pretrained=True),
        c("nnUNetTrainer_TinyUNETR_PGPS_Efficiency", ARCHITECTURE_KNOBS, checkpoint_write(3)),
        c("nnUNetTrainer_TinyUNETR_PGPS_Efficiency", ARCHITECTURE_KNOBS, mid_epoch(4)),
        c("nnUNetTrainer_RPSS", RPSS_KNOBS, mid_epoch(5)),
        c("nnUNetTrainer_PGPS_Performance", PGPS_KNOBS, before_first_checkpoint()),
        c("nnUNetTrainer_PDL_Random", PDL_KNOBS, before_first_checkpoint()),
        c("nnUNetTrainer_StopAtDice", STOP_KNOBS, before_first_checkpoint()),
        c("nnUNetTrainer_Finetune_HeadFirst", HEAD_FIRST_KNOBS, checkpoint_write(2), pretrained=True),
        c("nnUNetTrainer_Finetune_FrozenEncoder", FROZEN_KNOBS, mid_epoch(3), pretrained=True),
        # third run (2026-12-07): Dice checks of StopAtDice other than epoch 2, RPSS with a Dice target, stage
        # switches of the Performance architecture trainers (RPSS has no stages: its patch is drawn per batch)
        c("nnUNetTrainer_StopAtDice", STOP_KNOBS, dice_check(0)),
        c("nnUNetTrainer_StopAtDice", STOP_KNOBS, dice_check(4)),
        c("nnUNetTrainer_RPSS_StopAtDice", STOP_RPSS_KNOBS, dice_check(3)),
        c("nnUNetTrainer_TinyUNETR_PGPS_Performance", ARCHITECTURE_KNOBS, stage_switch(4)),  # stages at 0, 2, 4
        c("nnUNetTrainer_TinyPrimus_PGPS_Performance", PGPS_KNOBS, stage_switch(5)),  # stride 8: 9 stages
        # fourth run (2026-12-07): a stage switch of SwinUNETR, which needs a plan of 64^3 for more than one stage
        c("nnUNetTrainer_TinySwinUNETR_PGPS_Performance", SWIN_KNOBS, stage_switch(1), preset="demo"),
    ]


# --- watching and killing a real nnUNetv2_train ---------------------------------------------------------------------

class FolderWatch:
    """inotify on folders (Linux): ``wait`` returns as soon as a file in one changes, or after ``timeout``."""

    IN_MODIFY, IN_CREATE, IN_MOVED_TO = 0x2, 0x100, 0x80

    def __init__(self):
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        self._watched: set[Path] = set()

    def add(self, folder: Path) -> None:
        if folder not in self._watched and folder.is_dir():
            mask = self.IN_MODIFY | self.IN_CREATE | self.IN_MOVED_TO
            if self._libc.inotify_add_watch(self._fd, str(folder).encode(), mask) >= 0:
                self._watched.add(folder)

    def wait(self, timeout: float) -> None:
        if select.select([self._fd], [], [], timeout)[0]:
            try:
                while os.read(self._fd, 65536):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        os.close(self._fd)


@dataclass
class Outcome:
    name: str
    trainer: str
    phase: str
    hit: str | None = None  # what the training was doing when stopped
    left_alive: list[str] = field(default_factory=list)
    left_files: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.hit) and not (self.left_alive or self.left_files or self.differences or self.error)


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in map(int, (task / "children").read_text().split()):
                found |= {child} | _descendants(child)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
    except FileNotFoundError:
        return ""


def kill_at(command: Sequence[str], env: dict[str, str], log: Path, fold: Path, phase: Phase,
            timeout: float = 1800) -> tuple[str | None, list[str]]:
    """Start ``command`` (output to ``log``), SIGSTOP it when ``phase`` is reached, then SIGKILL the training process
    alone; (what was hit or None, the processes below it still running 30 s later)."""
    from nnunet_progressive.nnunet.orchestration.runner import ends_with_this_process

    log.parent.mkdir(parents=True, exist_ok=True)
    start = log.stat().st_size if log.exists() else 0
    watch = FolderWatch()
    watch.add(log.parent)
    with open(log, "a") as handle:
        process = subprocess.Popen(list(command), env=env, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=ends_with_this_process())
    below: set[int] = set()
    try:
        deadline = time.time() + timeout
        while True:
            watch.add(fold)
            with open(log) as handle:
                handle.seek(start)
                observation = Observation(handle.read(), fold)
            if phase.reached(observation):
                os.kill(process.pid, signal.SIGSTOP)
                hit = phase.inside(observation)  # looked at with the training stopped
                if hit is not None or not phase.again:
                    break
                os.kill(process.pid, signal.SIGCONT)  # stopped just after the moment: wait for its next time
            if process.poll() is not None:
                raise RuntimeError(f"the run ended (exit {process.returncode}) before {phase.name}")
            if time.time() > deadline:
                raise TimeoutError(f"{phase.name} not reached in {timeout} s")
            watch.wait(0.05)
        below = _descendants(process.pid)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.time() + 30
        while any(_alive(p) for p in below) and time.time() < deadline:
            time.sleep(0.1)
        return hit, [f"{p} {_command_line(p)}" for p in sorted(below) if _alive(p)]
    finally:
        watch.close()
        for pid in {process.pid} | below:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()


def fold_records(fold: Path, num_epochs: int, training_cases: Sequence[str]) -> list[dict]:
    """The epoch records of a finished fold (see :func:`epoch_records`), then how it ended."""
    import torch

    final = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    done = int(final["current_epoch"])
    checks_file = fold / "time_to_dice.json"
    checks = json.loads(checks_file.read_text()) if checks_file.exists() else {}
    records = epoch_records([p.read_text() for p in sorted(fold.glob("training_log_*.txt"))],
                            final["logging"]["lrs"], min(done, num_epochs), checks.get("checks", []),
                            training_cases)
    summary = {"epoch": "end", "epochs_done": done, "stopped_by": checks.get("stopped_by"),
               "validated": (fold / "validation" / "summary.json").is_file()}
    return [*records, summary]


class Matrix:
    """Runs combinations on one planned tiny dataset; uninterrupted reference runs are shared by knob set."""

    def __init__(self, workspace, root: Path):
        self.ws = workspace  # tests/conftest.py's Workspace or the script's own
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._references: dict[tuple, list[dict]] = {}
        self._pretrained: Path | None = None

    def _run(self, trainer: str, knobs: dict[str, str], results: Path):
        from nnunet_progressive.nnunet.orchestration.runner import TrainingRun

        return TrainingRun(str(self.ws.dataset_id), "3d_fullres", 0, trainer, self.ws.plans, knobs=knobs), replace(
            self.ws.folders, results=results)

    def pretrained(self) -> Path:
        """checkpoint_final.pth of a one-epoch ConstantPatch run: the fine-tuning trainers' pre-trained weights."""
        from nnunet_progressive.nnunet.orchestration.runner import train

        if self._pretrained is None:
            run, folders = self._run("nnUNetTrainer_ConstantPatch", _knobs(epochs=1), self.root / "pretrained")
            train(run, folders, self.root / "pretrained.log")
            self._pretrained = run.output_folder(folders, self.ws.dataset_name) / "checkpoint_final.pth"
        return self._pretrained

    def _extra(self, combination: Combination) -> list[str]:
        return ["-pretrained_weights", str(self.pretrained())] if combination.pretrained else []

    def _records(self, fold: Path, combination: Combination) -> list[dict]:
        splits = self.ws.folders.preprocessed / self.ws.dataset_name / "splits_final.json"
        return fold_records(fold, int(combination.knobs["NNPROG_EPOCHS"]), json.loads(splits.read_text())[0]["train"])

    def reference(self, combination: Combination) -> list[dict]:
        from nnunet_progressive.nnunet.orchestration.runner import train

        key = combination.reference_key
        if key not in self._references:
            index = len(self._references)
            run, folders = self._run(combination.trainer, combination.knobs, self.root / f"reference_{index}")
            train(run, folders, self.root / f"reference_{index}.log", extra=self._extra(combination))
            self._references[key] = self._records(run.output_folder(folders, self.ws.dataset_name), combination)
        return self._references[key]

    def run(self, combination: Combination, index: int) -> Outcome:
        from nnunet_progressive.nnunet.orchestration.runner import run_environment, train

        outcome = Outcome(combination.name, combination.trainer, combination.phase.name)
        began = time.perf_counter()
        try:
            reference = self.reference(combination)
            run, folders = self._run(combination.trainer, combination.knobs, self.root / f"killed_{index}")
            fold = run.output_folder(folders, self.ws.dataset_name)
            log = self.root / f"killed_{index}.log"
            command = run.command(self._extra(combination))
            outcome.hit, outcome.left_alive = kill_at(command, run_environment(folders, run.knobs), log, fold,
                                                      combination.phase)
            fresh = replace(run, knobs={})  # a fresh shell: no knob of the run
            train(fresh, folders, log, extra=["--c"])
            outcome.left_files = [p.name for p in fold.iterdir() if p.name.endswith(".tmp")]
            outcome.differences = differences(reference, self._records(fold, combination))
        except Exception as error:  # noqa: BLE001 (a failed combination is a row of the table)
            outcome.error = f"{type(error).__name__}: {str(error)[-1500:]}"
        outcome.seconds = time.perf_counter() - began
        return outcome


def markdown_table(outcomes: Sequence[Outcome]) -> str:
    rows = ["| trainer | killed at | stopped inside the phase | resumed run vs uninterrupted | left behind |",
            "|---|---|---|---|---|"]
    for o in outcomes:
        same = "error: " + o.error.splitlines()[0] if o.error else (
            "equal, every epoch" if not o.differences else "; ".join(o.differences[:3]))
        left = ", ".join(o.left_alive + o.left_files) or "nothing"
        rows.append(f"| {o.trainer.removeprefix('nnUNetTrainer_')} | {o.phase} | {o.hit or 'NO (too late)'} | "
                    f"{same} | {left} |")
    passed = sum(o.passed for o in outcomes)
    return "\n".join(rows) + f"\n\n{passed} of {len(outcomes)} combinations pass.\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", required=True, type=Path, help="a new or earlier workspace folder")
    parser.add_argument("--only", nargs="*", default=None, help="combination names (as the table prints them)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="markdown table (default: in workspace)")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from nnunet_progressive.datasets.prepare import SMALL_PLANS, prepare_generated_dataset
    from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders

    @dataclass(frozen=True)
    class Planned:
        folders: NnunetFolders
        dataset_id: int
        dataset_name: str
        plans: str = SMALL_PLANS

    root = args.workspace.resolve()
    folders = NnunetFolders.under(root / "data")
    every = combinations()
    chosen = [c for c in every if args.only is None or c.name in args.only]
    unknown = sorted(set(args.only or ()) - {c.name for c in every})
    if unknown:
        parser.error(f"--only: no combination named {', '.join(map(repr, unknown))} (names as the table prints them)")
    matrices: dict[str, Matrix] = {}
    for preset in dict.fromkeys(c.preset for c in chosen):  # the datasets the chosen combinations need
        dataset_id, features = DATASETS[preset]
        plan_log = root / ("plan.log" if preset == "tiny3d" else f"plan_{preset}.log")
        name = prepare_generated_dataset(preset, dataset_id, folders, ("3d_fullres",), plan_log,
                                         features_per_stage=features)
        # tiny3d keeps runs/ (workspaces of the earlier runs); other datasets get a folder of their own
        matrices[preset] = Matrix(Planned(folders, dataset_id, name),
                                  root / ("runs" if preset == "tiny3d" else f"runs_{preset}"))
    outcomes = []
    for index, combination in enumerate(tqdm(chosen, desc="fault matrix", unit="kill")):
        outcomes.append(matrices[combination.preset].run(combination, index))
        tqdm.write(f"{'pass' if outcomes[-1].passed else 'FAIL'}  {combination.name}  "
                   f"({outcomes[-1].seconds:.0f} s) {outcomes[-1].error or '; '.join(outcomes[-1].differences[:2])}")
    output = args.output or root / "fault_matrix.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(markdown_table(outcomes))
    output.with_suffix(".json").write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    print(markdown_table(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
