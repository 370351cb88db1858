"""The nnprog command line: every subcommand's help and an error path each, discovery in a fresh shell, the schedule
table."""
import argparse
import os
import subprocess
import sys

import pytest
from cli_command import NNPROG

import nnunet_progressive_trainers.nnprog_pgps as pgps_module
from nnunet_progressive.cli.main import build_parser, main

TRAINER_NAMES = sorted(name for name in dir(pgps_module) if name.startswith("nnUNetTrainer_"))


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


SUBCOMMANDS = _subcommands(build_parser())
# every subcommand with its nested actions (`benchmark run`, `benchmark report`)
COMMAND_LINES = [[name, *([] if not _subcommands(sub) else [action])]
                 for name, sub in SUBCOMMANDS.items() for action in (_subcommands(sub) or [None])]


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) of ``nnprog ARGV`` in this process (argparse's exits included)."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_subcommands():
    result = subprocess.run([*NNPROG, "--help"], capture_output=True, text=True, check=True)
    for command in ("env", "knobs", "schedule", "demo", "rank", "convert", "benchmark", "compare"):
        assert command in result.stdout
        assert command in SUBCOMMANDS


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=[" ".join(a) for a in COMMAND_LINES])
def test_every_subcommand_has_help(argv, capsys):
    code, out, err = run_cli([*argv, "--help"], capsys)
    assert code == 0 and err == ""
    assert out.startswith(f"usage: nnprog {' '.join(argv)}") and len(out.splitlines()) > 3


# One real error path per subcommand: the message names what is wrong (exit 2, one line on stderr, no traceback).
ERRORS = {
    "env": (["env", "--shell", "fish"], "unrecognized arguments: --shell fish"),
    "knobs": (["knobs", "NNPROG_EPOCHS"], "unrecognized arguments: NNPROG_EPOCHS"),
    "schedule": (["schedule", "-d", "999", "-c", "3d_fullres"], "dataset 999 was not found"),
    "demo": (["demo", "--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
    "rank": (["rank", "-d", "999"], "dataset 999 was not found"),
    "convert": (["convert", "btcv", "--source", "{tmp}/no_such_download"], "does not exist"),
    "benchmark": (["benchmark", "run", "{tmp}/missing.yaml"], "spec file {tmp}/missing.yaml does not exist"),
    "compare": (["compare", "{tmp}/no_fold"], "time_to_dice.json does not exist"),
    "verify": (["verify", "{tmp}/no_model"], "{tmp}/no_model is not a folder"),
    "check-dataset": (["check-dataset", "999"], "dataset 999: no folder in nnUNet_raw"),
    "profile": (["profile", "-d", "999", "-c", "3d_fullres"], "dataset 999 was not found"),
    "predict": (["predict", "-i", "{tmp}/in", "-o", "{tmp}/out", "-d", "999", "-c", "3d_fullres"],
                "dataset '999'"),
}


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_subcommand_reports_an_error_in_one_line(command, tmp_path, monkeypatch, capsys):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(tmp_path / name))
        (tmp_path / name).mkdir()
    # a subcommand without an entry above (a newer one) still gets argparse's error path checked
    argv, fragment = ERRORS.get(command, ([command, "--no-such-option"], "unrecognized arguments"))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run_cli(argv, capsys)
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("nnprog") and ": error: " in err and fragment.replace("{tmp}", str(tmp_path)) in err
    assert "Traceback" not in err + out


def test_known_subcommands_have_a_real_error_path():
    assert set(ERRORS) <= set(SUBCOMMANDS)


def test_trainers_are_found_by_nnunet_in_a_fresh_shell():
    """The README's setup line, then nnU-Net's own trainer search, in a new interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in ("nnUNet_extTrainer", "PYTHONPATH")}
    script = (
        "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find\n"
        f"names = {TRAINER_NAMES!r}\n"
        "found = [find(n).__name__ for n in names]\n"
        "assert found == names, found\n"
        "print('found', len(found))\n"
    )
    nnprog, python = " ".join(NNPROG), sys.executable  # as the README's line, without needing PATH
    result = subprocess.run(["bash", "-c", f'eval "$({nnprog} env)" && {python} -c "{script}"'],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"found {len(TRAINER_NAMES)}" in result.stdout
    assert len(TRAINER_NAMES) >= 4 * 5  # 4 trainers x (default + 4 epoch variants)


@pytest.mark.e2e
def test_schedule_command_prints_table_and_plot(tiny3d, tmp_path):
    env = tiny3d.folders.environment()
    command = [*NNPROG, "schedule", "-d", str(tiny3d.dataset_id), "-c", "3d_fullres", "-p", tiny3d.plans,
               "-tr", "nnUNetTrainer_PGPS_Performance_100epochs", "--plot", str(tmp_path / "schedule.png")]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 stages over 100 epochs" in result.stdout
    assert (tmp_path / "schedule.png").stat().st_size > 0
    bad = subprocess.run(command[:-2], capture_output=True, text=True, env={**env, "NNPROG_EPOCHS": "4"})
    assert bad.returncode == 2 and "4 epochs cannot cover 9 patch-size stages" in bad.stderr
