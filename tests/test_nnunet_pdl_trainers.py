"""PDL and stop-at-Dice end to end: nnprog rank, then the real nnUNetv2_train / nnUNetv2_predict on CPU."""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from dataclasses import replace

import pytest
from cli_command import NNPROG
from training_logs import interrupt_at_epoch, matches_per_epoch, seeded_knobs

from nnunet_progressive.nnunet.orchestration.runner import TrainingRun, predict, train
from nnunet_progressive.pdl.subsets import select_set1

pytestmark = pytest.mark.e2e

FAST = {"NNPROG_ITERATIONS": "3", "NNPROG_VAL_ITERATIONS": "1", "NNPROG_FINAL_VALIDATION": "off"}
SEEN_LINE = re.compile(r"PDL stage (\d)/2 cases seen this epoch: (\[.*\])")


RANKED_FOLDS = (0, 2, 3)


@pytest.fixture(scope="module")
def ranking(tiny3d_dataset):
    """The similarity rankings of tiny3d's folds 0, 2 and 3 (fold -> ranking), written once by `nnprog rank`."""
    result = subprocess.run([*NNPROG, "rank", "-d", str(tiny3d_dataset.dataset_id), "-c", "3d_fullres", "-p",
                             tiny3d_dataset.plans, "--registration", "rigid", "--fold", *map(str, RANKED_FOLDS)],
                            capture_output=True, text=True, env=tiny3d_dataset.folders.environment())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    folder = tiny3d_dataset.preprocessed_dataset
    return {fold: json.loads((folder / f"similarity_ranking_nnUNetPlans_3d_fullres_fold{fold}.json").read_text())
            for fold in RANKED_FOLDS}


@pytest.fixture
def ranked(tiny3d, ranking):
    """tiny3d (with this test's own results folder) and its similarity ranking."""
    return tiny3d, ranking


def _splits(ws, fold):
    splits = json.loads((ws.preprocessed_dataset / "splits_final.json").read_text())
    return splits[fold]["train"], splits[fold]["val"]


def _cases_seen_per_epoch(fold_folder) -> dict[int, tuple[int, set[str]]]:
    return {epoch: (int(m.group(1)), set(ast.literal_eval(m.group(2))))
            for epoch, m in matches_per_epoch(fold_folder, SEEN_LINE).items()}


def test_pdl_trains_set1_first_then_all_and_resumes(ranked, tmp_path):
    ws, ranking = ranked
    run = TrainingRun(str(ws.dataset_id), "3d_fullres", 0, "nnUNetTrainer_PDL", ws.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "6", "NNPROG_SET1_EPOCHS": "3", "NNPROG_CHECK_EVERY": "3",
                             "NNPROG_SAVE_EVERY": "1"})
    log = tmp_path / "train.log"
    fold, resume_epoch = interrupt_at_epoch(run, ws.folders, ws.dataset_name, log, 1)
    assert resume_epoch in (1, 2), "interrupted inside Set 1"
    train(run, ws.folders, log, extra=["--c"])

    training_ids, validation_ids = _splits(ws, 0)
    assert ranking[0]["case_ids"] == sorted(training_ids), "fold 0's ranking ranks its training cases only"
    set1 = select_set1(training_ids, 0.5, "dissimilar_first", ranking[0]["order"])
    assert len(set1) == 3 and not set(set1) & set(validation_ids)
    text = log.read_text()
    assert f"PDL stage 1/2: Set 1 (dissimilar_first) = 3 training cases {set1}" in text
    resumed_line = f"Training loader rebuilt for epoch {resume_epoch} in"
    assert text.count(resumed_line) == 1 and "PDL stage 1/2: Set 1" in text.split(resumed_line)[1].splitlines()[0]
    seen = _cases_seen_per_epoch(fold)
    assert sorted(seen) == list(range(6))
    for epoch in (0, 1, 2):
        assert seen[epoch][0] == 1 and seen[epoch][1] <= set(set1)
    for epoch in (3, 4, 5):
        assert seen[epoch][0] == 2 and seen[epoch][1] <= set(training_ids)
    assert (seen[3][1] | seen[4][1] | seen[5][1]) - set(set1), "stage 2 draws from all training cases"

    time_to_dice = json.loads((fold / "time_to_dice.json").read_text())
    assert [c["epoch"] for c in time_to_dice["checks"]] == [2, 5]
    assert [c["stage"] for c in time_to_dice["checks"]] == ["set1", "all"]
    assert time_to_dice["method"] == "sliding_window" and time_to_dice["stopped_by"] == "max_epochs"
    first, second = time_to_dice["checks"]
    assert 0 < first["train_wall_seconds"] < second["train_wall_seconds"]
    assert len(first["dice_per_class"]) == 2 and 0.0 <= first["dice"] <= 1.0


def test_stop_at_dice_stops_before_max_epochs(tiny3d, tmp_path):
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 1, "nnUNetTrainer_StopAtDice", tiny3d.plans,
                      knobs={"NNPROG_ITERATIONS": "6", "NNPROG_VAL_ITERATIONS": "1", "NNPROG_EPOCHS": "12",
                             "NNPROG_CHECK_EVERY": "1", "NNPROG_TARGET_DICE": "0.001",
                             # unseeded, CI once saw a Dice of 0 at all 12 checks (the network at all background)
                             **seeded_knobs(1)})
    train(run, tiny3d.folders, tmp_path / "train.log")
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    time_to_dice = json.loads((fold / "time_to_dice.json").read_text())
    assert time_to_dice["stopped_by"] == "target"
    assert time_to_dice["reached"]["dice"] >= 0.001  # seed 1: 0.0105 at the first check
    last_epoch = time_to_dice["reached"]["epoch"]
    assert last_epoch < 11 and [c["epoch"] for c in time_to_dice["checks"]] == list(range(last_epoch + 1))
    summary = json.loads((fold / "run_summary.json").read_text())
    assert summary["epochs_done"] == last_epoch + 1
    assert (fold / "checkpoint_final.pth").is_file() and (fold / "validation" / "summary.json").is_file()

    # issue #8, finding 3: the ended run stays ended under --c (nnU-Net's validation runs again)
    kept = {name: (fold / name).read_bytes() for name in ("checkpoint_final.pth", "checkpoint_final.pth.nnprog.json",
                                                          "time_to_dice.json", "run_summary.json")}
    assert json.loads(kept["checkpoint_final.pth.nnprog.json"])["ended"] is True
    (fold / "validation" / "summary.json").unlink()
    train(run, tiny3d.folders, tmp_path / "again.log", extra=["--c"])
    again = (tmp_path / "again.log").read_text()
    assert "This run has ended" in again and not re.search(r": Epoch \d+\s*$", again, re.M), "nothing is trained"
    for name, content in kept.items():
        assert (fold / name).read_bytes() == content, f"{name} must stay as it was"
    assert (fold / "validation" / "summary.json").is_file()
    # --val uses the run's settings; an invalid knob in the environment is only reported (finding 6)
    train(replace(run, knobs={"NNPROG_EPOCHS": "ten"}), tiny3d.folders, tmp_path / "val.log", extra=["--val"])
    assert "WARNING: ignored invalid NNPROG settings" in (tmp_path / "val.log").read_text()


def test_pdl_with_pgps_and_controls_train_and_predict(ranked, tmp_path):
    ws, ranking = ranked
    cheap = {**FAST, "NNPROG_DICE_METHOD": "pseudo_dice", "NNPROG_CHECK_EVERY": "1"}
    combined = TrainingRun(str(ws.dataset_id), "3d_fullres", 2, "nnUNetTrainer_PDL_PGPS_Efficiency", ws.plans,
                           knobs={**cheap, "NNPROG_EPOCHS": "9", "NNPROG_SET1_EPOCHS": "3"})
    train(combined, ws.folders, tmp_path / "combined.log")
    text = (tmp_path / "combined.log").read_text()
    assert "PGPS stage 1/9 | patch 16x8x8 | batch 2 | PDL stage 1/2: Set 1" in text
    assert "PGPS stage 4/9 | patch 24x16x16 | batch 2 | PDL stage 2/2: all training cases" in text
    images = tmp_path / "images"
    images.mkdir()
    source = sorted((ws.folders.raw / ws.dataset_name / "imagesTr").glob("*_0000.nii.gz"))[0]
    shutil.copy(source, images / source.name)
    predict(images, tmp_path / "predictions", combined, ws.folders, tmp_path / "predict.log")
    assert (tmp_path / "predictions" / source.name.replace("_0000", "")).is_file()

    training_ids, _ = _splits(ws, 2)
    assert f"= 3 training cases {select_set1(training_ids, 0.5, 'dissimilar_first', ranking[2]['order'])}" in text
    for trainer, expected, metric in (
        ("nnUNetTrainer_PDL_Random", select_set1(training_ids, 0.5, "random", None, seed=0), {}),
        ("nnUNetTrainer_PDL_SimilarFirst",  # one of the abstracts' metrics alone (issue 23)
         select_set1(training_ids, 0.5, "similar_first", ranking[2]["orders"]["ssim"]),
         {"NNPROG_RANKING_METRIC": "ssim"}),
    ):
        control = replace(combined, trainer=trainer,
                          knobs={**cheap, "NNPROG_EPOCHS": "2", "NNPROG_SET1_EPOCHS": "1", **metric})
        train(control, ws.folders, tmp_path / f"{trainer}.log")
        assert f"= 3 training cases {expected}" in (tmp_path / f"{trainer}.log").read_text()
        if metric:  # the metric is part of the run's identity
            fold = control.output_folder(ws.folders, ws.dataset_name)
            assert json.loads((fold / "nnprog_run.json").read_text())["settings"]["ranking_metric"] == "ssim"


def test_missing_or_stale_ranking_names_the_rank_command(ranked, tmp_path):
    ws, ranking = ranked
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({**ranking[3], "case_list_fingerprint": "0" * 64}))
    all_cases = tmp_path / "all_cases.json"  # a ranking of every case, as versions before issue 23 wrote
    all_cases.write_text(json.dumps({**ranking[3], "settings": {k: v for k, v in ranking[3]["settings"].items()
                                                                if k != "fold"}}))
    for ranking_file, problem in ((tmp_path / "missing.json", "no similarity ranking"), (stale, "it is stale"),
                                  (all_cases, "validation cases of fold 3 included")):
        run = TrainingRun(str(ws.dataset_id), "3d_fullres", 3, "nnUNetTrainer_PDL", ws.plans,
                          knobs={**FAST, "NNPROG_EPOCHS": "4", "NNPROG_SET1_EPOCHS": "2",
                                 "NNPROG_RANKING": str(ranking_file)})
        with pytest.raises(RuntimeError) as failure:
            train(run, ws.folders, tmp_path / "train.log")
        assert problem in str(failure.value)
        # the command writes the ranking where NNPROG_RANKING looks (issue #8, finding 10)
        assert (f"nnprog rank -d {ws.dataset_name} -c 3d_fullres -p {ws.plans} --fold 3 -o {ranking_file}"
                in str(failure.value))
        assert not run.output_folder(ws.folders, ws.dataset_name).exists(), "a failed start leaves no fold folder"
