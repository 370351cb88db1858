"""Where nnU-Net finds the trainers when the package is not installed (a source checkout on PYTHONPATH)."""
from pathlib import Path

from nnunet_progressive.nnunet.orchestration import discovery

REPOSITORY = Path(__file__).resolve().parents[1]


def test_trainers_folder_of_a_source_checkout_without_install(monkeypatch):
    real_find_spec = discovery.importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == discovery.TRAINERS_PACKAGE else real_find_spec(name, *args)

    monkeypatch.setattr(discovery.importlib.util, "find_spec", find_spec)
    folder = discovery.trainers_directory()
    assert folder == (REPOSITORY / "trainers").resolve()
    assert (folder / "nnprog_pgps.py").is_file()
