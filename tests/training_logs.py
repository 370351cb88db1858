"""Reading nnU-Net training logs in tests: which line matched in which epoch (resumed runs included)."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders, TrainingRun, train

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


def interrupt_at_epoch(run: TrainingRun, folders: NnunetFolders, dataset_name: str, log: Path,
                       epoch: int) -> tuple[Path, int | None]:
    """Train ``run`` and kill it once epoch ``epoch`` has started; (fold folder, the epoch ``--c`` resumes at, from
    the latest checkpoint's sidecar, None without one). The run must not have finished."""
    train(run, folders, log, stop_when=lambda text: re.search(rf": Epoch {epoch}\s*$", text, re.M) is not None)
    fold = run.output_folder(folders, dataset_name)
    assert not (fold / "checkpoint_final.pth").exists(), "the run must have been interrupted"
    sidecar = fold / "checkpoint_latest.pth.nnprog.json"
    return fold, json.loads(sidecar.read_text())["current_epoch"] if sidecar.is_file() else None


def poly_learning_rates(num_epochs: int) -> list[float]:
    """The learning rate nnU-Net's PolyLRScheduler gives each epoch of an uninterrupted run."""
    import torch
    from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    scheduler = PolyLRScheduler(optimizer, 0.01, num_epochs)
    rates = []
    for epoch in range(num_epochs):
        scheduler.step(epoch)
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def one_start_error(result: subprocess.CompletedProcess) -> str:
    """The single error line of a failed start (no traceback)."""
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("nnUNetv2_train: error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def everything_under(folder: Path) -> list[str]:
    """Every path below ``folder``, relative and sorted ([] if it does not exist): what a refused start left."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def seeded_knobs(seed: int) -> dict[str, str]:
    """Knobs of a reproducible CPU run: ``NNPROG_SEED`` with sampling and augmentation in the seeded training
    process (``nnUNet_n_proc_DA=0``; nnU-Net's workers draw their own seeds). For tests whose assertions need the
    network to learn: an unseeded run can stay at all background for its few iterations."""
    return {"NNPROG_SEED": str(seed), "nnUNet_n_proc_DA": "0"}
