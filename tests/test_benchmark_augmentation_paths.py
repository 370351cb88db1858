"""scripts/benchmark_augmentation_paths.py: its table, and one run on a planned dataset (tiny3d) at every stage."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_augmentation_paths.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_augmentation_paths", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_table_gives_each_stage_and_the_ratio(bench):
    run = bench.StageRun("2", (16, 16, 8), 32, (25, 21, 17))
    timing = bench.StageTiming(run, old_cpu_ms=80.0, new_cpu_ms=20.0, old_wall_ms=81.0, new_wall_ms=22.5)
    assert timing.cpu_ratio == 0.25
    lines = bench.markdown_table([timing]).splitlines()
    assert len(lines) == 3
    assert lines[2] == "| 2 | 16x16x8 | 32 | 25x21x17 | 80.0 | 20.0 | 0.25 | 81.0 | 22.5 |"


def _environment(ws, monkeypatch) -> None:
    for key, value in ws.folders.environment({}).items():
        monkeypatch.setenv(key, value)


@pytest.mark.e2e
def test_runs_every_stage_of_the_performance_schedule(bench, tiny3d_dataset, tmp_path, monkeypatch, capsys):
    _environment(tiny3d_dataset, monkeypatch)
    out = tmp_path / "out"
    rc = bench.main(["-d", str(tiny3d_dataset.dataset_id), "-c", "3d_fullres", "-p", tiny3d_dataset.plans,
                     "-tr", "nnUNetTrainer_PGPS_Performance", "--batches", "1", "--out", str(out)])
    assert rc == 0
    report = (out / "augmentation_paths.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and not line.startswith("| stage")]
    assert [row.split(" | ")[0] for row in rows] == [f"| {i}" for i in range(1, 10)]  # tiny3d: 9 stages
    assert rows[0].split(" | ")[1:3] == ["16x8x8", "64"] and rows[-1].split(" | ")[1:3] == ["32x32x32", "2"]
    for row in rows:
        old_ms, new_ms, ratio = (float(v) for v in row.split(" | ")[4:7])
        # the table rounds times to 0.05 ms and the ratio (of the unrounded times) to 0.005: at 9.1 and 16.9 ms,
        # 1.87 and 1.857 are both right
        assert old_ms > 0 and new_ms > 0
        assert (new_ms - 0.05) / (old_ms + 0.05) - 0.005 <= ratio <= (new_ms + 0.05) / (old_ms - 0.05) + 0.005
    assert (out / "augmentation_paths.png").stat().st_size > 0
    assert "sum over stages" in capsys.readouterr().out


@pytest.mark.e2e
def test_refuses_a_trainer_with_its_own_transforms(bench, tiny3d_dataset, tmp_path, monkeypatch, capsys):
    _environment(tiny3d_dataset, monkeypatch)
    rc = bench.main(["-d", str(tiny3d_dataset.dataset_id), "-c", "3d_fullres", "-p", tiny3d_dataset.plans,
                     "-tr", "nnUNetTrainerNoDA", "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "its get_training_transforms is its own" in capsys.readouterr().err
    assert not (tmp_path / "out" / "augmentation_paths.md").exists()
