"""Label values at the start of a new run: every value in the preprocessed label maps must be one dataset.json
declares.

nnU-Net checks this only when planned with ``--verify_dataset_integrity``. Without it an undeclared value is kept
by the preprocessing; training then stops in its first batch with a traceback from the loss (a value >= the number
of labels, tried), and an undeclared value below that (dataset.json skipping a value) would be used as the class of
that index without a word. The package's trainers read each preprocessed label map once when a new run starts (not on
``--c`` or ``--val``): a few milliseconds per small case, about a second per large CT volume.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from nnunet_progressive.core.errors import ProgressiveConfigError

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


def check_label_values(plans: Mapping, configuration: str, dataset_json: Mapping) -> None:
    """Raise :class:`ProgressiveConfigError` if a preprocessed label map of ``configuration`` holds an undeclared
    value (nothing to check if the preprocessed data is not there: nnU-Net reports that itself)."""
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
    values = {}
    for identifier in tqdm(identifiers, desc="label values", unit="case", disable=len(identifiers) < 50):
        _, seg, _, _ = cases.load_case(identifier)
        values[identifier] = [int(v) for v in np.unique(np.asarray(seg[:]))]
    dataset_id = plans["dataset_name"].removeprefix("Dataset").split("_")[0]
    problem = undeclared_values_problem(values, declared_label_values(dataset_json), plans["dataset_name"],
                                        dataset_id)
    if problem:
        raise ProgressiveConfigError(problem)
