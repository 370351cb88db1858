"""The fault matrix (issue #20, scripts/fault_matrix.py): its reading of runs, and its quick part through the real
nnUNetv2_train: a PDL run killed with SIGKILL at its Dice check, at its switch from Set 1 to all cases and while it
writes a checkpoint, each resumed with --c in a fresh environment, against one uninterrupted run.

The whole matrix (every trainer family at each of its phases) is the script: python scripts/fault_matrix.py
--workspace DIR; its table is in docs/trust.md.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fault_matrix.py"


@pytest.fixture(scope="module")
def fault_matrix():
    spec = importlib.util.spec_from_file_location("fault_matrix", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


LOG = """\
2026-12-07 06:09:02.219690: Training loader rebuilt for epoch 0 in 0.47 s: PDL stage 1/2: Set 1 (random) = 2 \
training cases ['c1', 'c2']
2026-12-07 06:09:02.220867: Epoch 0
2026-12-07 06:09:02.221036: Current learning rate: 0.01
2026-12-07 06:09:04.488722: PDL stage 1/2 cases seen this epoch: ['c1', 'c2']
2026-12-07 06:09:04.488722: Validation Dice check (pseudo_dice) after epoch 0: 0.0444 [0.0842, 0.0047]
2026-12-07 06:09:05.540201: Epoch 1
2026-12-07 06:09:07.168489: PDL stage 1/2 cases seen this epoch: ['c1']
2026-12-07 06:09:17.655605: Training loader rebuilt for epoch 2 in 0.78 s: PDL stage 2/2: all training cases of \
the fold
2026-12-07 06:09:17.683186: Epoch 2
2026-12-07 06:09:18.168489: PDL stage 2/2 cases seen this epoch: ['c3', 'c1']
"""


def test_epoch_records_follow_the_loader_and_the_epochs_own_lines(fault_matrix):
    records = fault_matrix.epoch_records([LOG], [0.01, 0.008, 0.006], 3, [{"epoch": 0, "stage": "set1"}],
                                        ["c1", "c2", "c3"])
    assert [r["pdl"] for r in records] == ["set1", "set1", "all"]
    assert [r["pdl_cases"] for r in records] == [["c1", "c2"], ["c1", "c2"], ["c1", "c2", "c3"]]
    assert [r["cases_seen_in_stage"] for r in records] == [True, True, True]
    assert [r["check"] for r in records] == ["set1", None, None]
    assert fault_matrix.differences(records, records) == []


def test_a_resumed_run_that_differs_is_named_by_epoch_and_field(fault_matrix):
    reference = fault_matrix.epoch_records([LOG], [0.01, 0.008, 0.006], 3, [], ["c1", "c2", "c3"])
    # the resumed run of a wrong resume: the loader of Set 1 again at epoch 2, a case of another stage seen
    wrong_log = LOG.replace("PDL stage 2/2: all training cases of", "PDL stage 1/2: Set 1 (random) = 2 training "
                            "cases ['c1', 'c2'] of").replace("this epoch: ['c3', 'c1']", "this epoch: ['c3']")
    resumed = fault_matrix.epoch_records([wrong_log], [0.01, 0.008, 0.007], 3, [], ["c1", "c2", "c3"])
    found = fault_matrix.differences(reference, resumed)
    assert "epoch 2 lr: resumed 0.007, uninterrupted 0.006" in found
    assert "epoch 2 pdl: resumed 'set1', uninterrupted 'all'" in found
    assert "epoch 2: cases seen outside the epoch's case list" in found
    assert fault_matrix.differences(reference, resumed[:2])[0] == "2 epochs, the uninterrupted run 3"


def test_phases_are_reached_at_their_marker_and_check_where_the_stop_came(fault_matrix, tmp_path):
    fold = tmp_path / "fold_0"
    fold.mkdir()
    seen = fault_matrix.Observation(LOG, fold)
    assert fault_matrix.set1_to_all(2).reached(seen) and not fault_matrix.set1_to_all(1).reached(seen)
    assert fault_matrix.dice_check(0).reached(seen) and not fault_matrix.dice_check(1).reached(seen)
    assert fault_matrix.mid_epoch(0).reached(seen) and not fault_matrix.mid_epoch(1).reached(seen)
    assert fault_matrix.dice_check(0).inside(seen) == "at epoch 0, checkpoint holds None epochs"
    (fold / "checkpoint_latest.pth.nnprog.json").write_text('{"current_epoch": 1}')
    assert fault_matrix.dice_check(0).inside(seen) is None, "the checkpoint of epoch 0 was written: too late"
    assert not fault_matrix.checkpoint_write(0).reached(seen)
    (fold / ".checkpoint_latest.pth.ab12.tmp").write_bytes(b"")
    assert fault_matrix.checkpoint_write(0).inside(seen) == ".checkpoint_latest.pth.ab12.tmp being written"
    assert fault_matrix.before_first_checkpoint().inside(seen) == "epoch 0, no checkpoint yet"


def test_every_trainer_family_and_phase_is_in_the_matrix(fault_matrix):
    combinations = fault_matrix.combinations()
    trainers = {c.trainer for c in combinations}
    assert {"nnUNetTrainer_PGPS_Efficiency", "nnUNetTrainer_PGPS_Performance", "nnUNetTrainer_RPSS",
            "nnUNetTrainer_PDL_Random", "nnUNetTrainer_StopAtDice", "nnUNetTrainer_Finetune",
            "nnUNetTrainer_Finetune_HeadFirst", "nnUNetTrainer_Finetune_FrozenEncoder",
            "nnUNetTrainer_TinyUNETR_PGPS_Efficiency", "nnUNetTrainer_TinySwinUNETR_PGPS_Performance"} <= trainers
    assert {c.preset for c in combinations} <= set(fault_matrix.DATASETS)
    phases = " ".join(c.phase.name for c in combinations)
    for phase in ("mid-epoch", "checkpoint write", "stage switch", "Set 1 -> all", "Dice check", "final validation",
                  "before the first checkpoint", "target Dice reached"):
        assert phase in phases
    assert set(fault_matrix.QUICK) <= {c.name for c in combinations}
    assert len({c.name for c in combinations}) == len(combinations)


@pytest.mark.e2e
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify and /proc: Linux only")
def test_quick_fault_matrix_resumes_equal_the_uninterrupted_run(fault_matrix, tiny3d_dataset, tmp_path_factory):
    matrix = fault_matrix.Matrix(tiny3d_dataset, tmp_path_factory.mktemp("fault_matrix"))
    quick = [c for c in fault_matrix.combinations() if c.name in fault_matrix.QUICK]
    outcomes = [matrix.run(combination, index) for index, combination in enumerate(quick)]
    table = fault_matrix.markdown_table(outcomes)
    for outcome in outcomes:
        assert outcome.hit, f"{outcome.name}: the stop came after the phase\n{table}"
        assert outcome.passed, f"{outcome.name}\n{table}"
    assert table.endswith(f"{len(quick)} of {len(quick)} combinations pass.\n")
