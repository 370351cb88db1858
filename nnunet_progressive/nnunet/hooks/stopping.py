"""Stop training when the validation Dice reaches a target; log time-to-Dice for any trainer.

Every ``NNPROG_CHECK_EVERY`` epochs (and after the last) the Dice of the fold's validation cases is
measured, by default with nnU-Net's own sliding-window predictor on the preprocessed cases (no test-time
mirroring, Dice in the preprocessed voxel grid; the final validation additionally resamples to the
original spacing), or cheaply with the epoch's pseudo-Dice (``NNPROG_DICE_METHOD=pseudo_dice``: random
validation patches, not the final Dice). A check runs at the end of its epoch, before nnU-Net checkpoints
it (a resumed run keeps every check), and its time is not counted as training time. When the Dice reaches
``NNPROG_TARGET_DICE`` training ends as if the last epoch had been reached (checkpoint_final, then nnU-Net's
final validation); ``NNPROG_EPOCHS`` always caps the run. A run that ended stays ended under ``--c``.
"""
from __future__ import annotations

import os
import warnings
from time import perf_counter, time

import numpy as np
import torch

from nnunet_progressive.core.knobs import STOP_AT_DICE
from nnunet_progressive.core.records import TIME_TO_DICE_JSON, DiceCheck, TimeToDice, write_record
from nnunet_progressive.nnunet.hooks.run_state import RunLengthMixin
from nnunet_progressive.stopping.dice import aggregate_dice, dice_from_counts, is_check_epoch, reached


class _TargetDiceReached(Exception):
    """Raised after the epoch in which the target was reached; ends nnU-Net's epoch loop."""


def sliding_window_validation_dice(trainer) -> tuple[float, list[float]]:
    """Mean foreground Dice and Dice per class/region of the fold's validation cases, current weights."""
    from nnunetv2.evaluation.evaluate_predictions import compute_tp_fp_fn_tn, region_or_label_to_mask
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot

    label_manager = trainer.label_manager
    regions_or_labels = (label_manager.foreground_regions if label_manager.has_regions
                         else label_manager.foreground_labels)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=trainer.device.type == "cuda", device=trainer.device,
                                verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    predictor.manual_initialization(trainer.network, trainer.plans_manager, trainer.configuration_manager, None,
                                    trainer.dataset_json, trainer.__class__.__name__,
                                    trainer.inference_allowed_mirroring_axes)
    _, val_keys = trainer.do_split()
    dataset = trainer.dataset_class(trainer.preprocessed_dataset_folder, val_keys,
                                    folder_with_segs_from_previous_stage=trainer.folder_with_segs_from_previous_stage)
    trainer.set_deep_supervision_enabled(False)
    per_case = []
    try:
        with torch.no_grad():
            for key in dataset.identifiers:
                data, seg, seg_prev, _ = dataset.load_case(key)
                data = np.asarray(data[:])
                if trainer.is_cascaded:
                    data = np.vstack((data, convert_labelmap_to_one_hot(seg_prev[:], label_manager.foreground_labels,
                                                                        output_dtype=data.dtype)))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    logits = predictor.predict_sliding_window_return_logits(torch.from_numpy(data))
                prediction = label_manager.convert_logits_to_segmentation(logits.float().cpu()).numpy()
                reference = np.asarray(seg[:])[0]
                ignore = reference == label_manager.ignore_label if label_manager.has_ignore_label else None
                row = []
                for region_or_label in regions_or_labels:
                    tp, fp, fn, _ = compute_tp_fp_fn_tn(region_or_label_to_mask(reference, region_or_label),
                                                        region_or_label_to_mask(prediction, region_or_label), ignore)
                    row.append(dice_from_counts(tp, fp, fn))
                per_case.append(row)
    finally:
        trainer.set_deep_supervision_enabled(trainer.enable_deep_supervision)
        trainer.network.train()
    return aggregate_dice(per_case)


class StopAtDiceMixin(RunLengthMixin):
    """Put first in the bases (see the hook order in :mod:`.run_state`) to log and stop at a target Dice."""

    @classmethod
    def knob_features(cls) -> frozenset[str]:
        return super().knob_features() | {STOP_AT_DICE}

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._dice_checks: list[dict] = []

    def _measure_dice(self) -> tuple[float, list[float]]:
        if self.progressive_settings.dice_method == "pseudo_dice":
            epoch = self.current_epoch
            per_class = [float(d) for d in self.logger.get_value("dice_per_class_or_region", step=epoch)]
            return float(self.logger.get_value("mean_fg_dice", step=epoch)), per_class
        return sliding_window_validation_dice(self)

    def _check_dice(self) -> None:
        """The Dice check of the epoch that just trained (before nnU-Net checkpoints it); its time is untimed."""
        epoch = self.current_epoch
        settings = self.progressive_settings
        if not is_check_epoch(epoch, settings.check_every, self.num_epochs):
            return
        trained_until = time()  # the epoch's training and validation steps are done; nnU-Net logs its end later
        start = perf_counter()
        dice, per_class = self._measure_dice()
        check_seconds = perf_counter() - start
        self.add_untimed_seconds(epoch, check_seconds)
        starts, _ = self.epoch_timestamps()
        self._dice_checks.append(DiceCheck(
            epoch=epoch,
            train_wall_seconds=float(sum(self.epoch_training_seconds()[:epoch]) + trained_until - starts[epoch]),
            check_seconds=check_seconds,
            dice=dice,
            dice_per_class=per_class,
            stage=self.training_data_label(epoch),
        ).to_json())
        target = settings.target_dice
        self.print_to_log_file(
            f"Validation Dice check ({settings.dice_method}) after epoch {epoch}: {dice:.4f} "
            f"{[round(d, 4) for d in per_class]}" + (f" | target {target}" if target is not None else "")
        )

    def on_epoch_end(self):
        self._check_dice()
        super().on_epoch_end()  # logs the epoch's end time, checkpoints (with the check), current_epoch += 1
        finished = self.current_epoch - 1
        if not self._dice_checks or self._dice_checks[-1]["epoch"] != finished:
            return
        target = self.progressive_settings.target_dice
        hit = target is not None and self._dice_checks[-1]["dice"] >= target
        if self.is_ddp:
            import torch.distributed as dist

            decision = [hit]
            dist.broadcast_object_list(decision, src=0)
            hit = decision[0]
        self._write_time_to_dice(stopped_by="target" if hit else None)
        if hit and self.current_epoch < self.num_epochs:
            self.print_to_log_file(f"Target Dice {target} reached after epoch {finished}: stopping training.")
            raise _TargetDiceReached()

    def run_training(self):
        try:
            super().run_training()
        except _TargetDiceReached:
            self.on_train_end()  # checkpoint_final and loader shutdown, as at the last epoch

    def on_train_start(self):
        super().on_train_start()
        hit = reached(self._dice_checks, self.progressive_settings.target_dice)
        if hit is not None and self.current_epoch < self.num_epochs:  # --c of a run killed before checkpoint_final
            self.print_to_log_file(f"Target Dice {self.progressive_settings.target_dice} was reached after epoch "
                                   f"{hit['epoch']}, before the run was interrupted: ending it as it would have ended.")
            raise _TargetDiceReached()

    def on_train_end(self):
        super().on_train_end()
        stopped_by = "target" if reached(self._dice_checks, self.progressive_settings.target_dice) else "max_epochs"
        self._write_time_to_dice(stopped_by=stopped_by)

    def _write_time_to_dice(self, stopped_by: str | None) -> None:
        if self.local_rank != 0:
            return
        settings = self.progressive_settings
        record = TimeToDice(trainer=self.__class__.__name__, target_dice=settings.target_dice,
                            check_every=settings.check_every, method=settings.dice_method, checks=self._dice_checks,
                            reached=reached(self._dice_checks, settings.target_dice), stopped_by=stopped_by)
        write_record(os.path.join(self.output_folder, TIME_TO_DICE_JSON), record)

    def progressive_state(self) -> dict:
        state = super().progressive_state()
        state["dice_checks"] = list(self._dice_checks)
        return state

    def restore_progressive_state(self, state: dict) -> None:
        super().restore_progressive_state(state)
        self._dice_checks = [c for c in state.get("dice_checks", []) if c["epoch"] < self.current_epoch]
