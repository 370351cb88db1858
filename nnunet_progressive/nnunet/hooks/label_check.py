"""The preprocessed label maps at the start of a new run: every value one dataset.json declares, each map of its
image's shape, and some foreground in at least one case.

nnU-Net checks this only when planned with ``--verify_dataset_integrity``. Without it an undeclared value is kept
by the preprocessing; training then stops in its first batch with a traceback from the loss (a value >= the number
of labels, tried), and an undeclared value below that (dataset.json skipping a value) would be used as the class of
that index without a word. The package's trainers read each preprocessed label map once when a new run starts (not on
``--c`` or ``--val``): a few milliseconds per small case, about a second per large CT volume.

nnU-Net's preprocessing stops on a label map whose shape differs from its image's (an assertion), and its planning on
a dataset without foreground (an ``IndexError`` in the fingerprint); both can still reach a training through
preprocessed data that was changed or mixed afterwards, or planned with another dataset's plans (nnU-Net's
pretraining workflow preprocesses with a moved plans file and extracts no fingerprint). A label map of another
spacing than its image leaves no trace in the preprocessed data (nnU-Net keeps the image's): ``nnprog check-dataset``
finds it in the raw dataset, before planning.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.naming import background_label_values

SHOWN = 5  # cases named in the message
OUTSIDE_MASK = -1  # nnU-Net's value for voxels outside the nonzero mask (use_mask_for_norm)


def declared_label_values(dataset_json: Mapping) -> set[int]:
    """The values dataset.json's ``labels`` declare (regions give lists of values), and nnU-Net's outside value."""
    values = {OUTSIDE_MASK}
    for value in dataset_json.get("labels", {}).values():
        values.update(int(v) for v in (value if isinstance(value, list | tuple) else [value]))
    return values


def undeclared_values_problem(values_per_case: Mapping[str, Iterable[int]], declared: set[int], dataset: str,
                              dataset_id_hint: str) -> str | None:
    """The message for cases whose label maps hold values dataset.json does not declare; None when there are none."""
    unexpected = {case: sorted(set(values) - declared) for case, values in values_per_case.items()}
    unexpected = {case: values for case, values in unexpected.items() if values}
    if not unexpected:
        return None
    cases = list(unexpected)
    first = cases[0]
    named = ", ".join(cases[:SHOWN]) + (f" and {len(cases) - SHOWN} more" if len(cases) > SHOWN else "")
    return (f"{dataset}: the preprocessed label maps of {len(cases)} case(s) hold values that dataset.json's labels "
            f"{sorted(declared - {OUTSIDE_MASK})} do not declare: {named} (e.g. {first}: {unexpected[first]}). "
            f"Fix the label maps or dataset.json's labels, then plan again with nnUNetv2_plan_and_preprocess -d "
            f"{dataset_id_hint} --verify_dataset_integrity")


def shape_mismatch_problem(shapes_per_case: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]], dataset: str,
                           dataset_id_hint: str) -> str | None:
    """The message for cases whose preprocessed label map (second shape) differs in shape from its image (first);
    None when there are none. Shapes without their channel axis."""
    mismatched = {case: shapes for case, shapes in shapes_per_case.items() if tuple(shapes[0]) != tuple(shapes[1])}
    if not mismatched:
        return None
    cases = list(mismatched)
    first = cases[0]
    image, label = ("x".join(map(str, shape)) for shape in mismatched[first])
    named = ", ".join(cases[:SHOWN]) + (f" and {len(cases) - SHOWN} more" if len(cases) > SHOWN else "")
    return (f"{dataset}: the preprocessed label maps of {len(cases)} case(s) differ in shape from their images: "
            f"{named} (e.g. {first}: image {image}, label map {label}); the preprocessed data was changed or mixed "
            f"after nnU-Net wrote it. Check the raw dataset with nnprog check-dataset {dataset_id_hint}, then "
            f"preprocess again with nnUNetv2_plan_and_preprocess -d {dataset_id_hint} --verify_dataset_integrity")


def no_foreground_problem(values_per_case: Mapping[str, Iterable[int]], background: set[int], dataset: str,
                          dataset_id_hint: str) -> str | None:
    """The message when no label map holds a value outside ``background`` (0, nnU-Net's outside value, the ignore
    label): a training would learn nothing; None when some case has foreground, or there are no cases."""
    seen = set().union(*(set(values) for values in values_per_case.values())) if values_per_case else set()
    if not values_per_case or seen - background:
        return None
    return (f"{dataset}: none of the {len(values_per_case)} preprocessed label maps holds foreground (values "
            f"{sorted(seen)} only): training would learn nothing. Put the segmentations into labelsTr of the raw "
            f"dataset (nnprog check-dataset {dataset_id_hint} checks it), then plan again with "
            f"nnUNetv2_plan_and_preprocess -d {dataset_id_hint} --verify_dataset_integrity")


def background_values(dataset_json: Mapping) -> set[int]:
    """The values that are no foreground: 0, nnU-Net's outside value and the ignore label, if any."""
    return background_label_values(dataset_json) | {OUTSIDE_MASK}


def check_label_values(plans: Mapping, configuration: str, dataset_json: Mapping) -> None:
    """Raise :class:`ProgressiveConfigError` if a preprocessed label map of ``configuration`` holds an undeclared
    value or differs in shape from its image, or if no label map holds foreground; one error with every problem
    (nothing to check if the preprocessed data is not there: nnU-Net reports that itself)."""
    import numpy as np
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from tqdm import tqdm

    if not nnUNet_preprocessed or "dataset_name" not in plans or configuration not in plans.get("configurations", {}):
        return
    folder = Path(nnUNet_preprocessed, plans["dataset_name"],
                  PlansManager(dict(plans)).get_configuration(configuration).data_identifier)
    if not folder.is_dir():
        return
    dataset_class = infer_dataset_class(str(folder))
    identifiers = sorted(dataset_class.get_identifiers(str(folder)))
    cases = dataset_class(str(folder), identifiers)
    values, shapes = {}, {}
    for identifier in tqdm(identifiers, desc="label maps", unit="case", disable=len(identifiers) < 50):
        data, seg, _, _ = cases.load_case(identifier)
        values[identifier] = [int(v) for v in np.unique(np.asarray(seg[:]))]
        shapes[identifier] = (tuple(data.shape[1:]), tuple(seg.shape[1:]))
    dataset, dataset_id = plans["dataset_name"], plans["dataset_name"].removeprefix("Dataset").split("_")[0]
    problems = [problem for problem in (
        undeclared_values_problem(values, declared_label_values(dataset_json), dataset, dataset_id),
        shape_mismatch_problem(shapes, dataset, dataset_id),
        no_foreground_problem(values, background_values(dataset_json), dataset, dataset_id)) if problem]
    if problems:
        raise ProgressiveConfigError(" Also: ".join(problems))
