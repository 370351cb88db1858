"""Training loaders that change between epochs (patch size, case subset) while validation stays put.

Each mixin that changes the training data extends ``_stage_key`` (what identifies the loader an epoch
needs) and ``_make_training_augmenter`` (wrap the build in a context that changes the configuration), or
``_make_training_loader`` (a different data loader). The build is the training half of nnU-Net's own
``get_dataloaders()`` (the trainer's transforms, datasets and augmenter; no validation loader is started).
"""
from __future__ import annotations

from time import perf_counter

import torch

from nnunet_progressive.nnunet.hooks.loaders import shutdown_augmenter, training_augmenter, training_loader
from nnunet_progressive.nnunet.hooks.run_state import RunLengthMixin


class StagedTrainingLoaderMixin(RunLengthMixin):
    """Rebuilds ``dataloader_train`` at the start of an epoch whose stage key differs from the last."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._active_stage_key: tuple | None = None
        self._switch_seconds: dict[str, float] = {}  # epoch -> seconds its loader rebuild took

    def _stage_key(self, epoch: int) -> tuple:
        """Identifies the training loader ``epoch`` needs; extend with ``super()._stage_key(epoch) + (...)``."""
        return ()

    def _stage_log_parts(self, epoch: int) -> list[str]:
        """Text describing ``epoch``'s stage, one part per mixin."""
        return []

    def _make_training_augmenter(self, epoch: int):
        """nnU-Net's training augmenter as the configuration stands now (mixins wrap this in contexts)."""
        return training_augmenter(self, self._make_training_loader())

    def _make_training_loader(self):
        """nnU-Net's training data loader as the configuration stands now (mixins may draw batches otherwise)."""
        return training_loader(self)

    def ensure_training_stage(self, epoch: int) -> None:
        """Give ``self.dataloader_train`` the data of ``epoch``'s stage (rebuilt only when it changes)."""
        key = self._stage_key(epoch)
        if key == self._active_stage_key:
            return
        start = perf_counter()
        shutdown_augmenter(self.dataloader_train)  # first: one training worker pool at a time, never two
        self.dataloader_train = self._make_training_augmenter(epoch)
        self._active_stage_key = key
        seconds = perf_counter() - start
        self._switch_seconds[str(epoch)] = seconds
        self.print_to_log_file(
            f"Training loader rebuilt for epoch {epoch} in {seconds:.2f} s: {' | '.join(self._stage_log_parts(epoch))}"
        )

    def on_train_epoch_start(self):
        self.ensure_training_stage(self.current_epoch)
        super().on_train_epoch_start()

    def progressive_state(self) -> dict:
        state = super().progressive_state()
        state["switch_seconds"] = dict(self._switch_seconds)
        return state

    def restore_progressive_state(self, state: dict) -> None:
        super().restore_progressive_state(state)
        self._switch_seconds = {
            k: float(v) for k, v in state.get("switch_seconds", {}).items() if int(k) < self.current_epoch
        }
