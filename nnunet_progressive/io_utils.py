"""Small file helpers: nothing is left half-written."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _default_file_mode() -> int:
    """What a plain ``open(path, "w")`` would give: 0o666 less the process umask (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def replacing(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it gets normal permissions and replaces ``path``.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary file in the same folder, then rename it over ``path``."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """JSON version of :func:`atomic_write_text` (indented, keys in insertion order)."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def atomic_save_figure(figure, path: str | os.PathLike, **kwargs) -> None:
    """Save a matplotlib figure through a temporary file so readers never see a partial PNG."""
    with replacing(path, suffix=Path(path).suffix) as tmp:
        figure.savefig(tmp, **kwargs)


def claim_raw_dataset_folder(raw_root: Path, dataset_id: int, folder_name: str, overwrite: bool,
                             how: str = "overwrite=True") -> Path:
    """Check that ``raw_root/folder_name`` may be (re)written; returns it.

    nnU-Net resolves datasets by their 3-digit id, so a second folder with the same id is always refused
    (and never deleted); an existing target needs ``overwrite``. ``how`` names the overwrite switch.
    """
    target = raw_root / folder_name
    clashes = sorted(p.name for p in raw_root.glob(f"Dataset{dataset_id:03d}_*") if p.name != folder_name)
    if clashes:
        raise FileExistsError(f"Dataset id {dataset_id} is already used by {clashes} in {raw_root}; nnU-Net needs "
                              f"unique ids. Pick another dataset id or remove that folder.")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists. Pass {how} to replace it, or pick another dataset id.")
    return target


def temporary_sibling(target: Path) -> Path:
    """A hidden work folder next to ``target`` (its name does not start with DatasetXXX, so nnU-Net ignores it)."""
    import uuid

    return target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"


def move_folder_into_place(built: Path, target: Path) -> None:
    """Rename ``built`` to ``target``; an existing target is swapped out first and deleted only afterwards."""
    import shutil
    import uuid

    if not target.exists():
        os.replace(built, target)
        return
    trash = target.parent / f".trash-{target.name}-{uuid.uuid4().hex[:8]}"
    os.replace(target, trash)
    try:
        os.replace(built, target)
    except BaseException:
        os.replace(trash, target)
        raise
    shutil.rmtree(trash, ignore_errors=True)
