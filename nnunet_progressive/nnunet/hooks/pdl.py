"""The nnU-Net hooks of Progressive DL (PDL): Set 1 alone for a number of epochs, then all cases.

Set 1 is chosen from the fold's training cases only (validation cases are never part of it) by
:func:`nnunet_progressive.pdl.subsets.select_set1` from the fold's ranking ``nnprog rank --fold F`` wrote (computed
from the fold's training cases only), in the order of ``NNPROG_RANKING_METRIC``, after checking that the ranking was
computed from this run's data (data identifier, spacing, fold, the fold's training case list). The training loader of
stage 1 is nnU-Net's own, built on a dataset restricted to Set 1; stage 2 uses the fold's training cases as
nnU-Net would. The PDL trainers stop at a target Dice because they also list :class:`StopAtDiceMixin`.
"""
from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import CASE_SUBSET, RANDOM_SUBSET, SIMILARITY_RANKING
from nnunet_progressive.core.records import SimilarityRanking, read_record
from nnunet_progressive.nnunet.hooks.staged_loader import StagedTrainingLoaderMixin
from nnunet_progressive.pdl.subsets import ranking_mismatches, select_set1


def load_ranking_order(ranking_file: Path, expected: Mapping[str, Any], rank_command: str,
                       metric: str = "combined") -> list[str]:
    """The ranking's case order by ``metric`` (most dissimilar first) after checking it was computed from
    ``expected``'s data: the fold's training cases (``expected["fold"]``, when given) of the same preprocessed data
    (see :func:`~nnunet_progressive.pdl.subsets.ranking_mismatches`); errors name ``rank_command``."""
    if not ranking_file.is_file():
        raise ProgressiveConfigError(
            f"no similarity ranking at {ranking_file}; PDL needs one. Run:\n    {rank_command}"
        )
    ranking = read_record(ranking_file, SimilarityRanking)
    if "fold" in expected and ranking.settings.get("fold") is None:
        raise ProgressiveConfigError(
            f"the similarity ranking {ranking_file} ranks all {len(ranking.case_ids)} preprocessed cases, the "
            f"validation cases of fold {expected['fold']} included (written before rankings were made per fold), so "
            f"Set 1 would depend on validation images. Rank the fold's training cases:\n    {rank_command}"
        )
    recorded = {**ranking.settings, "case_list_fingerprint": ranking.case_list_fingerprint,
                "num_cases": len(ranking.case_ids)}
    problems = ranking_mismatches(recorded, expected)
    if "fold" in expected and str(ranking.settings.get("fold")) != str(expected["fold"]):
        problems.insert(0, f"it ranks fold {ranking.settings.get('fold')}'s training cases, this run trains fold "
                           f"{expected['fold']}")
    if problems:
        raise ProgressiveConfigError(
            f"the similarity ranking {ranking_file} was not computed from this run's data: {'; '.join(problems)}; "
            f"it is stale. Run again:\n    {rank_command}"
        )
    if metric == "combined":
        return list(ranking.order)
    if metric not in ranking.orders:
        raise ProgressiveConfigError(
            f"the similarity ranking {ranking_file} has no order by {metric} (NNPROG_RANKING_METRIC; it holds "
            f"{sorted(ranking.orders) or ['combined']}); it was written by an older version. Run again:\n"
            f"    {rank_command}"
        )
    return list(ranking.orders[metric])


class ProgressiveDataMixin(StagedTrainingLoaderMixin):
    """Put after ``StopAtDiceMixin`` and before ``ProgressivePatchMixin`` / ``nnUNetTrainer`` in the bases to train
    Set 1 first, then all cases (the order is stated in :mod:`.run_state`)."""

    pdl_order = "dissimilar_first"

    @classmethod
    def knob_features(cls) -> frozenset[str]:
        features = super().knob_features() | {CASE_SUBSET}
        return features | ({RANDOM_SUBSET} if cls.pdl_order == "random" else {SIMILARITY_RANKING})

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._set1: list[str] | None = None
        self._training_case_subset: list[str] | None = None
        self._cases_seen: set[str] = set()

    def derive_from_settings(self) -> None:
        super().derive_from_settings()  # run length first: Set 1's epochs must leave epochs for all cases
        if self.progressive_settings.set1_epochs >= self.num_epochs:
            raise ProgressiveConfigError(
                f"NNPROG_SET1_EPOCHS={self.progressive_settings.set1_epochs} leaves no epoch for all cases "
                f"within {self.num_epochs} epochs; lower it or raise NNPROG_EPOCHS"
            )

    def _pdl_stage(self, epoch: int) -> int:
        return 0 if epoch < self.progressive_settings.set1_epochs else 1

    def rank_command(self) -> str:
        """The ``nnprog rank`` command that writes the ranking this trainer reads (this fold's)."""
        command = (f"nnprog rank -d {self.plans_manager.dataset_name} -c {self.configuration_name} "
                   f"-p {self.plans_manager.plans_name} --fold {self.fold}")
        chosen = self.progressive_settings.ranking
        return command + (f" -o {shlex.quote(chosen)}" if chosen else "")

    def ranking_file(self) -> Path:
        from nnunet_progressive.nnunet.offline.pdl_ranking import default_output_path

        chosen = self.progressive_settings.ranking
        if chosen:
            return Path(chosen)
        return default_output_path(self.preprocessed_dataset_folder_base, self.configuration_manager.data_identifier,
                                   self.fold)

    def ranking_source(self, training_ids: list[str]) -> dict[str, Any]:
        """What a ranking for this run must have been computed from: this fold's training cases."""
        from nnunet_progressive.pdl.similarity.compare import case_list_fingerprint

        return {"data_identifier": self.configuration_manager.data_identifier,
                "spacing": [float(s) for s in self.configuration_manager.spacing],
                "case_list_fingerprint": case_list_fingerprint(training_ids), "num_cases": len(training_ids),
                "fold": self.fold}

    def set1_cases(self) -> list[str]:
        """This fold's Set 1 (computed once)."""
        if self._set1 is None:
            training_ids, _ = self.do_split()
            ranking_order = None
            if self.pdl_order != "random":
                ranking_order = load_ranking_order(self.ranking_file(), self.ranking_source(list(training_ids)),
                                                   self.rank_command(), self.progressive_settings.ranking_metric)
            self._set1 = select_set1(list(training_ids), self.progressive_settings.set1_share, self.pdl_order,
                                     ranking_order, self.progressive_settings.pdl_seed)
        return list(self._set1)  # a copy: nnU-Net's dataset classes sort identifier lists in place

    # --- staged loader ---------------------------------------------------------------------------------
    def _stage_key(self, epoch: int) -> tuple:
        return super()._stage_key(epoch) + (("pdl", self._pdl_stage(epoch)),)

    def training_data_label(self, epoch: int) -> str:
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
        if not self.was_initialized:
            self.initialize()  # settings and dataset class first (nnU-Net's on_train_start would do it next)
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
        if state.get("set1") is not None:
            self._set1 = list(state["set1"])  # the run continues with the Set 1 it started with
