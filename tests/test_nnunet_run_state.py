"""Run state without training: settings resolution, checkpoint choice, run identity, mixin order, workers."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from checkpoint_damage import flip_tensor_bytes
from hook_probe import hooks_of, skipped_hooks
from package_trainers import TRAINERS
from process_tree import command_line, descendants, kill_all, left_alive

import nnunet_progressive_trainers.nnprog_pdl as pdl_trainers
import nnunet_progressive_trainers.nnprog_pgps as pgps_trainers
import nnunet_progressive_trainers.nnprog_stop_at_dice as stop_trainers
from nnunet_progressive.core.errors import ProgressiveConfigError, RunStateError
from nnunet_progressive.core.io import file_sha256
from nnunet_progressive.core.knobs import ProgressiveSettings
from nnunet_progressive.core.records import (
    CheckpointState,
    RunIdentity,
    checkpoint_state_path,
    fingerprint,
    write_record,
)
from nnunet_progressive.nnunet.hooks.run_state import (
    MIXIN_ORDER,
    choose_checkpoint,
    environment_notes_for_continued_run,
    knobs_for_trainer,
    package_mixins,
    settings_for_new_run,
)
from nnunet_progressive.stopping.dice import epoch_training_seconds, train_wall_seconds

Constant = pgps_trainers.nnUNetTrainer_ConstantPatch
Efficiency = pgps_trainers.nnUNetTrainer_PGPS_Efficiency


# --- settings of a new run (findings 5, 13) ------------------------------------------------------------

def test_misspelt_knob_stops_a_new_run_and_names_the_closest():
    with pytest.raises(ProgressiveConfigError) as failure:
        settings_for_new_run(Constant, {"NNPROG_EPOCH": "6", "NNPROG_ITERATION": "3"})
    message = str(failure.value)
    assert "did you mean NNPROG_EPOCHS" in message and "did you mean NNPROG_ITERATIONS" in message
    assert message.startswith("nnUNetTrainer_ConstantPatch cannot start")


def test_knob_the_trainer_does_not_read_stops_a_new_run():
    for trainer, knob in ((Constant, "NNPROG_GROWTH_SHARE"), (pdl_trainers.nnUNetTrainer_PDL, "NNPROG_GROWTH_SHARE"),
                          (Efficiency, "NNPROG_MAX_BATCH"), (pgps_trainers.nnUNetTrainer_RPSS, "NNPROG_GROWTH_SHARE"),
                          (pdl_trainers.nnUNetTrainer_PDL, "NNPROG_PDL_SEED"),
                          (pdl_trainers.nnUNetTrainer_PDL_Random, "NNPROG_RANKING")):
        with pytest.raises(ProgressiveConfigError, match=f"{knob} is set but {trainer.__name__} does not read it"):
            settings_for_new_run(trainer, {knob: "0.5" if "SHARE" in knob else "4"})


def test_every_problem_of_the_environment_is_reported_at_once():
    with pytest.raises(ProgressiveConfigError) as failure:
        settings_for_new_run(Constant, {"NNPROG_EPOCHS": "ten", "NNPROG_EPOCH": "6", "NNPROG_TARGET_DICE": "0.8"})
    message = str(failure.value)
    assert "NNPROG_EPOCHS: is not an integer" in message and "NNPROG_EPOCH is not a knob" in message
    assert "NNPROG_TARGET_DICE is set but" in message


def test_new_run_takes_defaults_and_environment():
    variant = pgps_trainers.nnUNetTrainer_PGPS_Performance_100epochs
    settings = settings_for_new_run(variant, {"NNPROG_MAX_BATCH": "8", "HOME": "/x"})
    assert settings.epochs == 100 and settings.max_batch == 8


def test_startup_log_lists_only_the_knobs_the_trainer_reads():
    settings = ProgressiveSettings(epochs=4)
    read = settings.knobs_read_by(Efficiency.knob_features())
    assert "NNPROG_EPOCHS" in read and "NNPROG_GROWTH_SHARE" in read and "NNPROG_MIN_PATCH" in read
    assert not {"NNPROG_TARGET_DICE", "NNPROG_SET1_SHARE", "NNPROG_RANKING", "NNPROG_MAX_BATCH"} & set(read)
    assert set(settings.knobs_read_by(Constant.knob_features())) == {
        "NNPROG_EPOCHS", "NNPROG_ITERATIONS", "NNPROG_VAL_ITERATIONS", "NNPROG_SAVE_EVERY", "NNPROG_FINAL_VALIDATION",
        "NNPROG_AUGMENT_ON", "NNPROG_SEED", "NNPROG_TIME_BUDGET"}


def test_runner_knobs_can_be_narrowed_to_a_trainer():
    knobs = {"NNPROG_EPOCHS": "4", "NNPROG_SET1_EPOCHS": "2", "CUDA_VISIBLE_DEVICES": "0"}
    assert knobs_for_trainer(stop_trainers.nnUNetTrainer_StopAtDice, knobs) == {
        "NNPROG_EPOCHS": "4", "CUDA_VISIBLE_DEVICES": "0"}
    assert knobs_for_trainer(pdl_trainers.nnUNetTrainer_PDL, knobs) == knobs


# --- settings of a continued run (finding 6) ------------------------------------------------------------

def test_continued_run_only_notes_what_the_environment_says():
    stored = ProgressiveSettings(epochs=9)
    assert environment_notes_for_continued_run(stored, Constant, {}) == []
    invalid = environment_notes_for_continued_run(stored, Constant, {"NNPROG_EPOCHS": "ten", "NNPROG_X": "1"})
    assert any("ignored NNPROG_X" in n for n in invalid) and any("is not an integer" in n for n in invalid)
    differing = environment_notes_for_continued_run(stored, Constant, {"NNPROG_EPOCHS": "30"})
    assert differing == ["NNPROG settings differ from the run being continued (NNPROG_EPOCHS: now 30, run 9)"]


# --- run identity -------------------------------------------------------------------------------------

def _identity(**settings) -> RunIdentity:
    return RunIdentity(run_id="a", trainer="T", package_version="0", settings=ProgressiveSettings(**settings).to_dict(),
                       plans="nnUNetPlans", configuration="3d_fullres", fold="0",
                       plans_fingerprint=fingerprint({"patch_size": [32, 32, 32]}), created="now")


def test_run_identity_differences_name_knobs_and_plans():
    assert _identity(epochs=4).differences(_identity(epochs=4)) == {}
    assert _identity(epochs=4).differences(_identity(epochs=6)) == {"NNPROG_EPOCHS": (4, 6)}
    changed = _identity().model_copy(update={"plans_fingerprint": fingerprint({"patch_size": [64, 64, 64]})})
    assert list(_identity().differences(changed)) == ["plans entry of 3d_fullres in nnUNetPlans.json"]
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})


def test_run_identity_compares_pretrained_weights_by_content_where_both_record_them(tmp_path):
    from nnunet_progressive.core.records import PretrainedWeights, read_record

    weights = PretrainedWeights(path="/w/a.pth", size=3, sha256="aa")
    started = _identity().model_copy(update={"pretrained_weights": weights})
    moved = _identity().model_copy(update={"pretrained_weights": weights.model_copy(update={"path": "/x/a.pth"})})
    other = _identity().model_copy(update={"pretrained_weights": weights.model_copy(update={"sha256": "bb"})})
    scratch = _identity().model_copy(update={"pretrained_weights": None})
    assert started.differences(moved) == {}  # the same weights elsewhere
    assert started.differences(other) == {"-pretrained_weights": ("/w/a.pth", "/w/a.pth")}
    assert started.differences(scratch) == {"-pretrained_weights": ("/w/a.pth", None)}
    # a run file of an older version has no key: it cannot say, so it is not compared
    older = tmp_path / "older.json"
    older.write_text(json.dumps({k: v for k, v in scratch.to_json().items() if k != "pretrained_weights"}))
    assert not read_record(older, RunIdentity).records_pretrained_weights
    assert read_record(older, RunIdentity).differences(started) == {}
    write_record(tmp_path / "unknown.json", _identity())  # written from an older run's sidecar: weights unknown
    assert "pretrained_weights" not in json.loads((tmp_path / "unknown.json").read_text())
    write_record(tmp_path / "new.json", scratch)
    assert read_record(tmp_path / "new.json", RunIdentity).differences(started) == {
        "-pretrained_weights": (None, "/w/a.pth")}


def test_recorded_pretrained_weights_are_described_and_checked_before_reuse(tmp_path):
    from nnunet_progressive.nnunet.hooks.pretrained import check_recorded_pretrained, describe_pretrained

    path = tmp_path / "w.pth"
    path.write_bytes(b"weights")
    recorded = describe_pretrained(tmp_path / "." / "w.pth")
    assert (recorded.path, recorded.size, recorded.sha256) == (str(path), 7, file_sha256(path))
    assert check_recorded_pretrained(recorded, tmp_path / "nnprog_run.json") == str(path)
    path.write_bytes(b"other!!")  # same size, other content
    with pytest.raises(RunStateError, match="changed since; restore it, or start a new run"):
        check_recorded_pretrained(recorded, tmp_path / "nnprog_run.json")
    path.unlink()
    with pytest.raises(RunStateError, match="which is gone"):
        check_recorded_pretrained(recorded, tmp_path / "nnprog_run.json")


def test_the_command_line_is_read_for_pretrained_weights_in_one_place_only():
    """nnU-Net never hands -pretrained_weights to the trainer: one function reads argv, one caller uses it (the
    trainer's construction); every later use reads the run identity (nnunet/hooks/pretrained.py)."""
    import ast

    package = Path(__file__).resolve().parent.parent / "nnunet_progressive"
    callers = {}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name in ("pretrained_weights_argument", "check_pretrained_argument"):
                    callers.setdefault(name, []).append(path.name)
    assert callers == {"pretrained_weights_argument": ["pretrained.py"], "check_pretrained_argument": ["run_state.py"]}


# --- checkpoint choice (findings 7, 9) ------------------------------------------------------------------

def _checkpoint(folder: Path, name: str, epoch: int | None, run_id: str | None = "r1", sidecar: str | None = None):
    """A fake checkpoint: its content is the epoch (or junk: damaged) and, optionally, a sidecar."""
    (folder / name).write_text("junk" if epoch is None else str(epoch))
    if sidecar is not None:
        (folder / f"{name}.nnprog.json").write_text(sidecar)
    elif epoch is not None:
        write_record(folder / f"{name}.nnprog.json", CheckpointState(current_epoch=epoch, run_id=run_id))


def _read_epoch(path: Path) -> int:
    return int(path.read_text())  # "junk" raises ValueError, as torch.load raises for a truncated file


def test_intact_checkpoint_is_used(tmp_path):
    _checkpoint(tmp_path, "checkpoint_latest.pth", 5)
    chosen, message = choose_checkpoint(tmp_path / "checkpoint_latest.pth", "r1", True, _read_epoch)
    assert chosen.path.name == "checkpoint_latest.pth" and chosen.current_epoch == 5 and message is None


def test_damaged_latest_falls_back_to_the_newest_intact_checkpoint(tmp_path):
    _checkpoint(tmp_path, "checkpoint_latest.pth", None)
    _checkpoint(tmp_path, "checkpoint_best.pth", 3)
    chosen, message = choose_checkpoint(tmp_path / "checkpoint_latest.pth", "r1", True, _read_epoch)
    assert chosen.path.name == "checkpoint_best.pth" and chosen.current_epoch == 3
    assert "checkpoint_latest.pth cannot be read" in message and "Continuing from checkpoint_best.pth (epoch 3)" \
        in message


def test_invalid_sidecar_json_is_named_and_treated_as_damage(tmp_path):
    _checkpoint(tmp_path, "checkpoint_latest.pth", 6, sidecar="{not json")
    _checkpoint(tmp_path, "checkpoint_best.pth", 2)
    chosen, message = choose_checkpoint(tmp_path / "checkpoint_latest.pth", "r1", True, _read_epoch)
    assert chosen.path.name == "checkpoint_best.pth"
    assert "checkpoint_latest.pth.nnprog.json is not valid JSON" in message
    with pytest.raises(RunStateError, match="checkpoint_latest.pth.nnprog.json is not valid JSON"):
        choose_checkpoint(tmp_path / "checkpoint_latest.pth", "r1", False, _read_epoch)


def test_sidecar_of_another_epoch_or_run_is_not_used(tmp_path):
    _checkpoint(tmp_path, "checkpoint_latest.pth", 6)
    write_record(tmp_path / "checkpoint_latest.pth.nnprog.json", CheckpointState(current_epoch=4, run_id="r1"))
    _checkpoint(tmp_path, "checkpoint_final.pth", 9, run_id="old")  # an earlier run's final checkpoint
    _checkpoint(tmp_path, "checkpoint_best.pth", 3)
    chosen, message = choose_checkpoint(tmp_path / "checkpoint_final.pth", "r1", True, _read_epoch)
    assert chosen.path.name == "checkpoint_best.pth" and "belongs to an earlier run" in message


def test_no_intact_checkpoint_is_one_clear_error(tmp_path):
    _checkpoint(tmp_path, "checkpoint_latest.pth", None)
    _checkpoint(tmp_path, "checkpoint_best.pth", None)
    with pytest.raises(RunStateError) as failure:
        choose_checkpoint(tmp_path / "checkpoint_latest.pth", "r1", True, _read_epoch)
    assert "no intact checkpoint" in str(failure.value) and f"remove {tmp_path}" in str(failure.value)


def test_validation_never_falls_back(tmp_path):
    _checkpoint(tmp_path, "checkpoint_final.pth", None)
    _checkpoint(tmp_path, "checkpoint_best.pth", 3)
    with pytest.raises(RunStateError, match="cannot use .*checkpoint_final.pth"):
        choose_checkpoint(tmp_path / "checkpoint_final.pth", "r1", False, _read_epoch)


def test_real_truncated_checkpoint_is_detected(tmp_path):
    import torch

    torch.save({"current_epoch": 7, "weights": torch.zeros(1000)}, tmp_path / "checkpoint_best.pth")
    data = (tmp_path / "checkpoint_best.pth").read_bytes()
    (tmp_path / "checkpoint_latest.pth").write_bytes(data[: len(data) // 2])
    for name, epoch in (("checkpoint_best.pth", 7), ("checkpoint_latest.pth", None)):
        if epoch is not None:
            write_record(tmp_path / f"{name}.nnprog.json", CheckpointState(current_epoch=epoch))
    chosen, message = choose_checkpoint(tmp_path / "checkpoint_latest.pth", None, True)
    assert chosen.path.name == "checkpoint_best.pth" and chosen.current_epoch == 7 and "damaged" in message


def _saved_checkpoint(folder: Path, name: str, epoch: int, run_id: str | None = "r1") -> Path:
    """A real torch checkpoint with a sidecar as the trainers write it (sha256 of the file's content)."""
    import torch

    path = folder / name
    torch.save({"current_epoch": epoch, "network_weights": {"w": torch.arange(4096.0)}}, path)
    write_record(checkpoint_state_path(path), CheckpointState(current_epoch=epoch, run_id=run_id,
                                                              sha256=file_sha256(path)))
    return path


def test_changed_checkpoint_content_falls_back_under_c_and_stops_validation(tmp_path):
    """Issue #20: 64 bytes changed inside the tensor data load without a complaint from torch; the checksum in the
    sidecar catches them: --c continues from the newest intact checkpoint, --val stops, both name the file."""
    import torch

    latest = _saved_checkpoint(tmp_path, "checkpoint_latest.pth", 7)
    _saved_checkpoint(tmp_path, "checkpoint_best.pth", 5)
    assert choose_checkpoint(latest, "r1", True)[1] is None, "intact: no message"
    flip_tensor_bytes(latest)
    assert torch.load(latest, map_location="cpu", weights_only=False)["current_epoch"] == 7, "torch still loads it"
    chosen, message = choose_checkpoint(latest, "r1", True)
    assert chosen.path.name == "checkpoint_best.pth" and chosen.current_epoch == 5
    assert "checkpoint_latest.pth does not match the sha256 in checkpoint_latest.pth.nnprog.json" in message
    with pytest.raises(RunStateError, match=r"cannot use .*checkpoint_latest.pth: checkpoint_latest.pth does not "
                                            r"match the sha256"):
        choose_checkpoint(latest, "r1", False)


def test_verify_names_damaged_and_unverified_checkpoints(tmp_path, capsys):
    from nnunet_progressive.cli.main import main

    fold = tmp_path / "fold_0"
    fold.mkdir()
    latest = _saved_checkpoint(fold, "checkpoint_latest.pth", 7)
    _saved_checkpoint(fold, "checkpoint_best.pth", 5)
    (fold / "checkpoint_final.pth").write_bytes((fold / "checkpoint_best.pth").read_bytes())  # no sidecar
    assert main(["verify", str(tmp_path)]) == 0
    flip_tensor_bytes(latest)
    assert main(["verify", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()[-4:]
    assert lines[0].startswith("verified") and lines[0].endswith("checkpoint_best.pth")
    assert lines[1].startswith("unverified") and "checkpoint_final.pth: no checkpoint_final.pth.nnprog.json" in lines[1]
    assert lines[2].startswith("damaged") and "checkpoint_latest.pth does not match the sha256" in lines[2]
    assert lines[3].startswith("1 of 3 checkpoints damaged")
    assert main(["verify", str(tmp_path / "missing")]) == 2


# --- hook order (issue #9) ----------------------------------------------------------------------------

def test_every_trainer_lists_the_mixins_in_the_stated_order():
    rank = {name: i for i, name in enumerate(MIXIN_ORDER)}
    for name, trainer in TRAINERS.items():
        mixins = package_mixins(trainer)
        assert mixins[-2:] == ["RunLengthMixin", "AugmentationPlacementMixin"], name
        assert mixins == sorted(mixins, key=rank.get), f"{name}: {mixins}"
        names = [c.__name__ for c in trainer.__mro__]
        assert names.index("RunLengthMixin") < names.index("nnUNetTrainer"), "mixins come before nnU-Net's trainer"


def test_pdl_trainers_list_stop_at_dice_and_combined_mro_is_as_stated():
    for name in ("nnUNetTrainer_PDL", "nnUNetTrainer_PDL_SimilarFirst", "nnUNetTrainer_PDL_Random",
                 "nnUNetTrainer_PDL_PGPS_Efficiency"):
        assert TRAINERS[name].__bases__[0].__name__ == "StopAtDiceMixin", name
    combined = TRAINERS["nnUNetTrainer_PDL_PGPS_Efficiency"]
    assert package_mixins(combined) == ["StopAtDiceMixin", "ProgressiveDataMixin", "ProgressivePatchMixin",
                                        "PatchSizeMixin", "StagedTrainingLoaderMixin", "RunLengthMixin",
                                        "AugmentationPlacementMixin"]
    rpss = TRAINERS["nnUNetTrainer_RPSS_StopAtDice"]
    assert "ProgressivePatchMixin" not in package_mixins(rpss), "RPSS is no PGPS subclass that skips it"


PACKAGE_HOOKS = {"derive_from_settings", "progressive_state", "restore_progressive_state", "knob_features",
                 "settings_of_older_version"}  # the package's own hooks (RunLengthMixin), chained like nnU-Net's


def _every_composition() -> list[type]:
    """One trainer of each composition (mixins, nnU-Net base, method attributes): the variants of one composition
    (epochs, Primus sizes) run the same hooks."""
    from nnunet_progressive.nnunet.catalogue import CATALOGUE
    from nnunet_progressive.nnunet.orchestration.discovery import package_trainer_class

    compositions = {}
    for name in CATALOGUE:
        trainer = package_trainer_class(name)
        key = (tuple(c for c in trainer.__mro__ if c.__module__.startswith("nnunet_progressive.")),
               *(repr(getattr(trainer, a, None)) for a in ("pgps_mode", "pdl_order", "finetune_recipe", "recipe")))
        compositions.setdefault(key, trainer)
    return list(compositions.values())


def test_every_mixin_hook_reaches_the_next_class(monkeypatch):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_progressive.nnunet.hooks import training_process
    from nnunet_progressive.nnunet.variants import replacement_conflicts

    monkeypatch.setattr(training_process, "install", lambda: None)  # RunLengthMixin.__init__: hooks of this process
    checked, problems = set(), set()
    for trainer in _every_composition():
        problems |= set(skipped_hooks(trainer, nnUNetTrainer, PACKAGE_HOOKS))
        checked |= {(cls.__name__, hook) for cls, hook, _ in hooks_of(trainer, nnUNetTrainer, PACKAGE_HOOKS)}
        assert not replacement_conflicts(trainer.__mro__), trainer.__name__
        mro = [c.__name__ for c in trainer.__mro__]
        if "RecipeStepMixin" in mro:  # it replaces nnU-Net's step: directly above nnU-Net's trainer
            assert mro[mro.index("RecipeStepMixin") + 1] == "nnUNetTrainer", f"{trainer.__name__}: {mro}"
    assert not problems, sorted(problems)
    for expected in (("FineTuningMixin", "configure_optimizers"), ("RunLengthMixin", "__init__"),
                     ("StagedTrainingLoaderMixin", "on_train_epoch_start"), ("PrimusGridMixin",
                     "build_network_architecture"), ("ProgressivePatchMixin", "knob_features")):
        assert expected in checked, expected
    assert len(checked) >= 60


def test_a_mixin_that_drops_its_super_call_is_found(monkeypatch):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_progressive.nnunet.hooks import training_process
    from nnunet_progressive.nnunet.hooks.pgps import ProgressivePatchMixin

    monkeypatch.setattr(training_process, "install", lambda: None)

    class ForgetfulPatch(ProgressivePatchMixin):
        def on_train_epoch_start(self):
            self.noted = True  # no super(): the loader switch, timing and nnU-Net's learning-rate step never run

        def progressive_state(self) -> dict:
            return {"noted": True}  # no super(): the checkpoint's sidecar would lose every other mixin's state

    class CarefulPatch(ProgressivePatchMixin):
        def on_train_epoch_start(self):
            self.noted = True
            super().on_train_epoch_start()

        def progressive_state(self) -> dict:
            return {**super().progressive_state(), "noted": True}

    for mixin in (ForgetfulPatch, CarefulPatch):
        mixin.__module__ = "nnunet_progressive.tests"
    forgetful = type("Forgetful", (ForgetfulPatch, nnUNetTrainer), {"__module__": __name__})
    assert sorted(skipped_hooks(forgetful, nnUNetTrainer, PACKAGE_HOOKS)) == [
        "ForgetfulPatch.on_train_epoch_start does not call PatchSizeMixin.on_train_epoch_start",
        "ForgetfulPatch.progressive_state does not call PatchSizeMixin.progressive_state"]
    careful = type("Careful", (CarefulPatch, nnUNetTrainer), {"__module__": __name__})
    assert skipped_hooks(careful, nnUNetTrainer, PACKAGE_HOOKS) == []


def test_stop_at_dice_carries_no_hook_of_pdl():
    from nnunet_progressive.nnunet.hooks.pdl import ProgressiveDataMixin
    from nnunet_progressive.nnunet.hooks.stopping import StopAtDiceMixin

    own = set(vars(StopAtDiceMixin))
    pdl_only = set(vars(ProgressiveDataMixin)) - {"__init__", "__module__", "__doc__", "knob_features",
                                                   "derive_from_settings", "progressive_state",
                                                   "restore_progressive_state", "on_train_start",
                                                   "on_train_epoch_end", "training_data_label"}
    assert not own & pdl_only
    assert "_data_stage_label" not in own and not issubclass(ProgressiveDataMixin, StopAtDiceMixin)


# --- timing (finding 4) ---------------------------------------------------------------------------------

def test_training_time_excludes_checks():
    starts, ends = [0.0, 10.0, 20.0], [9.0, 19.0, 29.0]
    assert epoch_training_seconds(starts, ends, {1: 4.0}) == [9.0, 5.0, 9.0]
    assert train_wall_seconds(starts, ends[:2], {1: 4.0}) == 14.0


# --- workers die with the training process (finding 8) ------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux only")
def test_forked_children_die_with_a_killed_parent():
    code = ("import multiprocessing as mp, time\n"
            "from nnunet_progressive.nnunet.hooks import training_process\n"
            "training_process.install()\n"
            "ps = [mp.get_context('fork').Process(target=time.sleep, args=(60,)) for _ in range(2)]\n"
            "[p.start() for p in ps]\n"
            "print(' '.join(str(p.pid) for p in ps), flush=True)\n"
            "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    children = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(children) == 2 and all(_alive(pid) for pid in children)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while any(_alive(pid) for pid in children) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in children)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux only")
def test_spawned_children_die_with_a_killed_parent():
    """Issue #20: a 'spawn' pool (as nnU-Net's final validation exports with) and multiprocessing's resource
    tracker end when the process that started them is killed with SIGKILL."""
    code = ("import multiprocessing as mp, time\n"
            "from nnunet_progressive.nnunet.hooks import training_process\n"
            "training_process.install()\n"
            "if __name__ == '__main__':\n"
            "    pool = mp.get_context('spawn').Pool(2)\n"
            "    print(pool.map(abs, [-1, -2]), flush=True)\n"  # the pool serves
            "    pending = pool.map_async(time.sleep, [60, 60])\n"
            "    time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    started: set[int] = set()
    try:
        assert parent.stdout.readline().strip() == "[1, 2]"
        started = descendants(parent.pid)
        commands = [command_line(pid) for pid in started]
        assert sum("spawn_main" in c for c in commands) == 2 and sum("resource_tracker" in c for c in commands) == 1
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert not left_alive(started, timeout=20), "spawned processes outlived their killed parent"
    finally:
        kill_all({parent.pid} | started)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux only")
def test_commands_of_the_runner_die_with_a_killed_parent():
    """Issue #20: a command the runner started (as `nnprog benchmark run` starts nnUNetv2_train) ends when the
    process that started it is killed with SIGKILL."""
    code = ("import os\n"
            "from nnunet_progressive.nnunet.orchestration.runner import run_logged\n"
            "run_logged(['sleep', '60'], dict(os.environ), None)\n")
    parent = subprocess.Popen([sys.executable, "-c", code])
    started: set[int] = set()
    try:
        deadline = time.time() + 30
        while not any("sleep" in command_line(pid) for pid in started) and time.time() < deadline:
            time.sleep(0.1)
            started = descendants(parent.pid)
        assert any("sleep" in command_line(pid) for pid in started), started
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert not left_alive(started, timeout=10), "the command outlived the killed process that started it"
    finally:
        kill_all({parent.pid} | started)


def test_package_errors_end_a_process_with_one_line():
    code = ("from nnunet_progressive.nnunet.hooks import training_process\n"
            "from nnunet_progressive.core.errors import ProgressiveConfigError\n"
            "training_process.install()\n"
            "raise ProgressiveConfigError('NNPROG_EPOCH is not a knob')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("error: NNPROG_EPOCH is not a knob")
    other = subprocess.run([sys.executable, "-c", code.replace("ProgressiveConfigError('", "KeyError('")],
                           capture_output=True, text=True)
    assert "Traceback" in other.stderr, "other errors keep Python's report"


@pytest.mark.parametrize("raised, cleans", [("ValueError('x')", True), ("KeyboardInterrupt()", False)])
def test_an_error_that_ends_the_process_runs_the_failed_start_clean_up(tmp_path, raised, cleans):
    """training_process.on_error: errors (not Ctrl-C, which may be followed by --c) let trainers remove a failed
    start; a callback whose object is gone is skipped."""
    marker = tmp_path / "cleaned"
    code = ("from pathlib import Path\n"
            "from nnunet_progressive.nnunet.hooks import training_process\n"
            "training_process.install()\n"
            "class Trainer:\n"
            f"    def clean(self, error): Path({str(marker)!r}).write_text(type(error).__name__)\n"
            "class Gone:\n"
            "    def clean(self, error): raise SystemExit('a callback of a gone object ran')\n"
            "trainer = Trainer()\n"
            "training_process.on_error(trainer.clean)\n"
            "training_process.on_error(Gone().clean)\n"
            f"raise {raised}\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "gone object" not in result.stderr
    assert marker.exists() == cleans and (not cleans or marker.read_text() == "ValueError")


def test_a_forked_child_that_fails_never_runs_the_parents_clean_up(tmp_path):
    """An augmentation worker is a fork of the training process and inherits its clean-up callbacks; an error that
    ends the worker (e.g. after the training was killed) must not remove the training's fold folder."""
    marker = tmp_path / "cleaned"
    code = ("import os\n"
            "from pathlib import Path\n"
            "from nnunet_progressive.nnunet.hooks import training_process\n"
            "training_process.install()\n"
            "class Trainer:\n"
            f"    def clean(self, error): Path({str(marker)!r}).write_text(str(os.getpid()))\n"
            "trainer = Trainer()\n"
            "training_process.on_error(trainer.clean)\n"
            "child = os.fork()\n"
            "if child == 0:\n"
            "    raise ValueError('the worker fails')\n"
            "os.waitpid(child, 0)\n"
            "print('parent', os.getpid())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and "the worker fails" in result.stderr, result.stderr
    assert not marker.exists(), "the forked child ran the training's clean-up"


def test_records_read_back_typed(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"current_epoch": 3, "dice_checks": [], "new_key": 1}))
    from nnunet_progressive.core.records import read_record

    state = read_record(path, CheckpointState)
    assert state.current_epoch == 3 and state.to_json()["new_key"] == 1 and state.ended is False
    path.write_text("[1, 2]")
    with pytest.raises(ProgressiveConfigError, match="expected a JSON object"):
        read_record(path, CheckpointState)


def test_the_pretrained_argument_is_read_in_both_of_argparses_spellings():
    """nnU-Net's parser takes ``-pretrained_weights FILE`` and ``-pretrained_weights=FILE``: both are the run's
    weights (the second was missed: no checks, no record, fresh heads)."""
    from nnunet_progressive.nnunet.hooks.pretrained import pretrained_weights_argument

    base = ["nnUNetv2_train", "4", "3d_fullres", "0", "-tr", "nnUNetTrainer_Finetune"]
    assert pretrained_weights_argument([*base, "-pretrained_weights", "/w/a.pth"]) == "/w/a.pth"
    assert pretrained_weights_argument([*base, "-pretrained_weights=/w/b.pth", "-device", "cpu"]) == "/w/b.pth"
    assert pretrained_weights_argument(base) is None
    assert pretrained_weights_argument([*base, "-pretrained_weights"]) is None  # nnU-Net's parser refuses it
