"""docs/trust.md stays true: every test its table names exists."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_case_in_the_trust_table_has_its_test():
    text = (ROOT / "docs" / "trust.md").read_text()
    table = text.split("## Bad inputs and faults", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| bad input")]
    assert len(rows) >= 25
    defined = set()
    for test_file in (ROOT / "tests").glob("test_*.py"):
        defined.update(re.findall(r"^def (test_\w+)", test_file.read_text(), re.M))
    for row in rows:
        named = re.findall(r"`(test_\w+)`", row.rsplit("|", 2)[-2])
        assert named, f"no test named in: {row}"
        missing = [name for name in named if name not in defined]
        assert not missing, f"docs/trust.md names tests that do not exist: {missing}"


def test_readme_links_the_trust_page():
    assert "docs/trust.md" in (ROOT / "README.md").read_text()


def test_the_fault_matrix_table_shows_combinations_of_the_script():
    """Each row of the fault matrix's table in docs/trust.md is a combination scripts/fault_matrix.py runs."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("fault_matrix_for_docs", ROOT / "scripts" / "fault_matrix.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        names = {combination.name for combination in module.combinations()}
    finally:
        sys.modules.pop(spec.name, None)
    text = (ROOT / "docs" / "trust.md").read_text()
    table = text.split("<!-- fault matrix table -->", 1)[1].split("<!-- end of the fault matrix table -->", 1)[0]
    rows = [line.split(" | ")[:2] for line in table.splitlines() if line.startswith("| ") and "killed at" not in line]
    assert rows, "the fault matrix table is empty"
    for trainer, phase in rows:
        assert f"{trainer.removeprefix('| ')}: {phase}" in names, (trainer, phase)
