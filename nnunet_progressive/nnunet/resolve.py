"""One resolver for (dataset, plans, configuration): nnU-Net's folders, with errors that name the fix."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.naming import dataset_id, is_dataset_name, parse_dataset_argument


@dataclass(frozen=True)
class PlannedConfiguration:
    """A planned (and maybe preprocessed) configuration of a dataset."""

    dataset_name: str
    plans_name: str
    configuration: str
    plans_file: Path
    plans_manager: object  # nnunetv2 PlansManager
    configuration_manager: object  # nnunetv2 ConfigurationManager

    @property
    def dataset_id(self) -> int:
        return dataset_id(self.dataset_name)

    @property
    def preprocessed_dataset_folder(self) -> Path:
        return self.plans_file.parent

    @property
    def data_folder(self) -> Path:
        """``<preprocessed dataset>/<data_identifier>``: the preprocessed cases of this configuration."""
        return self.plans_file.parent / self.configuration_manager.data_identifier

    def require_preprocessed(self) -> Path:
        folder = self.data_folder
        if not folder.is_dir() or not any(folder.iterdir()):
            raise ProgressiveConfigError(
                f"{self.dataset_name} is not preprocessed for configuration {self.configuration}: {folder} is missing "
                f"or empty. Run `nnUNetv2_preprocess -d {self.dataset_id} -plans_name {self.plans_name} "
                f"-c {self.configuration}` first.")
        return folder


def preprocessed_root(root: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """``root``, else ``nnUNet_preprocessed`` of ``environ`` (default ``os.environ``); a clear error if neither is
    there."""
    if root is not None:
        return Path(root)
    value = (os.environ if environ is None else environ).get("nnUNet_preprocessed")
    if not value:
        raise ProgressiveConfigError("nnUNet_preprocessed is not set; export it as for nnUNetv2_train (see nnU-Net's "
                                     "documentation/setting_up_paths.md)")
    return Path(value)


def _plan_command(identifier: int, configuration: str | None) -> str:
    return f"nnUNetv2_plan_and_preprocess -d {identifier}" + (f" -c {configuration}" if configuration else "")


def resolve_dataset_name(dataset: str | int, root: str | os.PathLike | None = None,
                         configuration: str | None = None) -> str:
    """``4`` / ``"004"`` / ``"Dataset004_X"`` -> ``Dataset004_X``, looked up in the preprocessed folder."""
    root = preprocessed_root(root)
    argument = parse_dataset_argument(dataset)
    if isinstance(argument, str):
        if not (root / argument).is_dir():
            raise ProgressiveConfigError(f"{argument} was not found in nnUNet_preprocessed={root}; plan it first: "
                                         f"{_plan_command(dataset_id(argument), configuration)}")
        return argument
    found = sorted(p.name for p in root.glob(f"Dataset{argument:03d}_*") if p.is_dir() and is_dataset_name(p.name))
    if len(found) > 1:
        raise ProgressiveConfigError(f"dataset id {argument} is ambiguous in {root}: {found}; pass the full name")
    if not found:
        raise ProgressiveConfigError(f"dataset {argument} was not found in nnUNet_preprocessed={root}; check the id, "
                                     f"or plan it first: {_plan_command(argument, configuration)}")
    return found[0]


def planned_plans_file(dataset: str | int, configuration: str, plans: str = "nnUNetPlans",
                       root: str | os.PathLike | None = None) -> Path:
    """The plans file of a planned dataset that holds ``configuration``, or one clear error naming the fix.

    Reads JSON only (no torch, no nnU-Net import): commands call it first, so a missing folder, dataset, plans or
    configuration is said at once."""
    import json

    name = resolve_dataset_name(dataset, root, configuration)
    folder = preprocessed_root(root) / name
    plans_file = folder / f"{plans}.json"
    if not plans_file.is_file():
        available = sorted(p.stem for p in folder.glob("*.json") if p.stem not in ("dataset", "dataset_fingerprint",
                                                                                   "splits_final"))
        raise ProgressiveConfigError(
            f"no plans {plans!r} for {name}: {plans_file} does not exist (plans there: {available or 'none'}). "
            + (f"Pass one of them with -p, or plan with the planner that writes {plans}.json."
               if available else f"Plan the dataset first: {_plan_command(dataset_id(name), configuration)}"))
    try:
        configurations = json.loads(plans_file.read_text()).get("configurations", {})
    except (OSError, ValueError, AttributeError) as error:
        raise ProgressiveConfigError(f"cannot read the plans file {plans_file} ({error}); plan the dataset again: "
                                     f"{_plan_command(dataset_id(name), configuration)}") from None
    if configuration not in configurations:
        raise ProgressiveConfigError(f"configuration {configuration!r} is not in {plans_file}; available: "
                                     f"{list(configurations)}")
    return plans_file


def resolve_configuration(dataset: str | int, configuration: str, plans: str = "nnUNetPlans",
                          root: str | os.PathLike | None = None) -> PlannedConfiguration:
    """The plans and configuration managers of a planned dataset, or one clear error naming the fix."""
    plans_file = planned_plans_file(dataset, configuration, plans, root)
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_manager = PlansManager(str(plans_file))
    return PlannedConfiguration(plans_file.parent.name, plans, configuration, plans_file, plans_manager,
                                plans_manager.get_configuration(configuration))


@dataclass(frozen=True)
class DatasetFolders:
    """Where a dataset lives: its raw folder, its preprocessed folder (either may be missing)."""

    name: str
    raw: Path | None
    preprocessed: Path | None

    @property
    def dataset_id(self) -> int:
        return dataset_id(self.name)


def locate_dataset(dataset: str | int, environ: Mapping[str, str] | None = None) -> DatasetFolders:
    """``4`` / ``"Dataset004_X"`` looked up in ``nnUNet_raw`` and ``nnUNet_preprocessed`` of ``environ`` (default
    ``os.environ``; one must hold it)."""
    argument = parse_dataset_argument(dataset)
    environ = os.environ if environ is None else environ
    roots = {key: Path(environ[key]) for key in ("nnUNet_raw", "nnUNet_preprocessed") if environ.get(key)}
    if not roots:
        raise ProgressiveConfigError("neither nnUNet_raw nor nnUNet_preprocessed is set; export them as for "
                                     "nnUNetv2_train (see nnU-Net's documentation/setting_up_paths.md)")
    found: dict[str, Path] = {}
    for key, root in roots.items():
        if isinstance(argument, str):
            matches = [root / argument] if (root / argument).is_dir() else []
        else:
            matches = sorted(p for p in root.glob(f"Dataset{argument:03d}_*") if p.is_dir() and is_dataset_name(p.name))
        if len(matches) > 1:
            raise ProgressiveConfigError(f"dataset id {argument} is ambiguous in {root}: {[m.name for m in matches]}; "
                                         f"pass the full name")
        if matches:
            found[key] = matches[0]
    names = {p.name for p in found.values()}
    if not found:
        raise ProgressiveConfigError(f"dataset {dataset} is neither in nnUNet_raw ({roots.get('nnUNet_raw')}) nor in "
                                     f"nnUNet_preprocessed ({roots.get('nnUNet_preprocessed')}); check the id")
    if len(names) > 1:
        raise ProgressiveConfigError(f"dataset id {argument} names different folders in nnUNet_raw and "
                                     f"nnUNet_preprocessed: {sorted(names)}; rename one of them")
    return DatasetFolders(names.pop(), found.get("nnUNet_raw"), found.get("nnUNet_preprocessed"))


_MISSING = object()


def configuration_value(plans: dict, configuration: str, key: str, default=_MISSING):
    """A configuration's value of ``key`` in a plans dict, following nnU-Net's ``inherits_from`` chain.

    Without ``default`` a missing configuration, a loop or a missing key is a :class:`ProgressiveConfigError`;
    with it, ``default`` is returned instead.
    """
    configurations = plans.get("configurations", {})
    seen: list[str] = []
    name = configuration
    while name is not None:
        if name in seen or name not in configurations:
            if default is not _MISSING:
                return default
            raise ProgressiveConfigError(f"configuration {configuration!r}: cannot resolve {key!r} through "
                                         f"inherits_from {seen + [name]} in the plans")
        seen.append(name)
        entry = configurations[name]
        if key in entry:
            return entry[key]
        name = entry.get("inherits_from")
    if default is not _MISSING:
        return default
    raise ProgressiveConfigError(f"configuration {configuration!r} has no {key!r} in the plans")


def data_identifier(plans: dict, configuration: str) -> str | None:
    """The folder name of a configuration's preprocessed data (``data_identifier``), None where the plans lack it."""
    return configuration_value(plans, configuration, "data_identifier", None)
