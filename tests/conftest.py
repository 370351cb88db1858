"""Shared fixtures: a tiny generated dataset planned and preprocessed once by nnU-Net itself."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from nnunet_progressive.datasets.prepare import SMALL_PLANS, prepare_generated_dataset
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders


def pytest_addoption(parser):
    parser.addoption("--run-install", action="store_true",
                     help="also run the tests marked slow_install (a fresh install from the public package index)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-install"):
        return
    skip = pytest.mark.skip(reason="installs from the public package index (minutes, several GB): --run-install")
    for item in items:
        if "slow_install" in item.keywords:
            item.add_marker(skip)


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

