"""Why a raw dataset cannot be planned, in one message: unexpected label values, label maps whose geometry differs
from their images, no foreground in any case.

nnU-Net's ``--verify_dataset_integrity`` finds the first two but reports them as a traceback after its own
printout, and an all-background dataset crashes its fingerprint extraction (``IndexError``). The package's
preparation (:func:`nnunet_progressive.datasets.prepare.plan_and_preprocess`) asks :func:`raw_dataset_problems`
when nnU-Net's planning fails, and turns what it finds into one :class:`ProgressiveConfigError`.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_progressive.core.errors import ProgressiveConfigError

SHOWN = 5  # cases named per problem


@dataclass(frozen=True)
class CaseSummary:
    """What the checks need of one training case: its label values and the geometry of label and images."""

    case_id: str
    label_values: frozenset[int]
    label_shape: tuple[int, ...]
    label_spacing: tuple[float, ...]
    image_shapes: tuple[tuple[int, ...], ...]
    image_spacings: tuple[tuple[float, ...], ...]


def _named(case_ids: Sequence[str]) -> str:
    shown = ", ".join(case_ids[:SHOWN])
    return shown + (f" and {len(case_ids) - SHOWN} more" if len(case_ids) > SHOWN else "")


def raw_dataset_problems(cases: Iterable[CaseSummary], label_values: Iterable[int],
                         background: Iterable[int] = (0,)) -> list[str]:
    """One line per kind of problem (the cases named), empty when the dataset is fine on these counts."""
    cases = list(cases)
    expected = set(label_values)
    problems = []
    unexpected = {c.case_id: sorted(c.label_values - expected) for c in cases if c.label_values - expected}
    if unexpected:
        first = next(iter(unexpected))
        problems.append(f"label values not in dataset.json's labels {sorted(expected)} in {len(unexpected)} case(s): "
                        f"{_named(list(unexpected))} (e.g. {first}: {unexpected[first]}); fix the label maps or add "
                        f"the labels to dataset.json")
    mismatched = [c.case_id for c in cases if _geometry_differs(c)]
    if mismatched:
        problems.append(f"label map and image differ in shape or spacing in {len(mismatched)} case(s): "
                        f"{_named(mismatched)}; resample or re-export the label maps onto their images")
    background = set(background)
    if cases and not any(c.label_values - background for c in cases):
        ignored = sorted(background - {0})
        what = "background 0" + (f" or the ignore label {ignored[0]}" if ignored else "")
        problems.append(f"no foreground in any of the {len(cases)} label maps (every voxel is {what}): nothing "
                        f"to learn; check that labelsTr holds the segmentations")
    return problems


def _geometry_differs(case: CaseSummary) -> bool:
    for shape, spacing in zip(case.image_shapes, case.image_spacings):
        if tuple(shape) != tuple(case.label_shape):
            return True
        if len(spacing) != len(case.label_spacing) or not all(
                math.isclose(a, b, rel_tol=1e-3) for a, b in zip(spacing, case.label_spacing)):
            return True
    return False


def summarise_raw_dataset(raw_folder: str | Path) -> list[CaseSummary]:
    """Read every training case of a raw nnU-Net dataset with nnU-Net's reader (as its planning does)."""
    import contextlib
    import io
    import json

    import numpy as np
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    raw_folder = Path(raw_folder)
    dataset_json = json.loads((raw_folder / "dataset.json").read_text())
    cases = get_filenames_of_train_images_and_targets(str(raw_folder), dataset_json)
    first = next(iter(cases.values()), None)
    if first is None:
        return []
    try:  # nnU-Net prints which reader it picked (and, when none reads the file, tracebacks of each it tried)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            reader = determine_reader_writer_from_dataset_json(dataset_json, first["images"][0])()
    except Exception as error:  # noqa: BLE001 - no reader for the file ending, or a damaged first image
        reason = " ".join(str(error).split())[:300]
        raise ProgressiveConfigError(
            f"no reader of nnU-Net reads {first['images'][0]} (file_ending {dataset_json.get('file_ending')!r} of "
            f"{raw_folder / 'dataset.json'}; {type(error).__name__}: {reason}): replace the damaged file or set the "
            f"file_ending the images have") from None
    summaries = []
    for case_id, files in cases.items():
        try:
            seg, seg_properties = reader.read_seg(files["label"])
            images = [reader.read_images([image]) for image in files["images"]]
        except Exception as error:  # noqa: BLE001 - any reader's failure on a damaged or missing file
            reason = " ".join(str(error).split())[:300]
            raise ProgressiveConfigError(
                f"case {case_id} of {raw_folder} cannot be read ({type(error).__name__}: {reason}); its files: "
                f"{', '.join(Path(f).name for f in [*files['images'], files['label']])}: replace the damaged or "
                f"missing file") from None
        summaries.append(CaseSummary(
            case_id, frozenset(int(v) for v in np.unique(seg)), tuple(seg.shape[1:]),
            tuple(float(s) for s in seg_properties["spacing"]),
            tuple(tuple(data.shape[1:]) for data, _ in images),
            tuple(tuple(float(s) for s in properties["spacing"]) for _, properties in images)))
    return summaries


def expected_label_values(dataset_json: dict) -> set[int]:
    """The label values dataset.json declares (region-based labels give tuples of values)."""
    values: set[int] = set()
    for value in dataset_json.get("labels", {}).values():
        values.update(int(v) for v in (value if isinstance(value, list | tuple) else [value]))
    return values
