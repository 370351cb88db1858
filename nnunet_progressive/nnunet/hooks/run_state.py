"""A run you can trust: its settings fixed when it starts, exact resume, atomic checkpoints, honest timing.

Settings (the run's identity)
    ONE place resolves a trainer's settings, :class:`RunLengthMixin`:

    - a NEW run (nnU-Net's ``initialize()`` reached without a checkpoint loaded) takes the trainer's defaults plus
      the environment, strictly (:func:`settings_for_new_run`: an unknown ``NNPROG_*`` name, a bad value or a
      knob the trainer does not read is an error), and stores them in ``nnprog_run.json`` (:class:`RunIdentity`)
      in the fold folder before training; a fold folder already holding a run with OTHER settings is refused;
    - a CONTINUED run (``load_checkpoint``: ``--c``, ``--val``, ``--val_best``) takes the settings stored with the
      run (the run file; for runs of older versions the checkpoint's sidecar), never the environment, which is
      only reported on (:func:`environment_notes_for_continued_run`).

    Everything derived from the settings (``derive_from_settings``: run length, PGPS schedule, PDL phases) is
    derived right after, BEFORE nnU-Net's ``initialize()`` builds the optimizer and its learning-rate schedule
    from ``num_epochs``, so a resumed run anneals exactly as the uninterrupted one.

Checkpoints
    Written atomically (nnU-Net's ``save_checkpoint`` into a temporary file, then a rename), each with its sidecar
    ``<checkpoint>.nnprog.json`` (:class:`CheckpointState`: progress state, the run id). ``--c`` continues from
    the newest INTACT checkpoint of the run (:func:`choose_checkpoint`), saying so when the one nnU-Net picked
    is damaged. A run that has ended (``checkpoint_final.pth``) stays ended under ``--c``: nothing is trained,
    no record is rewritten; nnU-Net's validation then runs again, as it does for any ``--c`` (unless
    NNPROG_FINAL_VALIDATION=off).

Hook order of a combined trainer (stated here only; ``tests/test_nnunet_run_state.py`` checks every trainer)
    The variant factory (:mod:`..variants`) lists a trainer's mixins in this order, then an nnU-Net trainer::

        StopAtDiceMixin, FineTuningMixin, ProgressiveDataMixin, ProgressivePatchMixin | RandomPatchSizeMixin, ...,
        RecipeMixin, RecipeStepMixin, nnUNetTrainer

    so its method resolution order is :data:`MIXIN_ORDER` (those it has; ``AugmentationPlacementMixin`` is
    RunLengthMixin's base, so every trainer has it), then ``nnUNetTrainer``. Every mixin calls ``super()`` in
    every hook it overrides and none skips another, except the hooks a mixin declares it replaces
    (``replaces_hooks``: the architectures' recipe and network); those mixins stand after every class that
    extends the same hook (the factory refuses anything else). Per hook, outermost first:

    - ``initialize`` / ``load_checkpoint``: PGPS/RPSS remember the planned oversampling; RunLengthMixin resolves
      the settings and every mixin derives from them (``derive_from_settings``, innermost first: run length, then
      the patch schedule, then PDL's phases); then nnU-Net builds network, optimizer and scheduler (and loads);
      then ``restore_progressive_state`` restores each mixin's progress from the sidecar;
    - ``on_train_start``: PDL fixes Set 1 (a missing or stale ranking stops here), then nnU-Net builds its loaders
      (with NNPROG_AUGMENT_ON=device, ``get_training_transforms`` gives the training loader no transforms and keeps
      the batched pipeline; see :mod:`.augmentation_placement`);
    - ``on_train_epoch_start``: the staged loader builds the epoch's training loader (patch stage, case set);
      RunLengthMixin starts timing the training iterations; nnU-Net steps the learning rate;
    - ``train_step``: PDL counts the cases, PGPS times the step, AugmentationPlacementMixin (innermost) augments the
      batch on the training device (NNPROG_AUGMENT_ON=device), then nnU-Net's (or a recipe's) step;
    - ``on_epoch_end``: StopAtDiceMixin measures the Dice FIRST (the check is part of its epoch's checkpoint and
      its time is kept out of training time), then nnU-Net logs, checkpoints and counts the epoch, then PGPS
      writes curriculum.json, and last StopAtDiceMixin ends the run if the target was reached;
    - ``on_train_end``: nnU-Net writes checkpoint_final (its sidecar says ``ended``), RunLengthMixin writes
      run_summary.json, PGPS curriculum.json, StopAtDiceMixin time_to_dice.json.
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from time import perf_counter
from typing import Any

import torch

from nnunet_progressive.core.errors import NnprogError, ProgressiveConfigError, RunStateError
from nnunet_progressive.core.heartbeat import heartbeat_line, heartbeat_seconds
from nnunet_progressive.core.io import file_sha256, remove_stale_temporaries, replacing
from nnunet_progressive.core.knobs import (
    RUN_LENGTH,
    ProgressiveSettings,
    env_name,
)
from nnunet_progressive.core.records import (
    CHECKPOINT_BEST,
    CHECKPOINT_FINAL,
    CHECKPOINT_LATEST,
    CURRICULUM_JSON,
    RUN_IDENTITY_JSON,
    RUN_SUMMARY_JSON,
    TIME_TO_DICE_JSON,
    CheckpointState,
    PretrainedWeights,
    RunIdentity,
    RunSummary,
    checkpoint_checksum_problem,
    checkpoint_state_path,
    fingerprint,
    read_record,
    write_record,
)
from nnunet_progressive.core.settings import notes_for_continued_run
from nnunet_progressive.core.validation import validate
from nnunet_progressive.nnunet.hooks import training_process
from nnunet_progressive.nnunet.hooks.augmentation_placement import AugmentationPlacementMixin, transforms_refusal
from nnunet_progressive.nnunet.hooks.label_check import check_label_values
from nnunet_progressive.nnunet.hooks.pretrained import (
    check_network_fits,
    check_pretrained_argument,
    check_recorded_pretrained,
    describe_pretrained,
)
from nnunet_progressive.nnunet.hooks.seeding import seed_generators
from nnunet_progressive.stopping.dice import epoch_training_seconds, train_wall_seconds
from nnunet_progressive.stopping.time_budget import SECONDS_PER_HOUR, LengthDecision, run_length_for_budget

MIXIN_ORDER: tuple[str, ...] = (
    "TransformerNetworkMixin",
    "PrimusGridMixin",
    "PrimusInputMixin",
    "NetworkInputMixin",
    "StopAtDiceMixin",
    "FineTuningMixin",
    "ProgressiveDataMixin",
    "ProgressivePatchMixin",
    "RandomPatchSizeMixin",
    "PatchSizeMixin",
    "StagedTrainingLoaderMixin",
    "RunLengthMixin",
    "AugmentationPlacementMixin",
    "RecipeMixin",
    "RecipeStepMixin",
)
CHECKPOINT_PREFERENCE = (CHECKPOINT_FINAL, CHECKPOINT_LATEST, CHECKPOINT_BEST)  # nnU-Net's order under --c
RECORDS_OF_A_RUN = (RUN_SUMMARY_JSON, TIME_TO_DICE_JSON, CURRICULUM_JSON)  # rewritten by every run
NNUNET_FOLDER_COPIES = ("plans.json", "dataset.json", "dataset_fingerprint.json")


def sidecar_path(checkpoint_file: str) -> str:
    """Where a checkpoint's nnunet-progressive state lives (nnU-Net's checkpoint format stays stock)."""
    return str(checkpoint_state_path(checkpoint_file))


def package_mixins(trainer_class: type) -> list[str]:
    """The names of this package's mixins in ``trainer_class``'s method resolution order."""
    return [c.__name__ for c in trainer_class.__mro__ if c.__name__ in MIXIN_ORDER]


# ------------------------------------------------------------------------------------------- settings

def settings_for_new_run(trainer_class: type, environ: Mapping[str, str] | None = None) -> ProgressiveSettings:
    """The settings a new run of ``trainer_class`` starts with: its defaults plus the ``NNPROG_*`` environment.

    Strict: unknown ``NNPROG_*`` names (with the closest knob), invalid values, knobs the trainer does not read and
    NNPROG_AUGMENT_ON=device for a trainer with its own ``get_training_transforms`` are all reported in one
    :class:`ProgressiveConfigError`. A knob that is set but ignored is an error, not a
    warning: the run would otherwise be a different experiment from the one its user believes it is.
    """
    from nnunet_progressive.nnunet.catalogue import new_run_settings

    return new_run_settings(trainer_class.__name__, trainer_class.default_settings, trainer_class.knob_features(),
                            environ, lambda augment_on: transforms_refusal(trainer_class, augment_on))


def environment_notes_for_continued_run(stored: ProgressiveSettings, trainer_class: type,
                                        environ: Mapping[str, str] | None = None) -> list[str]:
    """What the environment would have changed in a continued run (it does not: the stored settings hold)."""
    return notes_for_continued_run(stored, trainer_class.default_settings, environ)


# ----------------------------------------------------------------------------------------- checkpoints

@dataclass(frozen=True)
class CheckpointCandidate:
    """A checkpoint file as found: its epoch and sidecar, or why it cannot be continued from."""

    path: Path
    current_epoch: int | None
    state: CheckpointState | None
    problem: str | None

    @property
    def usable(self) -> bool:
        return self.problem is None


def read_checkpoint_epoch(path: Path) -> int:
    """``current_epoch`` of an nnU-Net checkpoint; raises whatever torch raises for a damaged file."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return int(checkpoint["current_epoch"])


def inspect_checkpoint(path: Path, run_id: str | None,
                       read_epoch: Callable[[Path], int] = read_checkpoint_epoch) -> CheckpointCandidate:
    """Can the run continue from ``path``? Damaged file, damaged or mismatched sidecar, or another run's."""
    path = Path(path)
    try:
        epoch = read_epoch(path)
    except Exception as error:  # noqa: BLE001 - torch raises many types for truncated or foreign files
        reason = " ".join(str(error).split())[:200]
        return CheckpointCandidate(path, None, None, f"{path.name} cannot be read ({type(error).__name__}: {reason}); "
                                   f"it is damaged, e.g. the run was killed while it was written")
    sidecar = checkpoint_state_path(path)
    if not sidecar.exists():
        return CheckpointCandidate(path, epoch, None, None)
    try:
        state = read_record(sidecar, CheckpointState)
    except ProgressiveConfigError as error:
        return CheckpointCandidate(path, epoch, None, str(error))
    if state.current_epoch != epoch:
        return CheckpointCandidate(path, epoch, state, f"{sidecar.name} is for epoch {state.current_epoch} but "
                                   f"{path.name} is at epoch {epoch}; the run was killed between writing the two")
    if run_id is not None and state.run_id is not None and state.run_id != run_id:
        return CheckpointCandidate(path, epoch, state, f"{path.name} belongs to an earlier run in this folder")
    return CheckpointCandidate(path, epoch, state, checkpoint_checksum_problem(path, state))


def choose_checkpoint(requested: str | os.PathLike, run_id: str | None, allow_fallback: bool,
                      read_epoch: Callable[[Path], int] = read_checkpoint_epoch
                      ) -> tuple[CheckpointCandidate, str | None]:
    """The checkpoint to load for ``requested`` and, when it is another one, the message saying why.

    With ``allow_fallback`` (``--c``) a damaged or foreign ``requested`` is replaced by the intact checkpoint of
    the run with the highest epoch (final, latest, best: nnU-Net's order breaks ties); otherwise (``--val``,
    ``--val_best``) it is an error. No intact checkpoint is an error naming every problem and the fix.
    """
    requested = Path(requested)
    first = inspect_checkpoint(requested, run_id, read_epoch)
    if first.usable:
        return first, None
    folder = requested.parent
    if not allow_fallback:
        raise RunStateError(f"cannot use {requested}: {first.problem}. Fix: restore it from a copy, or continue "
                            f"training with --c (it picks the newest intact checkpoint of the run)")
    others = [inspect_checkpoint(folder / name, run_id, read_epoch) for name in CHECKPOINT_PREFERENCE
              if name != requested.name and (folder / name).is_file()]
    usable = [c for c in others if c.usable]
    if not usable:
        problems = "; ".join(c.problem for c in [first, *others])
        raise RunStateError(f"no intact checkpoint to continue from in {folder}: {problems}. Fix: restore a checkpoint "
                            f"from a copy, or start the run anew (remove {folder})")
    rank = {name: i for i, name in enumerate(CHECKPOINT_PREFERENCE)}
    chosen = max(usable, key=lambda c: (c.current_epoch, -rank.get(c.path.name, len(rank))))
    message = (f"WARNING: {first.problem}. Continuing from {chosen.path.name} (epoch {chosen.current_epoch}) "
               f"instead; the epochs after it are trained again.")
    return chosen, message


# --------------------------------------------------------------------------------------------- mixin

class RunLengthMixin(AugmentationPlacementMixin):
    """The root of every trainer of this package: settings, run identity, checkpoints, resume, timing (and, in its
    base, where the augmentation runs).

    ``default_settings`` are the class's defaults (``_Xepochs`` variants change them); ``knob_features()`` names
    what the trainer reads (each mixin adds its features with ``super()``). Mixins derive what they need from
    ``self.progressive_settings`` in ``derive_from_settings`` and keep progress beside each checkpoint through
    ``progressive_state`` / ``restore_progressive_state`` (call ``super()`` in all three).
    """

    default_settings = ProgressiveSettings()

    @classmethod
    def knob_features(cls) -> frozenset[str]:
        """The features whose knobs this trainer reads (see core/knobs.py)."""
        return frozenset({RUN_LENGTH})

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        training_process.install()
        self._continue_requested = bool(plans.get("continue_training", False))  # --c (popped by nnU-Net)
        # before nnU-Net's __init__ creates the fold folder: a start that cannot work leaves nothing behind
        self.check_start(device, _fold_folder_of(type(self).__name__, plans, configuration, fold))
        # the one read of -pretrained_weights from the command line (nnU-Net never hands the path to the trainer):
        # a new run records it in its identity, everything after reads it from there (nnunet/hooks/pretrained.py)
        pretrained_argument = check_pretrained_argument()
        check_cases_for_fold(plans, dataset_json, fold)
        if not self._continue_requested and not validation_requested():  # a new run: its data is read once
            check_label_values(plans, configuration, dataset_json)
        new_folders = _folders_nnunet_will_create(type(self).__name__, plans, configuration, fold)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._created_folders = new_folders
        self._pid = os.getpid()  # the training process: only it removes what a failed start created
        self._epoch_begun = False
        training_process.on_error(self._remove_failed_start_before_training)
        if self.local_rank == 0:
            for stale in remove_stale_temporaries(self.output_folder):  # left by a kill during a save
                print(f"nnunet-progressive: removed {stale.name}, a temporary file left by a killed checkpoint write")
        self.progressive_settings: ProgressiveSettings | None = None  # resolved in initialize() or load_checkpoint()
        self._run_id: str | None = None
        self._new_run = False
        self._pretrained_argument = pretrained_argument
        self._pretrained: PretrainedWeights | None = None  # of the run's identity, once it is known
        self._pretrained_loaded_here = False  # --c without a checkpoint: the recorded weights loaded by the trainer
        self._checkpoint_written = False
        self._ending = False
        self._run_ended = False
        self._plans_fingerprint = fingerprint(self.configuration_manager.configuration)
        self._train_seconds: dict[int, float] = {}  # epoch -> seconds of its training iterations
        self._iterations_done = 0  # of the running epoch, for the heartbeat line
        self._heartbeat_every: float | None = None
        self._last_heartbeat = 0.0
        self._untimed_seconds: dict[int, float] = {}  # epoch -> seconds spent outside training (Dice checks)
        self._epoch_train_start = 0.0
        self._validating_after_training = False
        self._started_num_epochs = self.num_epochs  # the length the run started with (NNPROG_TIME_BUDGET's cap)
        self._length_decisions: list[LengthDecision] = []  # run lengths set by NNPROG_TIME_BUDGET

    # --- start checks ------------------------------------------------------------------------------
    @classmethod
    def check_start(cls, device: torch.device, fold_folder: Path | None) -> None:
        """What must hold before nnU-Net's ``__init__`` creates folders (mixins extend it; call super): a CUDA
        device exists when ``-device cuda`` (nnU-Net's default) is asked for; ``--val`` finds a finished run."""
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ProgressiveConfigError(
                f"no CUDA GPU found (torch {torch.__version__}, torch.cuda.is_available() is False) and nnUNetv2_train "
                f"uses -device cuda unless told otherwise; on a CPU machine add -device cpu (on Apple silicon "
                f"-device mps)")
        if validation_requested() and fold_folder is not None and not (fold_folder / CHECKPOINT_FINAL).is_file():
            found = sorted(p.name for p in fold_folder.glob("checkpoint_*.pth")) if fold_folder.is_dir() else []
            if found:
                state, fix = (f"it holds {', '.join(found)}: the training has not finished",
                              "finish the training first (the same nnUNetv2_train command with --c instead of --val)")
            else:
                state, fix = "no run has trained there", "train it first (the same command without --val)"
            raise ProgressiveConfigError(
                f"--val needs {fold_folder / CHECKPOINT_FINAL}, but {state}. Fix: {fix}, then validate")

    # --- settings -----------------------------------------------------------------------------------
    def derive_from_settings(self) -> None:
        """Set everything that follows from ``self.progressive_settings``; mixins extend it (call super first)."""
        settings = self.progressive_settings
        if settings.epochs is not None:
            self.num_epochs = settings.epochs
        if settings.iterations is not None:
            self.num_iterations_per_epoch = settings.iterations
        if settings.val_iterations is not None:
            self.num_val_iterations_per_epoch = settings.val_iterations
        if settings.save_every is not None:
            self.save_every = settings.save_every
        self._started_num_epochs = self.num_epochs

    def training_data_label(self, epoch: int) -> str:
        """What ``epoch`` trains on, for records such as the Dice checks (PDL names its case set)."""
        return "all training cases"

    def _adopt_settings(self, settings: ProgressiveSettings, origin: str) -> None:
        from nnunet_progressive import __version__

        self.progressive_settings = settings
        self.check_augmentation_placement()  # a continued run too: its stored NNPROG_AUGMENT_ON may be device
        self.derive_from_settings()
        if settings.seed is not None:  # before nnU-Net builds the network: its initialisation is the seed's
            seed_generators(settings.seed)
        read = settings.knobs_read_by(self.knob_features())
        self.print_to_log_file(f"nnunet-progressive {__version__}, settings {origin}: "
                               + ", ".join(f"{k}={v}" for k, v in read.items()))

    @property
    def run_file(self) -> Path:
        return Path(self.output_folder) / RUN_IDENTITY_JSON

    @property
    def pretrained_weights(self) -> str | None:
        """The ``-pretrained_weights`` file the run started from, as its identity records it (None: from scratch,
        or a run of a version that did not record it)."""
        return self._pretrained.path if self._pretrained is not None else None

    def _identity(self, settings: ProgressiveSettings, run_id: str, pretrained: PretrainedWeights | None = None,
                  pretrained_known: bool = True) -> RunIdentity:
        """The run file of a run (``pretrained_known`` False: a run of an older version, whose weights are unknown)."""
        from nnunet_progressive import __version__

        known = {"pretrained_weights": pretrained} if pretrained_known else {}
        return RunIdentity(run_id=run_id, trainer=type(self).__name__, package_version=__version__,
                           settings=settings.to_dict(), plans=self.plans_manager.plans_name,
                           configuration=self.configuration_name, fold=str(self.fold),
                           plans_fingerprint=self._plans_fingerprint,
                           created=datetime.now().isoformat(timespec="seconds"), **known)

    def _start_new_run(self) -> None:
        """Settings from the environment (strictly), checked against the fold folder; the run file written.

        Under ``--c`` without a checkpoint (the run was killed before its first one) nnU-Net "starts a new
        training": a run file in the fold folder makes that the recorded run, started again with its own settings.
        """
        recorded = read_record(self.run_file, RunIdentity, missing_ok=True) if self._continue_requested else None
        if recorded is not None:
            self._restart_recorded_run(recorded)
            return
        self._new_run = True
        try:
            settings = settings_for_new_run(type(self))
            pretrained = describe_pretrained(self._pretrained_argument) if self._pretrained_argument else None
            identity = self._identity(settings, uuid.uuid4().hex, pretrained)
            starting_over = self._check_fold_folder(identity)
            self._adopt_settings(settings, "of a new run (trainer defaults and NNPROG_* environment)")
        except NnprogError:
            self._remove_failed_start()
            raise
        self._run_id = identity.run_id
        self._pretrained = identity.pretrained_weights
        if self.local_rank == 0:
            if starting_over:
                for name in RECORDS_OF_A_RUN:
                    Path(self.output_folder, name).unlink(missing_ok=True)
            write_record(self.run_file, identity)

    def _restart_recorded_run(self, recorded: RunIdentity) -> None:
        """``--c`` of a run that has a run file but no checkpoint: the same run (id, settings, record) from epoch 0."""
        settings = self._resume_settings(recorded, None, self.run_file)
        self.print_to_log_file(
            f"--c: {self.output_folder} has no checkpoint of this run yet (it was stopped before its first one): "
            f"starting the run of {self.run_file.name} (started {recorded.created}) again from epoch 0, with its "
            f"recorded settings.")
        for note in environment_notes_for_continued_run(settings, type(self)):
            self.print_to_log_file(f"WARNING: {note}. Starting the run with its own recorded settings; remove "
                                   f"{self.run_file} and start without --c to change them.")
        self._adopt_settings(settings, f"of the run being started again ({RUN_IDENTITY_JSON})")
        self._run_id = recorded.run_id
        self._pretrained = recorded.pretrained_weights  # nnU-Net loads none under --c: initialize() loads these
        if self.local_rank == 0:  # what the stopped attempt may have written is not of this attempt
            for name in RECORDS_OF_A_RUN:
                Path(self.output_folder, name).unlink(missing_ok=True)

    def _check_fold_folder(self, identity: RunIdentity) -> bool:
        """True if the fold folder holds a run with the same settings (nnU-Net starts it over); an error if it
        holds one with other settings."""
        folder = Path(self.output_folder)
        existing = read_record(self.run_file, RunIdentity, missing_ok=True)
        if existing is None or not any((folder / name).is_file() for name in CHECKPOINT_PREFERENCE):
            return False
        # a knob added since that run started counts at its default (its run file cannot name it); pre-trained
        # weights are compared where both run files record them
        existing = existing.model_copy(update={"settings": {**ProgressiveSettings().to_dict(), **existing.settings}})
        differences = existing.differences(identity)
        if not differences:
            self.print_to_log_file(f"Starting over: {folder} holds a run with the same settings (started "
                                   f"{existing.created}); nnU-Net replaces its checkpoints as this run goes.")
            return True
        listed = ", ".join(f"{name}: that run {old!r}, now {new!r}" for name, (old, new) in differences.items())
        raise ProgressiveConfigError(
            f"{folder} holds a run of {identity.trainer} with other settings ({listed}); a new run would overwrite "
            f"it. To continue that run, add --c (it keeps its own settings); to keep both, point nnUNet_results at "
            f"another folder for the new run; to replace it, remove the fold folder: rm -r {folder}")

    def settings_of_older_version(self, settings: ProgressiveSettings, stored: Mapping[str, Any],
                                  package_version: str | None) -> ProgressiveSettings:
        """The settings of a continued run (``stored``: the settings dict its record holds), with the values an
        older version's defaults meant where a default's meaning changed since (mixins extend this with super())."""
        return settings

    def _resume_settings(self, identity: RunIdentity | None, state: CheckpointState | None, sidecar: Path
                         ) -> ProgressiveSettings:
        """The stored settings of the run being continued (run file, else the sidecar of older versions)."""
        if identity is not None:
            if identity.plans_fingerprint != self._plans_fingerprint:
                raise RunStateError(
                    f"the plans entry of {self.configuration_name} in {self.plans_manager.plans_name}.json changed "
                    f"since this run started ({self.run_file}): continuing would train another network or data. "
                    f"Fix: restore the plans as they were, or start a new run (remove {self.output_folder})")
            return self.settings_of_older_version(ProgressiveSettings.from_dict(identity.settings, str(self.run_file)),
                                                  identity.settings, identity.package_version)
        if state is not None and state.settings is not None:
            settings = self.settings_of_older_version(ProgressiveSettings.from_dict(state.settings, str(sidecar)),
                                                      state.settings, state.package_version)
            self._run_id = state.run_id or uuid.uuid4().hex
            if self.local_rank == 0:
                write_record(self.run_file, self._identity(settings, self._run_id, pretrained_known=False))
            self.print_to_log_file(f"{RUN_IDENTITY_JSON} written from {sidecar.name} (a run of an older version)")
            return settings
        raise RunStateError(
            f"{type(self).__name__} cannot continue the run in {self.output_folder}: neither {RUN_IDENTITY_JSON} nor "
            f"{sidecar.name} is there to say which settings it was started with, and taking today's environment "
            f"could change its schedule mid-run. Fix: restore those files from the run's folder, or start a new "
            f"run (remove {self.output_folder})")

    # --- nnU-Net hooks: start and resume ----------------------------------------------------------
    def initialize(self):
        restarted = False
        if self.progressive_settings is None:  # no checkpoint loaded: a new run, or --c before the first checkpoint
            self._start_new_run()
            restarted = not self._new_run
        super().initialize()
        if self._pretrained is None or not (self._new_run or restarted):
            return
        path = self._pretrained.path if self._new_run else check_recorded_pretrained(self._pretrained, self.run_file)
        # nnU-Net loads a new run's file next and would assert on a mismatch
        check_network_fits(path, self.network, self.plans_manager.dataset_name, self.plans_manager.plans_name,
                           self.configuration_name)
        if restarted:  # under --c nnU-Net loads no pre-trained weights: the run's start is repeated here
            from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

            load_pretrained_weights(self.network, path, verbose=False)
            self._pretrained_loaded_here = True
            self.print_to_log_file(f"--c: loaded the pre-trained weights the run started from ({path}, recorded in "
                                   f"{RUN_IDENTITY_JSON}), as nnU-Net's -pretrained_weights did at its start")

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        if not isinstance(filename_or_checkpoint, str):
            super().load_checkpoint(filename_or_checkpoint)
            return
        identity = read_record(self.run_file, RunIdentity, missing_ok=True)
        if self._run_id is None and identity is not None:
            self._run_id = identity.run_id
        if identity is not None:
            self._pretrained = identity.pretrained_weights
        resuming = self._continue_requested and self.progressive_settings is None  # --c, not --val / --val_best
        chosen, message = choose_checkpoint(filename_or_checkpoint, self._run_id, allow_fallback=resuming)
        if message:
            self.print_to_log_file(message)
        sidecar = checkpoint_state_path(chosen.path)
        if self.progressive_settings is None:
            settings = self._resume_settings(identity, chosen.state, sidecar)
            for note in environment_notes_for_continued_run(settings, type(self)):
                self.print_to_log_file(f"WARNING: {note}. Continuing with the run's own settings so its schedule "
                                       f"stays the same; start a new run to change them.")
            self._adopt_settings(settings, f"of the run being continued ({RUN_IDENTITY_JSON})")
        self.adopt_checkpoint_state(chosen.state)
        super().load_checkpoint(str(chosen.path))
        if resuming and self.progressive_settings.seed is not None:  # not the stream of epochs 0, 1, ... again
            seed_generators(self.progressive_settings.seed, self.current_epoch)
        self._run_ended = chosen.path.name == CHECKPOINT_FINAL or (chosen.state is not None and chosen.state.ended)
        if chosen.state is None:
            self.print_to_log_file(f"WARNING: {sidecar.name} not found next to the checkpoint: continuing with the "
                                   f"run's settings; its progress records before epoch {self.current_epoch} (Dice "
                                   f"checks, timings, PDL's Set 1) are not restored.")
        self.restore_progressive_state(chosen.state.to_json() if chosen.state is not None else {})

    def run_training(self):
        self._validating_after_training = True  # nnUNetv2_train without --val: the validation that follows
        if self._run_ended:
            self.print_to_log_file(
                f"This run has ended (checkpoint_final.pth, epoch {self.current_epoch}): nothing is trained and its "
                f"checkpoints and records stay as they are. nnU-Net's validation runs again (unless "
                f"NNPROG_FINAL_VALIDATION=off).")
            return
        try:
            super().run_training()
        except TimeBudgetSpent:
            self.on_train_end()  # checkpoint_final and loader shutdown, as at the last epoch
        except NnprogError:
            self._remove_failed_start()
            raise

    def perform_actual_validation(self, save_probabilities: bool = False):
        """nnU-Net's final validation, unless NNPROG_FINAL_VALIDATION=off skips the one right after training."""
        if self._validating_after_training and self.progressive_settings.final_validation == "off":
            self.print_to_log_file("nnU-Net's final validation skipped (NNPROG_FINAL_VALIDATION=off); "
                                   "`nnUNetv2_train ... --val` runs it")
            return
        super().perform_actual_validation(save_probabilities)

    def _remove_failed_start(self) -> None:
        """A new run that failed before its first checkpoint leaves nothing behind that it created (fold folder,
        trainer folder, the dataset's folder in nnUNet_results), or only its log where the folder was there."""
        if not self._new_run or self._checkpoint_written or self.local_rank != 0 or os.getpid() != self._pid:
            return  # (a forked child, e.g. an augmentation worker, never removes the training's folders)
        fold_folder = Path(self.output_folder)
        if fold_folder in self._created_folders:
            shutil.rmtree(fold_folder, ignore_errors=True)
            trainer_folder = fold_folder.parent
            leftovers = {p.name for p in trainer_folder.iterdir()} if trainer_folder.is_dir() else set()
            if trainer_folder in self._created_folders and leftovers <= set(NNUNET_FOLDER_COPIES):
                shutil.rmtree(trainer_folder, ignore_errors=True)
            dataset_folder = trainer_folder.parent
            if dataset_folder in self._created_folders and dataset_folder.is_dir() and not any(
                    dataset_folder.iterdir()):
                dataset_folder.rmdir()
        elif os.path.isfile(self.log_file):
            os.remove(self.log_file)

    def _remove_failed_start_before_training(self, error: BaseException) -> None:
        """Called for an exception that ends the process (training_process.on_error): a new run that fails
        before its first epoch began (e.g. nnU-Net cannot load -pretrained_weights) is a failed start."""
        if not self._epoch_begun:
            self._remove_failed_start()

    # --- the time budget (NNPROG_TIME_BUDGET; stopping/time_budget.py) --------------------------------
    def on_epoch_start(self):
        self._fit_time_budget()
        super().on_epoch_start()

    def _fit_time_budget(self) -> None:
        """Before an epoch: the run length that fits the budget from the finished epochs' wall seconds (recorded when
        it changes); the run ends here when no further epoch fits."""
        budget = self.progressive_settings.time_budget
        done = self.current_epoch
        if budget is None or done == 0:
            return
        starts, ends = self.epoch_timestamps()
        seconds = [end - start for start, end in zip(starts[:done], ends[:done], strict=True)]
        decision = run_length_for_budget(seconds, self._past_epoch_weights(done), budget * SECONDS_PER_HOUR,
                                         self._started_num_epochs, lambda n: self._future_epoch_weights(n, done),
                                         self.num_epochs)
        if self.is_ddp:  # every rank trains the length rank 0 chose (their clocks differ a little)
            import torch.distributed as dist

            shared = [decision]
            dist.broadcast_object_list(shared, src=0)
            decision = shared[0]
        if decision.num_epochs != self.num_epochs:
            self._set_run_length(decision.num_epochs, done)
            self._length_decisions.append(decision)
            self.print_to_log_file(decision.text())
        if self.current_epoch >= self.num_epochs:
            self.print_to_log_file(f"Time budget {budget:g} h: no further epoch fits; training ends after epoch "
                                   f"{done - 1}")
            raise TimeBudgetSpent()

    def _set_run_length(self, num_epochs: int, epochs_done: int) -> None:
        """Train ``num_epochs`` in all from now on: the learning-rate schedule follows (nnU-Net's poly scheduler reads
        ``max_steps``; the recipes' and fine-tuning schedules read ``num_epochs``). Mixins extend it (call super)."""
        self.num_epochs = int(num_epochs)
        if hasattr(self.lr_scheduler, "max_steps"):
            self.lr_scheduler.max_steps = self.num_epochs

    def _past_epoch_weights(self, epochs_done: int) -> list[float]:
        """Relative cost of the finished epochs (1.0 each; PGPS weighs by the stage's voxels)."""
        return [1.0] * epochs_done

    def _future_epoch_weights(self, num_epochs: int, epochs_done: int) -> list[float]:
        """Relative cost of epochs ``epochs_done`` .. ``num_epochs - 1`` of a run of ``num_epochs``."""
        return [1.0] * (num_epochs - epochs_done)

    # --- timing of the training iterations (validation, checkpoints and plots excluded) ---------------
    def on_train_epoch_start(self):
        self._epoch_begun = True
        super().on_train_epoch_start()
        self._epoch_train_start = perf_counter()
        self._iterations_done = 0
        self._heartbeat_every = heartbeat_seconds()
        self._last_heartbeat = self._epoch_train_start

    def train_step(self, batch: dict) -> dict:
        result = super().train_step(batch)
        self._iterations_done += 1
        if self._heartbeat_every is not None and perf_counter() - self._last_heartbeat >= self._heartbeat_every:
            self._last_heartbeat = perf_counter()
            print(heartbeat_line(self.current_epoch, self._iterations_done, self.num_iterations_per_epoch),
                  flush=True)
        return result

    def on_train_epoch_end(self, train_outputs):
        self._train_seconds[self.current_epoch] = perf_counter() - self._epoch_train_start
        super().on_train_epoch_end(train_outputs)

    def add_untimed_seconds(self, epoch: int, seconds: float) -> None:
        """Count ``seconds`` of ``epoch`` as outside training (e.g. a Dice check)."""
        self._untimed_seconds[epoch] = self._untimed_seconds.get(epoch, 0.0) + float(seconds)

    def epoch_timestamps(self) -> tuple[list[float], list[float]]:
        """nnU-Net's logged epoch start and end timestamps."""
        return (list(self.logger.get_value("epoch_start_timestamps", step=None)),
                list(self.logger.get_value("epoch_end_timestamps", step=None)))

    def epoch_training_seconds(self) -> list[float]:
        """Per finished epoch: its wall seconds without the untimed ones (Dice checks)."""
        return epoch_training_seconds(*self.epoch_timestamps(), self._untimed_seconds)

    def training_wall_seconds(self) -> float:
        """The run's training wall time so far, Dice checks excluded (run_summary, time_to_dice, curriculum)."""
        return train_wall_seconds(*self.epoch_timestamps(), self._untimed_seconds)

    # --- state kept beside checkpoints -------------------------------------------------------------
    def adopt_checkpoint_state(self, state: CheckpointState | None) -> None:
        """The sidecar of the checkpoint about to be loaded (the one :func:`choose_checkpoint` chose, which under
        ``--c`` may not be the one nnU-Net asked for; None: it has none), BEFORE nnU-Net's ``load_checkpoint``
        builds network and optimiser. Extend in subclasses that need their part for that (call super)."""

    def progressive_state(self) -> dict:
        """What `--c` needs besides nnU-Net's checkpoint. Extend in subclasses (call super)."""
        from nnunet_progressive import __version__

        return CheckpointState(
            current_epoch=self.current_epoch + 1,  # as nnU-Net stores it: the next epoch to train
            run_id=self._run_id, trainer=type(self).__name__, package_version=__version__,
            settings=self.progressive_settings.to_dict(), ended=self._ending,
            train_seconds={str(k): v for k, v in self._train_seconds.items()},
            untimed_seconds={str(k): v for k, v in self._untimed_seconds.items()},
            augmentation_seconds=self.augmentation_state(),
            length_decisions=[d.to_dict() for d in self._length_decisions],
        ).to_json()

    def restore_progressive_state(self, state: dict) -> None:
        """Restore the progress kept beside the loaded checkpoint (epochs before ``current_epoch`` only)."""
        def before_now(values: Mapping) -> dict[int, float]:
            return {int(k): float(v) for k, v in values.items() if int(k) < self.current_epoch}

        self._train_seconds = before_now(state.get("train_seconds", {}))
        self._untimed_seconds = before_now(state.get("untimed_seconds", {}))
        self.restore_augmentation_state(state.get("augmentation_seconds", {}), self.current_epoch)
        self._length_decisions = []
        for data in state.get("length_decisions", []):  # replayed: the run continues with the length it had
            decision = LengthDecision.from_dict(data)
            if decision.before_epoch < self.current_epoch:
                self._set_run_length(decision.num_epochs, decision.before_epoch)
                self._length_decisions.append(decision)
        if self._length_decisions:
            self.print_to_log_file(f"Continuing with the run length of its time budget: {self.num_epochs} epochs "
                                   f"({len(self._length_decisions)} decision(s) replayed)")

    def save_checkpoint(self, filename: str) -> None:
        self._checkpoint_written = True  # (or skipped by --disable_checkpointing): the run has trained
        if self.local_rank != 0 or self.disable_checkpointing:
            super().save_checkpoint(filename)
            return
        state = self.progressive_state()
        with replacing(filename) as temporary:  # a kill while writing leaves the previous checkpoint intact
            super().save_checkpoint(str(temporary))
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            state["sha256"] = file_sha256(temporary)  # --c, --val and `nnprog verify` check the content
        sidecar = checkpoint_state_path(filename)
        write_record(sidecar, validate(CheckpointState, state, str(sidecar)))

    def on_train_end(self) -> None:
        self._ending = True  # the sidecar of checkpoint_final says the run has ended
        super().on_train_end()
        self._run_ended = True
        # nnU-Net deletes checkpoint_latest.pth at the end of training; its sidecar goes with it
        if self.local_rank == 0:
            latest = sidecar_path(os.path.join(self.output_folder, CHECKPOINT_LATEST))
            if os.path.isfile(latest):
                os.remove(latest)
            write_record(os.path.join(self.output_folder, RUN_SUMMARY_JSON), self.run_summary())

    def run_summary(self) -> RunSummary:
        """run_summary.json: what a benchmark compares (time, epochs, memory, environment)."""
        from importlib.metadata import version

        from nnunet_progressive import __version__

        starts, ends = self.epoch_timestamps()
        cuda = self.device.type == "cuda"
        return RunSummary(
            trainer=self.__class__.__name__,
            package_version=__version__,
            nnunetv2_version=version("nnunetv2"),
            torch_version=torch.__version__,
            device=str(self.device),
            gpu_name=torch.cuda.get_device_name(self.device) if cuda else None,
            epochs_done=min(len(starts), len(ends)),
            num_epochs=self.num_epochs,
            num_iterations_per_epoch=self.num_iterations_per_epoch,
            train_wall_seconds=self.training_wall_seconds(),
            train_iteration_seconds=float(sum(self._train_seconds.values())),
            peak_gpu_memory_bytes=int(torch.cuda.max_memory_allocated(self.device)) if cuda else None,
            settings=self.progressive_settings.to_dict(),
            augmentation=self.augmentation_record(),
            time_budget_decisions=[d.to_dict() for d in self._length_decisions],
        )


class TimeBudgetSpent(Exception):
    """Raised before an epoch that the time budget leaves no room for; ends the training as its last epoch would."""


def _fold_folder_of(trainer_name: str, plans: Mapping, configuration: str, fold) -> Path | None:
    """The fold folder nnU-Net's ``__init__`` will use (None when nnUNet_results or the plans do not say)."""
    from nnunetv2.paths import nnUNet_results

    if not nnUNet_results or "dataset_name" not in plans or "plans_name" not in plans:
        return None
    return Path(nnUNet_results, plans["dataset_name"], f"{trainer_name}__{plans['plans_name']}__{configuration}",
                f"fold_{fold}")


def _folders_nnunet_will_create(trainer_name: str, plans: Mapping, configuration: str, fold) -> list[Path]:
    """The dataset, trainer and fold folders nnU-Net's ``__init__`` is about to create (those not there yet)."""
    fold_folder = _fold_folder_of(trainer_name, plans, configuration, fold)
    if fold_folder is None:
        return []
    return [p for p in (fold_folder.parent.parent, fold_folder.parent, fold_folder) if not p.exists()]


NNUNET_FOLDS = 5  # nnU-Net's cross-validation when no splits_final.json exists


def check_cases_for_fold(plans: Mapping, dataset_json: Mapping, fold) -> None:
    """A cross-validation fold needs at least 5 training cases when nnU-Net is to make the split (it would stop
    with scikit-learn's traceback in its first epoch's set-up); one clear error before anything starts."""
    from nnunetv2.paths import nnUNet_preprocessed

    if str(fold) == "all" or not nnUNet_preprocessed or "dataset_name" not in plans:
        return
    splits = Path(nnUNet_preprocessed, plans["dataset_name"], "splits_final.json")
    cases = dataset_json.get("numTraining")
    if splits.is_file() or not isinstance(cases, int) or cases >= NNUNET_FOLDS:
        return
    raise ProgressiveConfigError(
        f"{plans['dataset_name']} has {cases} training case(s), and fold {fold} of nnU-Net's {NNUNET_FOLDS}-fold "
        f"cross-validation needs at least {NNUNET_FOLDS}. Fix: train on all cases with fold `all` (nnUNetv2_train "
        f"... all ...), add cases, or write your own split into {splits}")


def validation_requested(argv: list[str] | None = None) -> bool:
    """True for ``nnUNetv2_train ... --val`` (nnU-Net does not tell the trainer; spawned DDP workers share argv)."""
    import sys

    return "--val" in (sys.argv if argv is None else argv)


def knobs_for_trainer(trainer_class: type, knobs: Mapping[str, str]) -> dict[str, str]:
    """``knobs`` without the ``NNPROG_*`` ones ``trainer_class`` does not read (for runners that give one set of
    knobs to several trainers); other variables pass through."""
    from nnunet_progressive.core.knobs import fields_read_by

    read = {env_name(f) for f in fields_read_by(trainer_class.knob_features())}
    return {k: v for k, v in knobs.items() if not k.startswith("NNPROG_") or k in read}


__all__: Iterable[str] = ("RunLengthMixin", "settings_for_new_run", "environment_notes_for_continued_run",
                          "choose_checkpoint", "inspect_checkpoint", "MIXIN_ORDER", "package_mixins",
                          "knobs_for_trainer", "sidecar_path")
