"""Shared pieces of the converters: errors, source checks, case counts, parallel per-case work, label geometry."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.datasets.converters.tasks import TaskInfo

CONVERTER_VERSION = 1


class SourceLayoutError(ProgressiveConfigError):
    """The source folder does not have the official layout; the message names the expected layout."""


class CaseCountError(ProgressiveConfigError):
    """The source holds a different number of training cases than the official release."""


@dataclass(frozen=True)
class ConvertOptions:
    """Options every converter receives. ``settings`` holds the task's resolved settings (strings)."""

    allow_partial: bool = False
    num_processes: int = 1
    settings: dict[str, str] = field(default_factory=dict)


@dataclass
class Built:
    """What a converter built: the dataset folder (inside the work folder) and notes for dataset.json."""

    folder: Path
    notes: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- source checks


def layout_error(task: TaskInfo, source: Path, problem: str) -> SourceLayoutError:
    """A :class:`SourceLayoutError` that says what is wrong, what layout is expected and where to get it."""
    return SourceLayoutError(
        f"{task.display_name}: {problem} Expected layout under --source ({source}): {task.layout}. "
        f"Download it yourself from {task.download_page}: {task.download_url} (nothing is downloaded for you), "
        f"extract it and pass that folder as --source.")


def visible(names: Sequence[str]) -> list[str]:
    """Names without hidden or junk entries (``.*``, macOS ``._*`` resource forks, ``_*``), sorted."""
    return sorted(n for n in names if not n.startswith((".", "_")))


def files_with_suffix(folder: Path, suffix: str) -> list[str]:
    """Visible file names in ``folder`` ending with ``suffix`` (empty if the folder is missing), sorted."""
    if not folder.is_dir():
        return []
    return visible([p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(suffix)])


def first_existing(candidates: Sequence[Path], marker: Callable[[Path], bool]) -> Path | None:
    """The first of ``candidates`` for which ``marker(path)`` is true, else None."""
    return next((c for c in candidates if marker(c)), None)


def check_case_count(task: TaskInfo, found: int, expected: int, allow_partial: bool, where: Path,
                     missing: Sequence[str] = ()) -> None:
    """Raise :class:`CaseCountError` unless ``found == expected`` (or ``allow_partial`` and ``found > 0``).

    ``missing`` (case names known to be absent) is quoted in the message when given.
    """
    if found == expected or (allow_partial and found > 0):
        return
    if found == 0:
        raise CaseCountError(f"{task.display_name}: found no training cases in {where}; expected {expected}. "
                             f"Expected layout: {task.layout}.")
    hint = f" Missing, e.g.: {', '.join(list(missing)[:5])}." if missing else ""
    what = "fewer" if found < expected else "more"
    raise CaseCountError(
        f"{task.display_name}: expected {expected} training cases (the complete official release), found "
        f"{found} ({what}) in {where}.{hint} Check that the download is complete and unpacked; to convert the "
        f"cases that are there on purpose (a subset or another release), pass allow_partial=True "
        f"(CLI: --allow-partial).")


def case_number(name: str, pattern: str) -> int | None:
    """The integer captured by ``pattern`` (one group, full match) in ``name``, or None."""
    match = re.fullmatch(pattern, name)
    return int(match.group(1)) if match else None


# ----------------------------------------------------------------------------------------------- per-case work


def _call(job: tuple[Callable[..., Any], tuple[Any, ...]]) -> Any:
    fn, args = job
    try:
        return fn(*args)
    except ProgressiveConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged case file fails in SimpleITK/nibabel/zlib in many ways
        reason = " ".join(str(error).split())[:300]
        files = [str(a) for a in args if isinstance(a, Path) and a.exists()]
        files = [f for f in files if f in reason] or files  # the file the reader names, if it does
        raise ProgressiveConfigError(
            f"cannot convert the case of {', '.join(files) or args} ({type(error).__name__}: {reason}); the file may "
            f"be damaged or incomplete: re-extract or re-download it, or leave the case out of the source and "
            f"convert with --allow-partial") from None


def run_cases(fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]], num_processes: int, desc: str) -> list[Any]:
    """``[fn(*args) for args in jobs]`` with a tqdm progress bar, in a spawn pool when ``num_processes > 1``.

    ``fn`` must be a module-level function (picklable). Results come back in job order.
    """
    from tqdm import tqdm

    packed = [(fn, tuple(args)) for args in jobs]
    if num_processes <= 1 or len(packed) <= 1:
        return [_call(job) for job in tqdm(packed, desc=desc, unit="case")]
    with multiprocessing.get_context("spawn").Pool(min(num_processes, len(packed))) as pool:
        return list(tqdm(pool.imap(_call, packed), total=len(packed), desc=desc, unit="case"))


@contextlib.contextmanager
def nnunet_raw_redirected(module: ModuleType, folder: Path, **replacements: Any) -> Iterator[None]:
    """Let one of nnU-Net's conversion scripts write into ``folder`` instead of ``$nnUNet_raw``.

    nnU-Net's converters read ``nnUNet_raw`` from a module-level name imported at import time; it is replaced
    on ``module`` for the duration of the block (plus any other module attribute in ``replacements``). Not
    thread-safe: do not run two conversions in threads of one process.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(module, "nnUNet_raw", str(folder)))
        for name, value in replacements.items():
            stack.enter_context(mock.patch.object(module, name, value))
        yield


# ----------------------------------------------------------------------------------------------- labels


# A label may carry the image's grid with slightly different header numbers (rounding in the export). Copying
# the image geometry onto it is exact only while every label voxel stays on the image voxel it overlaps most:
# an origin shift below half a voxel on every axis, the same axis directions (no flip, no rotation beyond
# rounding) and the same spacing up to rounding. Anything larger is a different placement, not a header quirk.
MAX_ORIGIN_SHIFT_VOXELS = 0.5
MAX_DIRECTION_DIFFERENCE = 1e-3  # largest difference of one direction cosine
MAX_SPACING_DIFFERENCE = 1e-3  # relative, per axis


def geometry_difference(image_geometry: tuple, label_geometry: tuple) -> dict[str, float]:
    """How far a label's header is from its image's: origin shift in mm and in image voxels (per axis, the
    largest), the largest direction-cosine difference and the largest relative spacing difference.

    Each geometry is ``(origin, spacing, direction)`` as SimpleITK gives them (x, y, z; direction row-major).
    """
    import numpy as np

    origin, spacing, direction = (np.asarray(v, dtype=float) for v in image_geometry)
    label_origin, label_spacing, label_direction = (np.asarray(v, dtype=float) for v in label_geometry)
    axes = direction.reshape(3, 3) if direction.size == 9 else direction.reshape(2, 2)
    shift = label_origin - origin
    shift_in_voxels = np.abs(axes.T @ shift) / spacing  # the shift along each image axis, in voxels
    return {"origin_shift_mm": float(np.max(np.abs(shift))),
            "origin_shift_voxels": float(np.max(shift_in_voxels)),
            "direction_change": float(np.max(np.abs(label_direction - direction))),
            "spacing_change": float(np.max(np.abs(label_spacing - spacing) / spacing))}


def label_onto_image_grid(image_file: Path, label_file: Path, out_file: Path, num_classes: int,
                          case: str) -> dict[str, Any] | None:
    """Write ``label_file`` as uint8 on the voxel grid of ``image_file`` (SimpleITK); return a fix note or None.

    Some releases (BTCV among them) store labels whose origin/direction/spacing differ slightly from the image
    header although both share the voxel grid. When the sizes match and the difference is within rounding
    (origin shift below half a voxel, direction and spacing equal up to 1e-3), the image geometry is copied onto
    the label and the size of the correction is returned (None when nothing changed). Other sizes, larger
    differences (a flipped axis, a shift of a voxel or more) and label values outside ``0..num_classes`` raise
    :class:`SourceLayoutError` naming the case.
    """
    import numpy as np
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(image_file))
    reader.ReadImageInformation()
    size, spacing = reader.GetSize(), reader.GetSpacing()
    origin, direction = reader.GetOrigin(), reader.GetDirection()
    label = sitk.ReadImage(str(label_file))
    if label.GetSize() != size:
        raise SourceLayoutError(f"{case}: label {label_file.name} has size {label.GetSize()} but image "
                                f"{image_file.name} has {size}; they must share the voxel grid. Re-extract the "
                                f"case from the official archive or remove it (then use --allow-partial).")
    difference = geometry_difference((origin, spacing, direction),
                                     (label.GetOrigin(), label.GetSpacing(), label.GetDirection()))
    problems = []
    if difference["origin_shift_voxels"] >= MAX_ORIGIN_SHIFT_VOXELS:
        problems.append(f"its origin {tuple(round(v, 3) for v in label.GetOrigin())} is "
                        f"{difference['origin_shift_voxels']:.2f} voxels from the image's "
                        f"{tuple(round(v, 3) for v in origin)}")
    if difference["direction_change"] > MAX_DIRECTION_DIFFERENCE:
        problems.append(f"its direction {tuple(round(v, 4) for v in label.GetDirection())} differs from the "
                        f"image's {tuple(round(v, 4) for v in direction)} (a flipped or rotated axis)")
    if difference["spacing_change"] > MAX_SPACING_DIFFERENCE:
        problems.append(f"its spacing {tuple(round(v, 4) for v in label.GetSpacing())} differs from the image's "
                        f"{tuple(round(v, 4) for v in spacing)}")
    if problems:
        raise SourceLayoutError(
            f"{case}: label {label_file.name} does not lie on the grid of image {image_file.name}: "
            f"{'; '.join(problems)}. Only differences within rounding (below half a voxel, directions and spacing "
            f"equal to 1e-3) are corrected; this one would move the annotation. Check the case against the "
            f"official archive (re-extract it), or remove it and pass --allow-partial.")
    array = sitk.GetArrayFromImage(label)
    values = np.unique(array)
    bad = [int(v) for v in values if not (v == int(v) and 0 <= v <= num_classes)]
    if bad:
        raise SourceLayoutError(f"{case}: label {label_file.name} holds values {bad[:10]} outside 0..{num_classes}.")
    out = sitk.GetImageFromArray(array.astype(np.uint8))
    out.SetSpacing(spacing)
    out.SetOrigin(origin)
    out.SetDirection(direction)
    sitk.WriteImage(out, str(out_file), useCompression=True)
    if max(difference["origin_shift_mm"], difference["direction_change"], difference["spacing_change"]) <= 1e-6:
        return None
    return {"case": case, "origin_shift_mm": round(difference["origin_shift_mm"], 4),
            "origin_shift_voxels": round(difference["origin_shift_voxels"], 4),
            "direction_change": round(difference["direction_change"], 6),
            "spacing_change": round(difference["spacing_change"], 6)}


# ----------------------------------------------------------------------------------------------- dataset.json


def finalize_dataset_json(folder: Path, task: TaskInfo, source: Path, options: ConvertOptions, expected: int,
                          notes: dict[str, Any]) -> int:
    """Set ``numTraining`` to the label files present and record how the dataset was made. Returns the count.

    The record (key ``"nnunet_progressive"``) names the task, source, settings, licence and any corrections;
    nnU-Net ignores keys it does not know.
    """
    path = folder / "dataset.json"
    data = json.loads(path.read_text())
    ending = data["file_ending"]
    found = len(files_with_suffix(folder / "labelsTr", ending))
    data["numTraining"] = found
    data.setdefault("licence", task.licence)
    data["nnunet_progressive"] = {
        "task": task.key,
        "converter_version": CONVERTER_VERSION,
        "source": str(source),
        "settings": dict(options.settings),
        "expected_cases": expected,
        "partial": found != expected,
        "download": task.download_url,
        "licence": task.licence,
        "nnunet_converter": task.nnunet_converter or None,
        **notes,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return found
