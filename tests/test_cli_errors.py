"""`nnprog` user errors end in one message on stderr and exit code 2, before any long work (finding 9)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_datasets_converters import make_btcv
from test_nnunet_pdl_ranking import _standard_cases, _write_dataset

from nnunet_progressive.cli.main import main


def _one_error_line(stderr: str, command: str) -> str:
    """The error message (progress bars may share stderr); exactly one, and no traceback."""
    prefix = f"nnprog {command}: error: "
    assert stderr.count(prefix) == 1 and "Traceback" not in stderr, stderr
    return stderr[stderr.index(prefix):].splitlines()[0]


def test_schedule_with_a_dataset_that_is_no_name_or_id(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "nnUNet_preprocessed": str(tmp_path)}
    result = subprocess.run(["nnprog", "schedule", "-d", "abc", "-c", "3d_fullres"], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert "dataset 'abc': expected an id" in _one_error_line(result.stderr, "schedule")


def test_schedule_plot_into_an_unwritable_place_fails_before_the_table(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["schedule", "-d", "4", "-c", "3d_fullres", "--plot", str(blocker / "schedule.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--plot" in _one_error_line(captured.err, "schedule")
    assert main(["schedule", "-d", "4", "-c", "3d_fullres", "--plot", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_rank_output_into_an_unwritable_place_fails_before_the_work(tmp_path, monkeypatch, capsys):
    data_folder = _write_dataset(tmp_path / "pre", _standard_cases())
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["rank", "-d", "901", "-o", str(blocker / "ranking.json")]) == 2
    captured = capsys.readouterr()
    assert "ranking output (-o)" in _one_error_line(captured.err, "rank")
    assert "Ranking" not in captured.out, "no work before the output is known to be writable"
    assert not list(data_folder.parent.glob("*.pairs.json"))


def test_convert_with_a_damaged_case_names_the_file(tmp_path, capsys):
    source = make_btcv(tmp_path / "BTCV", numbers=(1, 2))
    damaged = source / "RawData" / "Training" / "label" / "label0002.nii.gz"
    damaged.write_bytes(damaged.read_bytes()[:20] + b"not the rest of an image")  # a damaged download
    code = main(["convert", "btcv", "--source", str(source), "--raw-root", str(tmp_path / "raw"), "--allow-partial",
                 "-np", "1"])
    assert code == 2
    error = _one_error_line(capsys.readouterr().err, "convert")
    assert "label0002.nii.gz" in error and "img0002" not in error and "damaged" in error
    assert not list((tmp_path / "raw").glob("Dataset*")), "no half-written dataset"


@pytest.mark.parametrize("plot", [False, True])
def test_writable_outputs_pass_the_check(tmp_path, plot):
    from nnunet_progressive.core.io import check_writable

    target = tmp_path / "new" / "deeper" / ("x.png" if plot else "x.json")
    assert check_writable(target) == target and target.parent.is_dir() and not target.exists()
    assert list(target.parent.iterdir()) == [], "the probe file is removed"
