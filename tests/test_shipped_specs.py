"""The benchmark specs shipped in benchmarks/ parse and name only known trainers and datasets."""
from pathlib import Path

import pytest

import nnunet_progressive_trainers.nnprog_pgps as pgps_trainers
from nnunet_progressive.benchmark.spec import load_spec
from nnunet_progressive.datasets.converters import TASKS
from nnunet_progressive.nnunet.compat import install_in_this_process

SPECS = sorted((Path(__file__).parent.parent / "benchmarks").glob("*.yaml"))


@pytest.mark.parametrize("spec_file", SPECS, ids=[s.name for s in SPECS])
def test_shipped_spec_is_valid(spec_file):
    install_in_this_process()  # the architecture trainers import timm (Primus), which imports torchvision
    import nnunet_progressive_trainers.nnprog_architectures as architecture_trainers

    spec = load_spec(spec_file)
    for trainer in spec.trainers:
        assert any(hasattr(module, trainer.name) for module in (pgps_trainers, architecture_trainers)), trainer.name


def test_fifteen_task_spec_covers_every_converter():
    spec = load_spec(Path(__file__).parent.parent / "benchmarks" / "pgps_15tasks.yaml")
    assert sorted(d.id for d in spec.datasets) == sorted(t.default_id for t in TASKS.values())
    assert len(spec.datasets) == 15
