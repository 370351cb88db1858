"""`nnprog` user errors end in one message on stderr and exit code 2, before any long work (finding 9)."""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_command import NNPROG
from test_datasets_converters import make_btcv
from test_nnunet_pdl_ranking import _case, _standard_cases, _write_dataset

from nnunet_progressive.cli.arguments import NumberRange, fraction, int_at_least, positive_int
from nnunet_progressive.cli.main import build_parser, main


def _one_error_line(stderr: str, command: str) -> str:
    """The error message (progress bars may share stderr); exactly one, and no traceback."""
    prefix = f"nnprog {command}: error: "
    assert stderr.count(prefix) == 1 and "Traceback" not in stderr, stderr
    return stderr[stderr.index(prefix):].splitlines()[0]


def test_schedule_with_a_dataset_that_is_no_name_or_id(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "nnUNet_preprocessed": str(tmp_path)}
    result = subprocess.run([*NNPROG, "schedule", "-d", "abc", "-c", "3d_fullres"], capture_output=True, text=True,
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


def _every_parser(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """``parser`` and every subcommand's parser below it, with their prog names."""
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                found += _every_parser(child)
    return found


def _is_numeric(action: argparse.Action) -> bool:
    """An option that takes a number: typed int/float (or a range), or with a numeric default."""
    if action.nargs == 0 or isinstance(action, argparse._SubParsersAction):
        return False  # flags (store_true, version, help) take no value
    default_is_number = isinstance(action.default, int | float) and not isinstance(action.default, bool)
    return action.type in (int, float) or isinstance(action.type, NumberRange) or default_is_number


def test_every_numeric_option_has_a_range():
    parsers = _every_parser(build_parser())
    assert len(parsers) > 10, "the walk reaches the subcommands"
    numeric = [(prog, action) for prog, parser in parsers for action in parser._actions if _is_numeric(action)]
    assert len(numeric) >= 12, [f"{prog} {action.dest}" for prog, action in numeric]
    unchecked = [f"{prog} {'/'.join(action.option_strings) or action.dest}" for prog, action in numeric
                 if not isinstance(action.type, NumberRange)]
    assert unchecked == [], f"numeric options without a range (use nnunet_progressive.cli.arguments): {unchecked}"
    for prog, action in numeric:  # every default lies in its own range
        if action.default is not None:
            assert action.type(str(action.default)) == action.default, (prog, action.dest)


def test_the_walk_finds_an_unchecked_numeric_option():
    parser = build_parser()
    extra = parser._subparsers._group_actions[0].choices["rank"]
    extra.add_argument("--new-count", type=int, default=3)
    assert any(p == "nnprog rank" and a.dest == "new_count" and not isinstance(a.type, NumberRange)
               for p, par in _every_parser(parser) for a in par._actions if _is_numeric(a))


@pytest.mark.parametrize("argv, option", [
    (["transfer", "sources", "-t", "4", "--grid", "0"], "--grid: expected an integer >= 16, got 0"),
    (["transfer", "sources", "-t", "4", "--image-cases", "-1"], "--image-cases: expected an integer >= 1, got -1"),
    (["transfer", "adapt", "x.pth", "-d", "4", "-c", "2d", "-o", "y.pth", "--min-share", "nan"],
     "--min-share: expected a number in [0, 1], got nan"),
    (["transfer", "adapt", "x.pth", "-d", "4", "-c", "2d", "-o", "y.pth", "--seed", "-3"],
     "--seed: expected an integer in [0, 4294967295], got -3"),
    (["demo", "--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
    (["convert", "btcv", "--dataset-id", "1000"], "--dataset-id: expected an integer in [1, 999], got 1000"),
    (["rank", "-d", "4", "-np", "two"], "--num-processes: expected an integer >= 1, got two"),
])
def test_numbers_out_of_range_are_one_argparse_error(argv, option, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert option in error and error.count("\n") == 1 and "Traceback" not in error, error


def test_number_ranges_accept_their_bounds_and_refuse_beyond():
    assert positive_int("1") == 1 and int_at_least(16)("16") == 16 and fraction("0") == 0.0 and fraction("1") == 1.0
    for checker, text in [(positive_int, "0"), (positive_int, "1.5"), (fraction, "1.01"), (fraction, "inf"),
                          (NumberRange(float, 0.0, open_minimum=True), "0")]:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            checker(text)


@pytest.mark.parametrize("damaged, keep", [("case_001.b2nd", 0.5), ("case_002_seg.b2nd", 0.9), ("case_003.pkl", 0.1)])
def test_rank_with_a_damaged_case_names_the_case_and_the_preprocessing(tmp_path, monkeypatch, capsys, damaged, keep):
    data_folder = _write_dataset(tmp_path / "pre", _standard_cases())
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    file = data_folder / damaged
    file.write_bytes(file.read_bytes()[:int(file.stat().st_size * keep)])  # a preprocessing killed while writing
    assert main(["rank", "-d", "901", "-np", "1", "--fold", "all"]) == 2  # a fold's ranking that needs the case
    error = _one_error_line(capsys.readouterr().err, "rank")
    case = damaged.split(".")[0].removesuffix("_seg")
    assert f"preprocessed case {case} " in error and damaged in error and "Re-run nnU-Net's preprocessing" in error
    assert not list(data_folder.parent.glob("similarity_ranking*.json")), "no ranking written"


def _spec(tmp_path: Path, results_dir: str, nnunet_root: str) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"results_dir: {results_dir}\nnnunet_root: {nnunet_root}\nexecutor: {{device: cpu}}\n"
                    "datasets: [{id: 501, configurations: [3d_fullres], prepare: {synthetic_preset: tiny3d}}]\n"
                    "trainers: [nnUNetTrainer_ConstantPatch]\n")
    return spec


@pytest.mark.parametrize("argv, command, fragment", [
    (["demo", "--workspace", "{file}/demo"], "demo", "--workspace {file}/demo cannot be created: {file} is a file"),
    (["compare", "{tmp}", "-o", "{file}/x"], "compare", "output (-o) {file}/x.csv cannot be written: {file} is a file"),
    (["transfer", "adapt", "missing.pth", "-d", "4", "-c", "3d_fullres", "-o", "{tmp}"], "transfer",
     "--output {tmp} is a folder"),
    (["transfer", "sources", "-t", "4", "-s", "5", "-o", "{file}/scores.json"], "transfer",
     "--output {file}/scores.json cannot be written: {file} is a file"),
    (["benchmark", "report", "{tmp}", "-o", "{file}/report"], "benchmark", "-o {file}/report cannot be created"),
    (["convert", "btcv", "--source", "{tmp}", "--raw-root", "{file}/raw"], "convert",
     "--raw-root {file}/raw cannot be created"),
])
def test_an_output_under_a_file_or_on_a_folder_is_one_error_before_any_work(tmp_path, capsys, argv, command,
                                                                            fragment):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    before = sorted(tmp_path.rglob("*"))

    def fill(text: str) -> str:
        return text.replace("{file}", str(blocker)).replace("{tmp}", str(tmp_path))

    assert main([fill(a) for a in argv]) == 2
    captured = capsys.readouterr()
    assert fill(fragment) in _one_error_line(captured.err, command) and captured.out == ""
    assert sorted(tmp_path.rglob("*")) == before, "nothing created"


@pytest.mark.parametrize("results_dir, root, fragment", [
    ("{file}/results", "{tmp}/nn", "results_dir {file}/results cannot be created: {file} is a file"),
    ("{tmp}/results", "{file}/nn", "nnUNet_raw (from the spec's nnunet_root or the environment) {file}/nn/nnUNet_raw"),
])
def test_benchmark_run_with_a_folder_under_a_file_stops_before_the_work(tmp_path, capsys, results_dir, root,
                                                                        fragment):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    spec = _spec(tmp_path, results_dir.replace("{file}", str(blocker)).replace("{tmp}", str(tmp_path)),
                 root.replace("{file}", str(blocker)).replace("{tmp}", str(tmp_path)))
    assert main(["benchmark", "run", str(spec), "--no-progress"]) == 2
    captured = capsys.readouterr()
    expected = fragment.replace("{file}", str(blocker)).replace("{tmp}", str(tmp_path))
    assert expected in _one_error_line(captured.err, "benchmark") and captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "spec.yaml"], "no folder half-made"


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_rank_workers_end_quietly_with_a_killed_rank(tmp_path, signal_name):
    """Its spawned pool workers printed BrokenPipeError / ConnectionResetError tracebacks after a kill."""
    import os
    import signal
    import time

    _write_dataset(tmp_path / "pre", {f"case_{i:03d}": _case(i, (64, 64, 64)) for i in range(8)})  # slow tasks
    env = {**os.environ, "nnUNet_preprocessed": str(tmp_path / "pre")}
    log = tmp_path / "rank.log"
    with open(log, "w") as handle:
        process = subprocess.Popen([sys.executable, "-m", "nnunet_progressive.cli.main", "rank", "-d", "901", "-np",
                                    "2"], stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    # Killed once the pool has returned a pair: its workers are then past Python's spawn start-up and mid-task.
    # (A kill during that start-up, a few milliseconds while the parent writes a worker's start data, can let
    # Python's own bootstrap print an EOFError: CI's stop 31 hit it by killing 3 s after "Ranking" on a slow load.)
    pool_working = re.compile(r"Comparing pairs:\s+\d+%\|[^|]*\|\s*[1-9]\d*/")
    deadline = time.monotonic() + 120
    while not pool_working.search(log.read_text()) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert pool_working.search(log.read_text()), log.read_text()
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert process.poll() is None and workers, log.read_text()
    os.kill(process.pid, getattr(signal, signal_name))
    process.wait(timeout=30)
    time.sleep(8)  # long enough for a worker to finish its task and try to send it
    assert "Traceback" not in log.read_text() and "Error" not in log.read_text(), log.read_text()
    alive = [pid for pid in workers if os.path.exists(f"/proc/{pid}") and
             "Z" not in open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0]]
    assert alive == [], "the workers died with nnprog rank"
