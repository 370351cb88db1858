"""The suite's own ordering: the costliest test files first, each file's tests together and in their order."""
from types import SimpleNamespace

from conftest import E2E_WEIGHT, file_cost, longest_files_first


def _item(nodeid: str, e2e: bool = False) -> SimpleNamespace:
    return SimpleNamespace(nodeid=nodeid, keywords={"e2e": True} if e2e else {})


def test_end_to_end_files_come_first_and_files_stay_whole():
    items = [_item("tests/test_unit.py::a"), _item("tests/test_unit.py::b"), _item("tests/test_unit.py::c"),
             _item("tests/test_e2e.py::x", e2e=True), _item("tests/test_mixed.py::m"),
             _item("tests/test_mixed.py::n", e2e=True), _item("tests/test_e2e.py::y", e2e=True)]
    ordered = [i.nodeid for i in longest_files_first(items)]
    assert ordered == ["tests/test_e2e.py::x", "tests/test_e2e.py::y", "tests/test_mixed.py::m",
                       "tests/test_mixed.py::n", "tests/test_unit.py::a", "tests/test_unit.py::b",
                       "tests/test_unit.py::c"]


def test_a_file_costs_its_end_to_end_tests_and_a_second_per_unit_test():
    assert file_cost([_item("f::a", e2e=True), _item("f::b"), _item("f::c")]) == E2E_WEIGHT + 2


def test_skipped_tests_cost_nothing():
    skipped = SimpleNamespace(nodeid="f::s", keywords={"e2e": True, "skip": True})
    assert file_cost([skipped, _item("f::a")]) == 1
