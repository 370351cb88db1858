"""docs/trust.md stays true: every test its table names exists."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_case_in_the_trust_table_has_its_test():
    text = (ROOT / "docs" / "trust.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| bad input")]
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
