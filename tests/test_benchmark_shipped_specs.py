"""The benchmark specs shipped in benchmarks/ parse, name only trainers nnU-Net finds, and run (shrunk)."""
from pathlib import Path

import pytest
import yaml

from nnunet_progressive.benchmark.results import load_records
from nnunet_progressive.benchmark.run import check_trainers
from nnunet_progressive.benchmark.spec import load_spec, parse_spec
from nnunet_progressive.cli.main import main
from nnunet_progressive.datasets.converters import TASKS

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
SPECS = sorted(BENCHMARKS.glob("*.yaml"))


@pytest.mark.parametrize("spec_file", SPECS, ids=[s.name for s in SPECS])
def test_shipped_spec_is_valid(spec_file):
    spec = load_spec(spec_file)
    check_trainers(spec)  # nnU-Net's own trainer search finds every trainer; every knob is read by its trainer


def test_fifteen_task_spec_covers_every_converter():
    spec = load_spec(BENCHMARKS / "pgps_15tasks.yaml")
    assert sorted(d.id for d in spec.datasets) == sorted(t.default_id for t in TASKS.values())
    assert len(spec.datasets) == 15


def shrunk(spec_file: Path, root: Path, dataset_id: int, trainers: int | None = None) -> Path:
    """The shipped spec on the tiny3d preset, 3 epochs x 2 iterations, its first ``trainers`` trainers (all by
    default), into ``root`` (a smoke test, not a benchmark)."""
    data = yaml.safe_load(spec_file.read_text())
    data["trainers"] = data["trainers"][:trainers]
    prepare = {**data["datasets"][0].get("prepare", {}), "synthetic_preset": "tiny3d"}
    data.update(results_dir=str(root / "results"), nnunet_root=str(root / "nnunet"),
                datasets=[{"id": dataset_id, "configurations": ["3d_fullres"], "prepare": prepare}],
                small_network={"features_per_stage": [4, 8, 16, 32, 32, 32, 32, 32]})
    data["knobs"] = {**data["knobs"], "NNPROG_EPOCHS": 3, "NNPROG_ITERATIONS": 2, "NNPROG_VAL_ITERATIONS": 1}
    for trainer in data["trainers"]:
        if isinstance(trainer, dict) and "NNPROG_SET1_EPOCHS" in trainer.get("knobs", {}):
            trainer["knobs"]["NNPROG_SET1_EPOCHS"] = 1
    parse_spec(data, root)  # still a valid spec
    path = root / spec_file.name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.e2e
@pytest.mark.long
def test_pdl_spec_runs_ranks_and_reports_time_to_dice(tmp_path):
    """benchmarks/pdl_cpu.yaml shrunk: nnprog rank in the preparation, its reference and PDL (the controls train in
    test_nnunet_pdl_trainers), the time-to-Dice report."""
    spec_file = shrunk(BENCHMARKS / "pdl_cpu.yaml", tmp_path, 521, trainers=2)
    assert main(["benchmark", "run", str(spec_file), "--no-progress"]) == 0
    records = load_records(tmp_path / "results")
    assert len(records) == 2 and {r.status for r in records} == {"done"}
    assert all(len(r.result.time_to_dice["checks"]) >= 1 for r in records)
    assert main(["benchmark", "report", str(tmp_path / "results")]) == 0
    report = (tmp_path / "results" / "report" / "report.md").read_text()
    assert "## Time to Dice" in report and "## Preparation" in report
    assert "Reference trainer: **nnUNetTrainer_StopAtDice**" in report


@pytest.mark.e2e
@pytest.mark.long
def test_offline_spec_with_seeded_repeats_reports_the_protocol(tmp_path):
    """benchmarks/offline_cpu.yaml shrunk to 2 trainers x 2 seeded repeats through the real nnUNetv2_train: the
    seed reaches each run's identity, and the report gains the per-case test, the spread across seeds, the
    imbalance table (foreground share of the generated raw labels) and the cost table (energy not reported on CPU)."""
    spec_file = shrunk(BENCHMARKS / "offline_cpu.yaml", tmp_path, 522, trainers=2)
    data = yaml.safe_load(spec_file.read_text())
    data.update(folds=[0], seeds=[0, 1], seed_training=True)
    # 3 stages of PGPS in the 3 epochs (32x24x24 to the planned 32^3)
    data["trainers"][1] = {"name": data["trainers"][1], "knobs": {"NNPROG_MIN_PATCH": "32,24,24"}}
    spec_file.write_text(yaml.safe_dump(data))
    assert main(["benchmark", "run", str(spec_file), "--no-progress"]) == 0
    records = load_records(tmp_path / "results")
    assert len(records) == 4 and {r.status for r in records} == {"done"}
    assert sorted((r.seed, r.result.settings["seed"]) for r in records) == [(0, 0), (0, 0), (1, 1), (1, 1)]
    assert {r.energy_joules for r in records} == {None}
    assert main(["benchmark", "report", str(tmp_path / "results")]) == 0
    report = (tmp_path / "results" / "report" / "report.md").read_text()
    protocol = report.split("## Protocol")[1]
    per_case = protocol.split("### Per-case Wilcoxon test")[1].split("###")[0]
    assert "nnUNetTrainer_PGPS_Efficiency" in per_case and "No finished run" not in per_case
    assert "| 2 | 1 |" in protocol.split("### Spread across seeds")[1]  # 2 seeds, 1 fold
    assert "Foreground (%)" in protocol and (tmp_path / "results" / "report" / "imbalance.png").is_file()
    assert "not reported" in protocol.split("### GPU hours and energy")[1]
