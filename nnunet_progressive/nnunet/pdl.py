"""The nnU-Net hooks of Progressive DL (PDL): Set 1 alone for a number of epochs, then all cases.

Set 1 is chosen from the fold's training cases only (validation cases are never part of it) by
:func:`nnunet_progressive.pdl.subsets.select_set1` from the ranking ``nnprog rank`` wrote. The training
loader of stage 1 is nnU-Net's own, built on a dataset restricted to Set 1; stage 2 uses the fold's
training cases as nnU-Net would. Stopping at a target Dice comes from :class:`StopAtDiceMixin`.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.nnunet.staged_loader import StagedTrainingLoaderMixin
from nnunet_progressive.nnunet.stopping import StopAtDiceMixin
from nnunet_progressive.pdl.subsets import select_set1


def load_ranking_order(ranking_file: Path, all_case_ids: list[str], rank_command: str) -> list[str]:
    """The ranking's case order (most dissimilar first) after checking it matches the dataset's cases."""
    from nnunet_progressive.pdl.similarity.compare import case_list_fingerprint

    if not ranking_file.is_file():
        raise ProgressiveConfigError(
            f"no similarity ranking at {ranking_file}; PDL needs one. Run:\n    {rank_command}"
        )
    ranking = json.loads(ranking_file.read_text())
    if ranking.get("case_list_fingerprint") != case_list_fingerprint(all_case_ids):
        raise ProgressiveConfigError(
            f"the similarity ranking {ranking_file} was made for a different case list "
            f"({len(ranking.get('case_ids', []))} cases ranked, {len(all_case_ids)} preprocessed now); "
            f"it is stale. Run again:\n    {rank_command}"
        )
    return list(ranking["order"])


class ProgressiveDataMixin(StopAtDiceMixin, StagedTrainingLoaderMixin):
    """Put before ``nnUNetTrainer`` (or before ProgressivePatchMixin) to train Set 1 first, then all cases."""

    pdl_order = "dissimilar_first"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._check_pdl_settings()
        self._set1: list[str] | None = None
        self._training_case_subset: list[str] | None = None
        self._cases_seen: set[str] = set()

    def _check_pdl_settings(self) -> None:
        if self.progressive_settings.set1_epochs >= self.num_epochs:
            raise ProgressiveConfigError(
                f"NNPROG_SET1_EPOCHS={self.progressive_settings.set1_epochs} leaves no epoch for all cases "
                f"within {self.num_epochs} epochs; lower it or raise NNPROG_EPOCHS"
            )

    def _pdl_stage(self, epoch: int) -> int:
        return 0 if epoch < self.progressive_settings.set1_epochs else 1

    def rank_command(self) -> str:
        return (f"nnprog rank -d {self.plans_manager.dataset_name} -c {self.configuration_name} "
                f"-p {self.plans_manager.plans_name}")

    def ranking_file(self) -> Path:
        from nnunet_progressive.nnunet.pdl_ranking import default_output_path

        chosen = self.progressive_settings.ranking
        if chosen:
            return Path(chosen)
        return default_output_path(self.preprocessed_dataset_folder_base, self.configuration_name)

    def set1_cases(self) -> list[str]:
        """This fold's Set 1 (computed once)."""
        if self._set1 is None:
            training_ids, _ = self.do_split()
            ranking_order = None
            if self.pdl_order != "random":
                all_ids = list(self.dataset_class.get_identifiers(self.preprocessed_dataset_folder))
                ranking_order = load_ranking_order(self.ranking_file(), all_ids, self.rank_command())
            self._set1 = select_set1(list(training_ids), self.progressive_settings.set1_share, self.pdl_order,
                                     ranking_order, self.progressive_settings.pdl_seed)
        return list(self._set1)  # a copy: nnU-Net's dataset classes sort identifier lists in place

    # --- staged loader ---------------------------------------------------------------------------------
    def _stage_key(self, epoch: int) -> tuple:
        return super()._stage_key(epoch) + (("pdl", self._pdl_stage(epoch)),)

    def _data_stage_label(self, epoch: int) -> str:
        return "set1" if self._pdl_stage(epoch) == 0 else "all"

    def _stage_log_parts(self, epoch: int) -> list[str]:
        if self._pdl_stage(epoch) == 0:
            text = (f"PDL stage 1/2: Set 1 ({self.pdl_order}) = {len(self.set1_cases())} training cases "
                    f"{self.set1_cases()}")
        else:
            text = "PDL stage 2/2: all training cases of the fold"
        return super()._stage_log_parts(epoch) + [text]

    def _make_training_augmenter(self, epoch: int):
        self._training_case_subset = self.set1_cases() if self._pdl_stage(epoch) == 0 else None
        try:
            return super()._make_training_augmenter(epoch)
        finally:
            self._training_case_subset = None

    def get_tr_and_val_datasets(self):
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        if self._training_case_subset is not None:
            dataset_tr = self.dataset_class(self.preprocessed_dataset_folder, self._training_case_subset,
                                            folder_with_segs_from_previous_stage=self.folder_with_segs_from_previous_stage)
        return dataset_tr, dataset_val

    # --- nnU-Net hooks ---------------------------------------------------------------------------------
    def on_train_start(self):
        if self.dataset_class is None:
            from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

            self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
        self.set1_cases()  # a missing or stale ranking stops here, before any worker starts
        super().on_train_start()

    def train_step(self, batch: dict) -> dict:
        self._cases_seen.update(str(k) for k in batch["keys"])
        return super().train_step(batch)

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)
        stage = self._pdl_stage(self.current_epoch)
        self.print_to_log_file(f"PDL stage {stage + 1}/2 cases seen this epoch: {sorted(self._cases_seen)}")
        self._cases_seen = set()

    def progressive_state(self) -> dict:
        state = super().progressive_state()
        state["set1"] = self.set1_cases() if self._set1 is not None else None
        return state

    def restore_progressive_state(self, state: dict) -> None:
        super().restore_progressive_state(state)
        self._check_pdl_settings()
        if state.get("set1") is not None:
            self._set1 = list(state["set1"])  # the run continues with the Set 1 it started with
