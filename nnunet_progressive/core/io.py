"""Small file helpers: nothing is left half-written."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's content, read once in chunks (about 0.5 s for a 300 MB checkpoint)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _unique_name() -> str:
    return uuid.uuid4().hex[:8]


@contextmanager
def replacing(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a new empty temporary file beside ``path``; on success it replaces ``path``.

    The file is created with mode 0o666 less the umask, like a plain ``open(path, "w")`` (mkstemp would give
    0o600 and hide results from the group). On any error it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{_unique_name()}{suffix}"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def is_stale_temporary(name: str) -> bool:
    """True for a name :func:`replacing` gives its temporary files (``.checkpoint_latest.pth.1a2b3c4d.tmp``)."""
    import re

    return re.fullmatch(r"\..+\.[0-9a-f]{8}\.tmp", name) is not None


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files :func:`replacing` left in ``folder`` when its process was killed mid-write
    (call it where no other process writes into ``folder``, e.g. when a training starts); returns them."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and is_stale_temporary(path.name):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """``path`` if a file can be written there (its folder is created); else one clear error. Call it before long
    work, so that a typo in an output path does not cost the work."""
    from nnunet_progressive.core.errors import ProgressiveConfigError

    path = Path(path)
    if path.is_dir():
        raise ProgressiveConfigError(f"{what} {path} is a folder; give a file name inside it, e.g. {path / 'out'}")
    folder = path.parent
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ProgressiveConfigError(f"{what} {path} cannot be written: {blocker} is a file, not a folder; pick "
                                     f"another path")
    _probe_writable(folder, what, path)
    return path


def _probe_writable(folder: Path, what: str, path: Path) -> None:
    """Make ``folder`` and write (then remove) a probe file in it, or one clear error about ``what`` ``path``."""
    from nnunet_progressive.core.errors import ProgressiveConfigError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".nnprog.{_unique_name()}.probe"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as error:
        raise ProgressiveConfigError(f"{what} {path} cannot be written ({error.strerror or error}: "
                                     f"{error.filename or folder}); pick a writable folder") from None


def check_writable_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """``path`` if it is (or can be made) a folder where files can be written, else one clear error naming
    ``what``, the path and the reason (a regular file in the way, no permission). Folders it creates to find out
    are removed again: a check leaves nothing behind. Call it before any work, so that a typo in an output folder
    does not cost the work."""
    from nnunet_progressive.core.errors import ProgressiveConfigError

    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ProgressiveConfigError(f"{what} {path} cannot be created: {blocker} is a file, not a folder; pick "
                                     f"another folder (or move that file away)")
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        _probe_writable(path, what, path)
    finally:
        for folder in created:  # deepest first; one that something else filled meanwhile stays
            try:
                folder.rmdir()
            except OSError:
                break
    return path


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
    from nnunet_progressive.core.errors import DatasetExistsError

    target = raw_root / folder_name
    clashes = sorted(p.name for p in raw_root.glob(f"Dataset{dataset_id:03d}_*") if p.name != folder_name)
    if clashes:
        raise DatasetExistsError(f"Dataset id {dataset_id} is already used by {clashes} in {raw_root}; nnU-Net needs "
                                 f"unique ids. Pick another dataset id or remove that folder.")
    if target.exists() and not overwrite:
        raise DatasetExistsError(f"{target} already exists. Pass {how} to replace it, or pick another dataset id.")
    return target


def temporary_sibling(target: Path) -> Path:
    """A hidden work folder next to ``target`` (its name does not start with DatasetXXX, so nnU-Net ignores it)."""
    return target.parent / f".tmp-{target.name}-{_unique_name()}"


def move_folder_into_place(built: Path, target: Path) -> None:
    """Rename ``built`` to ``target``; an existing target is swapped out first and deleted only afterwards."""
    if not target.exists():
        os.replace(built, target)
        return
    trash = target.parent / f".trash-{target.name}-{_unique_name()}"
    os.replace(target, trash)
    try:
        os.replace(built, target)
    except BaseException:
        os.replace(trash, target)
        raise
    shutil.rmtree(trash, ignore_errors=True)


@contextmanager
def new_raw_dataset_folder(raw_root: str | os.PathLike, dataset_id: int, folder_name: str,
                           overwrite: bool) -> Iterator[Path]:
    """Claim ``raw_root/folder_name`` (:func:`claim_raw_dataset_folder`) and yield a hidden work folder holding
    empty ``imagesTr`` and ``labelsTr``; on success it becomes the dataset folder, on error it is removed."""
    raw_root = Path(raw_root)
    raw_root.mkdir(parents=True, exist_ok=True)
    target = claim_raw_dataset_folder(raw_root, dataset_id, folder_name, overwrite)
    work = temporary_sibling(target)
    try:
        (work / "imagesTr").mkdir(parents=True)
        (work / "labelsTr").mkdir()
        yield work
        move_folder_into_place(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
