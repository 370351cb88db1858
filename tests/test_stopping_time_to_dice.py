"""Time to Dice: pure table functions on synthetic checks (known answers) and `nnprog compare`."""
from __future__ import annotations

import csv
import io
import json

import pytest

from nnunet_progressive.cli.main import main
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.stopping.time_to_dice import (
    default_thresholds,
    parse_thresholds,
    plot_dice_vs_time,
    table_csv,
    table_markdown,
    time_to_dice_table,
    time_to_reach,
    validate_time_to_dice,
)


def checks(*pairs):
    """(seconds, dice) pairs -> checks as the StopAtDice trainers write them."""
    return [{"epoch": i, "train_wall_seconds": float(s), "check_seconds": 1.0, "dice": d, "dice_per_class": [d],
             "stage": "all"} for i, (s, d) in enumerate(pairs)]


BASELINE = checks((100, 0.50), (200, 0.70), (300, 0.80), (400, 0.85))
FAST = checks((50, 0.60), (100, 0.80), (150, 0.82))
SLOW = checks((150, 0.40), (300, 0.65))


def test_time_to_reach_takes_the_first_check_at_or_above():
    assert time_to_reach(BASELINE, 0.7) == 200.0  # equal counts
    assert time_to_reach(BASELINE, 0.71) == 300.0
    assert time_to_reach(BASELINE, 0.1) == 100.0
    assert time_to_reach(BASELINE, 0.9) is None
    assert time_to_reach([], 0.5) is None
    assert time_to_reach(list(reversed(BASELINE)), 0.8) == 300.0  # order of the list does not matter
    # a dip after reaching does not matter
    assert time_to_reach(checks((10, 0.8), (20, 0.5)), 0.75) == 10.0


def test_default_thresholds_span_the_reached_range_in_steps_of_005():
    runs = {"a": BASELINE, "b": FAST}
    assert default_thresholds(runs) == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85]
    assert default_thresholds({"a": checks((1, 0.12), (2, 0.31))}) == [0.15, 0.2, 0.25, 0.3]
    assert default_thresholds({"a": checks((1, 0.3))}) == [0.3]
    assert default_thresholds({"a": []}) == []
    assert default_thresholds({"a": checks((1, 0.12), (2, 0.31))}, step=0.1) == [0.2, 0.3]
    assert default_thresholds({"a": checks((1, float("nan")), (2, 0.21), (3, 0.31))}) == [0.25, 0.3]
    assert time_to_reach(checks((1, float("nan")), (2, 0.31)), 0.3) == 2.0


def test_table_times_and_ratios_known_answers():
    rows = time_to_dice_table({"base": BASELINE, "fast": FAST, "slow": SLOW}, [0.8, 0.6, 0.85], "base")
    assert [r.threshold for r in rows] == [0.6, 0.8, 0.85]
    at_06, at_08, at_085 = rows
    assert at_06.seconds == {"base": 200.0, "fast": 50.0, "slow": 300.0}
    assert at_06.ratio == {"base": 1.0, "fast": 0.25, "slow": 1.5}
    assert at_08.seconds == {"base": 300.0, "fast": 100.0, "slow": None}
    assert at_08.ratio["fast"] == pytest.approx(1 / 3) and at_08.ratio["slow"] is None
    # the reference never reached 0.85 within FAST's range -> base 400, fast never
    assert at_085.seconds == {"base": 400.0, "fast": None, "slow": None}
    assert at_085.ratio == {"base": 1.0, "fast": None, "slow": None}


def test_ratio_is_none_where_the_reference_never_reached():
    rows = time_to_dice_table({"ref": SLOW, "other": FAST}, [0.8], "ref")
    assert rows[0].seconds == {"ref": None, "other": 100.0} and rows[0].ratio == {"ref": None, "other": None}
    with pytest.raises(ValueError, match="reference 'nope'"):
        time_to_dice_table({"ref": SLOW}, [0.5], "nope")


def test_markdown_and_csv_rendering():
    rows = time_to_dice_table({"base": BASELINE, "fast": FAST}, [0.6, 0.85], "base")
    markdown = table_markdown(rows, "base")
    lines = markdown.strip().splitlines()
    assert lines[0] == "| Dice | base (s) | fast (s) | fast / ref |"
    assert lines[2] == "| 0.60 | 200 | 50.0 | 0.25 |"
    assert lines[3] == "| 0.85 | 400 | not reached | - |"
    parsed = list(csv.DictReader(io.StringIO(table_csv(rows, "base"))))
    assert len(parsed) == 4
    assert parsed[1] == {"threshold": "0.6", "run": "fast", "train_wall_seconds": "50.0",
                         "ratio_to_reference": "0.25", "reference": "base"}
    assert parsed[3]["train_wall_seconds"] == "" and parsed[3]["ratio_to_reference"] == ""


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "plot.png"
    plot_dice_vs_time({"base": BASELINE, "fast": FAST}, path, [0.7, 0.8], "base")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parse_thresholds_and_validation():
    assert parse_thresholds("0.8, 0.7,0.8") == [0.7, 0.8]
    for bad in ("0.7;0.8", "1.5", "", "0"):
        with pytest.raises(ProgressiveConfigError, match="thresholds"):
            parse_thresholds(bad)
    with pytest.raises(ProgressiveConfigError, match="`checks` list"):
        validate_time_to_dice({"trainer": "x"})
    with pytest.raises(ProgressiveConfigError, match=r"checks\[0\].dice should be a number"):
        validate_time_to_dice({"checks": [{"train_wall_seconds": 1.0, "dice": "high"}]})


def _fold(root, trainer, fold, checks_list, dataset="Dataset004_Hippocampus"):
    folder = root / dataset / f"{trainer}__nnUNetPlans__3d_fullres" / f"fold_{fold}"
    folder.mkdir(parents=True)
    (folder / "time_to_dice.json").write_text(json.dumps({
        "trainer": trainer, "target_dice": 0.8, "check_every": 5, "method": "sliding_window",
        "checks": checks_list, "reached": None, "stopped_by": "target"}))
    return folder


def test_compare_cli_writes_csv_markdown_and_png(tmp_path, capsys):
    base = _fold(tmp_path, "nnUNetTrainer_StopAtDice", 0, BASELINE)
    fast = _fold(tmp_path, "nnUNetTrainer_PDL_StopAtDice", 0, FAST)
    prefix = tmp_path / "out" / "cmp"
    assert main(["compare", str(base), str(fast), "--thresholds", "0.6,0.8", "-o", str(prefix)]) == 0
    printed = capsys.readouterr().out
    assert "| 0.80 | 300 | 100 | 0.33 |" in printed
    rows = list(csv.DictReader(open(prefix.with_suffix(".csv"))))
    assert [(r["run"], r["train_wall_seconds"]) for r in rows] == [
        ("nnUNetTrainer_StopAtDice fold 0", "200.0"), ("nnUNetTrainer_PDL_StopAtDice fold 0", "50.0"),
        ("nnUNetTrainer_StopAtDice fold 0", "300.0"), ("nnUNetTrainer_PDL_StopAtDice fold 0", "100.0")]
    assert "Reference: **nnUNetTrainer_StopAtDice fold 0**" in prefix.with_suffix(".md").read_text()
    assert prefix.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_compare_cli_reference_labels_and_default_thresholds(tmp_path):
    base = _fold(tmp_path, "T_StopAtDice", 0, BASELINE)
    other = _fold(tmp_path, "T_StopAtDice", 0, FAST, dataset="Dataset005_Prostate")
    prefix = tmp_path / "cmp"
    # the reference is not in the list: it is added; labels are given per RUN_FOLDER
    assert main(["compare", str(other), "--reference", str(base), "--labels", "pdl", "-o", str(prefix)]) == 0
    rows = list(csv.DictReader(open(prefix.with_suffix(".csv"))))
    assert {r["reference"] for r in rows} == {"T_StopAtDice fold 0"}
    assert [r["threshold"] for r in rows[::2]] == ["0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85"]
    # identical trainer and fold in two datasets: labels carry the dataset
    assert main(["compare", str(base), str(other), "-o", str(prefix)]) == 0
    runs = {r["run"] for r in csv.DictReader(open(prefix.with_suffix(".csv")))}
    assert runs == {"T_StopAtDice fold 0 (Dataset004_Hippocampus)", "T_StopAtDice fold 0 (Dataset005_Prostate)"}


def test_compare_cli_missing_log_names_the_trainers_that_write_it(tmp_path, capsys):
    folder = tmp_path / "fold_0"
    folder.mkdir()
    assert main(["compare", str(folder), "-o", str(tmp_path / "x")]) == 2
    error = capsys.readouterr().err
    assert "time_to_dice.json does not exist" in error and "_StopAtDice" in error and "PDL" in error
