"""The nnprog command line: help, discovery in a fresh shell, the schedule table."""
import os
import subprocess

import pytest

import nnunet_progressive_trainers.nnprog_pgps as pgps_module

TRAINER_NAMES = sorted(name for name in dir(pgps_module) if name.startswith("nnUNetTrainer_"))


def test_help_lists_subcommands():
    result = subprocess.run(["nnprog", "--help"], capture_output=True, text=True, check=True)
    for command in ("env", "schedule", "rank"):
        assert command in result.stdout


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
    result = subprocess.run(["bash", "-c", f'eval "$(nnprog env)" && python -c "{script}"'],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"found {len(TRAINER_NAMES)}" in result.stdout
    assert len(TRAINER_NAMES) >= 4 * 5  # 4 trainers x (default + 4 epoch variants)


@pytest.mark.e2e
def test_schedule_command_prints_table_and_plot(tiny3d, tmp_path):
    env = tiny3d.folders.environment()
    command = ["nnprog", "schedule", "-d", str(tiny3d.dataset_id), "-c", "3d_fullres", "-p", tiny3d.plans,
               "-tr", "nnUNetTrainer_PGPS_Performance_100epochs", "--plot", str(tmp_path / "schedule.png")]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 stages over 100 epochs" in result.stdout
    assert (tmp_path / "schedule.png").stat().st_size > 0
    bad = subprocess.run(command[:-2], capture_output=True, text=True, env={**env, "NNPROG_EPOCHS": "4"})
    assert bad.returncode == 2 and "4 epochs cannot cover 9 patch-size stages" in bad.stderr
