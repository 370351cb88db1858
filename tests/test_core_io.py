"""Atomic writes: whole files with normal permissions, or the old file untouched."""
from __future__ import annotations

import os
import stat

import pytest

from nnunet_progressive.core.io import atomic_save_figure, atomic_write_json, atomic_write_text, replacing


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path):
    old_umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write_json(tmp_path / "sub" / "b.json", {"k": 1})
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old_umask)
    assert _mode(tmp_path / "a.txt") == 0o644 and _mode(tmp_path / "sub" / "b.json") == 0o644
    assert _mode(tmp_path / "private.txt") == 0o600
    assert (tmp_path / "sub" / "b.json").read_text() == '{\n  "k": 1\n}\n'


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "t.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError, match="boom"), replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


def test_figure_is_saved_whole(tmp_path):
    from matplotlib.figure import Figure

    figure = Figure()
    figure.subplots().plot([0, 1], [1, 0])
    atomic_save_figure(figure, tmp_path / "plot.png", dpi=50)
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]
