"""Shared fixtures: a tiny generated dataset planned and preprocessed once by nnU-Net itself."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

# Set before torch or matplotlib is imported here; the nnUNetv2_* processes the tests start inherit them.
# - Two test workers each run nnUNetv2_train, which gives torch as many threads as the machine has cores; OpenMP's
#   threads spin while they wait and take the cores from each other (tiny epochs 1.3-2x slower than a fair share,
#   measured on 2 cores). Waiting threads sleep instead.
# - nnU-Net draws progress.png (3000x5400 pixels at matplotlib's default 100 dpi) after every epoch: about 1 s of CPU,
#   more than a tiny test epoch trains. The tests draw it at 20 dpi (tests/matplotlibrc).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MATPLOTLIBRC", str(Path(__file__).resolve().parent / "matplotlibrc"))

from nnunet_progressive.datasets.prepare import SMALL_PLANS, prepare_generated_dataset
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders


def pytest_addoption(parser):
    parser.addoption("--run-install", action="store_true",
                     help="also run the tests marked slow_install (a fresh install from the public package index)")
    parser.addoption("--run-long", action="store_true",
                     help="also run the tests marked long (more end-to-end scenarios, benchmark specs; minutes each)")


OPT_IN = (("slow_install", "--run-install", "installs from the public package index (minutes, several GB)"),
          ("long", "--run-long", "a further end-to-end scenario of a trainer the default run covers, or a benchmark "
                                 "spec through real trainings (minutes)"))

E2E_WEIGHT = 60  # an end-to-end test costs about a minute of a worker, a unit test about a second


def file_cost(items: list[pytest.Item]) -> int:
    """Estimated seconds of a test file: end-to-end tests weigh E2E_WEIGHT, others 1, skipped ones nothing."""
    return sum(0 if "skip" in item.keywords else E2E_WEIGHT if "e2e" in item.keywords else 1 for item in items)


def longest_files_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The items grouped by file, the costliest file first (order within a file kept), so that pytest-xdist's
    ``--dist loadfile --no-loadscope-reorder`` starts the long end-to-end files first and the short files fill the
    end (xdist's own reorder sorts by number of tests, which put the few-test, long files last)."""
    by_file: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::")[0], []).append(item)
    ordered = sorted(by_file.values(), key=file_cost, reverse=True)
    return [item for group in ordered for item in group]


def pytest_collection_modifyitems(config, items):
    for marker, option, reason in OPT_IN:
        if config.getoption(option):
            continue
        skip = pytest.mark.skip(reason=f"{reason}: {option}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
    items[:] = longest_files_first(items)


@dataclass(frozen=True)
class Workspace:
    folders: NnunetFolders
    dataset_id: int
    dataset_name: str
    configuration: str
    plans: str = SMALL_PLANS

    @property
    def preprocessed_dataset(self) -> Path:
        return self.folders.preprocessed / self.dataset_name

    def plans_json(self) -> dict:
        return json.loads((self.preprocessed_dataset / f"{self.plans}.json").read_text())

    def with_results(self, results: Path) -> Workspace:
        """The same planned data with its own nnUNet_results (runs of one test never meet another's)."""
        return replace(self, folders=replace(self.folders, results=results))


def _prepare(root: Path, preset: str, dataset_id: int, configuration: str) -> Workspace:
    folders = NnunetFolders.under(root)
    dataset_name = prepare_generated_dataset(preset, dataset_id, folders, (configuration,), root / "plan.log",
                                             features_per_stage=(4, 8, 16, 32, 32, 32, 32, 32))
    return Workspace(folders, dataset_id, dataset_name, configuration)


@pytest.fixture(scope="session")
def tiny3d_dataset(tmp_path_factory) -> Workspace:
    """8 cases of 32^3; planned patch 32^3, pooling stride 8 per axis: 9 PGPS stages (planned once)."""
    return _prepare(tmp_path_factory.mktemp("tiny3d"), "tiny3d", 501, "3d_fullres")


@pytest.fixture(scope="session")
def tiny2d_dataset(tmp_path_factory) -> Workspace:
    """8 single-slice cases of 64x64 for nnU-Net's 2d configuration (planned once)."""
    return _prepare(tmp_path_factory.mktemp("tiny2d"), "tiny2d", 502, "2d")


@pytest.fixture
def tiny3d(tiny3d_dataset, tmp_path) -> Workspace:
    """tiny3d with an nnUNet_results folder of this test's own: a run never meets another test's fold folder."""
    return tiny3d_dataset.with_results(tmp_path / "nnUNet_results")


@pytest.fixture
def tiny2d(tiny2d_dataset, tmp_path) -> Workspace:
    """tiny2d with an nnUNet_results folder of this test's own."""
    return tiny2d_dataset.with_results(tmp_path / "nnUNet_results")

