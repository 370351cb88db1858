"""Run length (epochs, iterations, checkpoint interval) from NNPROG_* knobs, kept across `--c`."""
from __future__ import annotations

import json
import os
from pathlib import Path
from time import perf_counter

import torch

from nnunet_progressive.core.io import atomic_write_json
from nnunet_progressive.core.knobs import ProgressiveSettings, settings_from_env
from nnunet_progressive.core.records import RUN_SUMMARY_JSON, checkpoint_state_path


def sidecar_path(checkpoint_file: str) -> str:
    """Where a checkpoint's nnunet-progressive state lives (nnU-Net's checkpoint format stays stock)."""
    return str(checkpoint_state_path(checkpoint_file))


class RunLengthMixin:
    """Applies ``default_settings`` + NNPROG_* variables to an nnUNetTrainer and restores them on `--c`.

    Subclasses add state by extending ``progressive_state`` / ``restore_progressive_state``; the state is
    written next to every checkpoint as ``<checkpoint>.nnprog.json`` (atomically, after the checkpoint).
    """

    default_settings = ProgressiveSettings()

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.progressive_settings = settings_from_env(self.default_settings)
        self._apply_run_length()
        self._train_seconds: dict[int, float] = {}  # epoch -> seconds of its training iterations
        self._epoch_train_start = 0.0

    def _apply_run_length(self) -> None:
        settings = self.progressive_settings
        if settings.epochs is not None:
            self.num_epochs = settings.epochs
        if settings.iterations is not None:
            self.num_iterations_per_epoch = settings.iterations
        if settings.val_iterations is not None:
            self.num_val_iterations_per_epoch = settings.val_iterations
        if settings.save_every is not None:
            self.save_every = settings.save_every

    # --- timing of the training iterations (validation, checkpoints and plots excluded) ---------------
    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._epoch_train_start = perf_counter()

    def on_train_epoch_end(self, train_outputs):
        self._train_seconds[self.current_epoch] = perf_counter() - self._epoch_train_start
        super().on_train_epoch_end(train_outputs)

    # --- state kept beside checkpoints -------------------------------------------------------------
    def progressive_state(self) -> dict:
        """What `--c` needs besides nnU-Net's checkpoint. Extend in subclasses (call super)."""
        from nnunet_progressive import __version__

        return {
            "package_version": __version__,
            "trainer": self.__class__.__name__,
            "current_epoch": self.current_epoch + 1,  # as nnU-Net stores it: the next epoch to train
            "settings": self.progressive_settings.to_dict(),
            "train_seconds": {str(k): v for k, v in self._train_seconds.items()},
        }

    def restore_progressive_state(self, state: dict) -> None:
        """Continue with the settings the run started with, whatever the environment says now."""
        saved = ProgressiveSettings.from_dict(state.get("settings", {}))
        differences = self.progressive_settings.differences(saved)
        if differences:
            listed = ", ".join(f"{k}: now {now!r}, run {run!r}" for k, (now, run) in differences.items())
            self.print_to_log_file(
                f"WARNING: NNPROG settings differ from the run being continued ({listed}). Continuing with "
                f"the run's own settings so its schedule stays the same; start a new run to change them."
            )
        self.progressive_settings = saved
        self._apply_run_length()
        self._train_seconds = {
            int(k): float(v) for k, v in state.get("train_seconds", {}).items() if int(k) < self.current_epoch
        }

    def save_checkpoint(self, filename: str) -> None:
        super().save_checkpoint(filename)
        if self.local_rank == 0 and not self.disable_checkpointing:
            atomic_write_json(sidecar_path(filename), self.progressive_state())

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        super().load_checkpoint(filename_or_checkpoint)
        if not isinstance(filename_or_checkpoint, str):
            return
        path = Path(sidecar_path(filename_or_checkpoint))
        if not path.is_file():
            self.print_to_log_file(
                f"WARNING: {path.name} not found next to the checkpoint; continuing with the current "
                f"NNPROG settings (the schedule is the same if they equal the original run's)."
            )
            return
        self.restore_progressive_state(json.loads(path.read_text()))

    def on_train_end(self) -> None:
        super().on_train_end()
        # nnU-Net deletes checkpoint_latest.pth at the end of training; its sidecar goes with it
        if self.local_rank == 0:
            latest = sidecar_path(os.path.join(self.output_folder, "checkpoint_latest.pth"))
            if os.path.isfile(latest):
                os.remove(latest)
            atomic_write_json(os.path.join(self.output_folder, RUN_SUMMARY_JSON), self.run_summary())

    def run_summary(self) -> dict:
        """run_summary.json: what a benchmark compares (time, epochs, memory, environment)."""
        from importlib.metadata import version

        from nnunet_progressive import __version__

        starts = self.logger.get_value("epoch_start_timestamps", step=None)
        ends = self.logger.get_value("epoch_end_timestamps", step=None)
        cuda = self.device.type == "cuda"
        return {
            "trainer": self.__class__.__name__,
            "package_version": __version__,
            "nnunetv2_version": version("nnunetv2"),
            "torch_version": torch.__version__,
            "device": str(self.device),
            "gpu_name": torch.cuda.get_device_name(self.device) if cuda else None,
            "epochs_done": min(len(starts), len(ends)),
            "num_epochs": self.num_epochs,
            "num_iterations_per_epoch": self.num_iterations_per_epoch,
            "train_wall_seconds": float(sum(e - s for s, e in zip(starts, ends))),
            "train_iteration_seconds": float(sum(self._train_seconds.values())),
            "peak_gpu_memory_bytes": int(torch.cuda.max_memory_allocated(self.device)) if cuda else None,
            "settings": self.progressive_settings.to_dict(),
        }
