"""`nnprog transfer prepare`: nnU-Net's documented pretraining workflow, in the right direction, step by step.

nnU-Net's documentation (pretraining_and_finetuning.md) asks for four steps; people get the direction of the third
wrong (nnU-Net issues #1464, #2368, #2440, #1970):

1. plan the TARGET (the dataset to fine-tune on): its plans decide the network of both datasets;
2. ``nnUNetv2_extract_fingerprint -d SOURCE``;
3. ``nnUNetv2_move_plans_between_datasets -s TARGET -t SOURCE -sp PLANS -tp SOURCE_PLANS`` (nnU-Net's ``-s`` is
   the dataset whose plans are copied, i.e. the fine-tuning target; ``-t`` receives them);
4. ``nnUNetv2_preprocess -d SOURCE -plans_name SOURCE_PLANS -c CONFIG`` (it reads the source's dataset.json from
   nnUNet_preprocessed, where only nnU-Net's planner puts it: copied here when missing, a step the docs leave out).

Step 1 is the user's choice (planner, presets) and is checked, not run; steps 2-4 are run with nnU-Net's commands
where needed and checked after. A re-run skips what is done (the record ``nnprog_transfer_<SOURCE_PLANS>.json``
in the source's preprocessed folder keeps the sha256 of the target plans that were moved; if the target was planned
again since, steps 3 and 4 run again).

Channels. nnU-Net's move copies the target's normalisation (schemes, CT clipping and statistics). That is right
for a source channel of the same modality and sequence as a target channel (the network then sees both datasets
on one intensity scale), and wrong otherwise (CT statistics applied to an MRI source), and nnU-Net's preprocessing
fails when the source has more channels than the target. So when the channel names differ, each source channel
keeps the target's normalisation of the target channel with the same name (modality and sequence), or else gets
the scheme nnU-Net's own planner chooses for the source and the source's own intensity statistics. The record and
the output say which channel got what.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.io import atomic_write_json
from nnunet_progressive.core.records import (
    TransferPreparation,
    read_record,
    transfer_preparation_file_name,
    write_record,
)
from nnunet_progressive.nnunet.offline.transfer.sources import extract_fingerprint, run_shown, training_cases
from nnunet_progressive.nnunet.resolve import DatasetFolders, data_identifier, locate_dataset, preprocessed_root
from nnunet_progressive.transfer.names import match_channels


def source_plans_name(plans: str, target_id: int) -> str:
    """The identifier of the target's plans once moved onto a source: ``nnUNetPlans_from501``."""
    return f"{plans}_from{target_id:03d}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _channels(dataset_json: dict) -> list[str]:
    channels = dataset_json.get("channel_names") or dataset_json.get("modality") or {}
    return [str(channels[k]) for k in sorted(channels, key=int)]


def _dataset_json(folders: DatasetFolders) -> dict:
    for folder in (folders.raw, folders.preprocessed):
        if folder is not None and (folder / "dataset.json").is_file():
            return json.loads((folder / "dataset.json").read_text())
    raise ProgressiveConfigError(f"{folders.name} has no dataset.json")


def check_target_planned(target: DatasetFolders, source: DatasetFolders, plans: str,
                         configurations: list[str] | None) -> tuple[Path, dict, list[str]]:
    """The target's plans file, its content and the configurations to prepare; errors name the fix."""
    plan_command = f"nnUNetv2_plan_and_preprocess -d {target.dataset_id}" + (
        f" -c {' '.join(configurations)}" if configurations else "")
    plans_file = (target.preprocessed / f"{plans}.json") if target.preprocessed else None
    if plans_file is None or not plans_file.is_file():
        swapped = source.preprocessed is not None and (source.preprocessed / f"{plans}.json").is_file()
        raise ProgressiveConfigError(
            f"the target {target.name} is not planned ({plans}.json is missing in nnUNet_preprocessed): its plans "
            f"decide the network of both datasets, so plan it first: `{plan_command}`"
            + (f". {source.name} is planned: if {source.name} is the dataset you want to fine-tune on, swap "
               f"--source and --target" if swapped else ""))
    content = json.loads(plans_file.read_text())
    if content.get("dataset_name") not in (None, target.name):
        raise ProgressiveConfigError(
            f"{plans_file} belongs to {content.get('dataset_name')} (its dataset_name), not to {target.name}: plans "
            f"were moved onto the target, the wrong direction (nnU-Net's move -s is the fine-tuning target, -t the "
            f"pretraining source). Plan the target itself again: `{plan_command}`")
    available = list(content.get("configurations", {}))
    if not configurations:
        configurations = ["3d_fullres"] if "3d_fullres" in available else available[:1]
    unknown = [c for c in configurations if c not in available]
    if unknown:
        raise ProgressiveConfigError(f"configurations {unknown} are not in {plans_file}; it has {available}")
    return plans_file, content, list(configurations)


def source_normalization(source: DatasetFolders, target_plans: dict, target_channels: list[str],
                         source_channels: list[str], fingerprint_file: Path) -> tuple[dict, list[dict]]:
    """Per source channel: the target's normalisation of the same modality/sequence, else the source's own.

    Returns (changes to write into the moved plans: ``normalization_schemes``, ``use_mask_for_norm``,
    ``foreground_intensity_properties_per_channel``; empty if the channels are the target's) and one line per
    source channel for the record.
    """
    if source_channels == target_channels:
        return {}, [{"channel": i, "name": n, "from": "target (nnU-Net's move: same channels)"}
                    for i, n in enumerate(source_channels)]
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

    # nnU-Net's own rule (scheme per channel name, mask from the fingerprint's cropping), on the source's own files:
    # its method reads only these two attributes, and its constructor would read them from the folders of
    # nnunetv2.paths, fixed when nnU-Net was first imported in this process (a caller such as the benchmark passes
    # other folders)
    planner = ExperimentPlanner.__new__(ExperimentPlanner)
    planner.dataset_json = _dataset_json(source)
    planner.dataset_fingerprint = json.loads(fingerprint_file.read_text())
    own_schemes, own_masks = planner.determine_normalization_scheme_and_whether_mask_is_used_for_norm()
    own_intensity = planner.dataset_fingerprint["foreground_intensity_properties_per_channel"]
    reference = next(iter(target_plans["configurations"].values()))
    configuration = next((c for c in target_plans["configurations"].values() if "normalization_schemes" in c),
                         reference)
    target_schemes, target_masks = configuration["normalization_schemes"], configuration["use_mask_for_norm"]
    target_intensity = target_plans["foreground_intensity_properties_per_channel"]
    schemes, masks, intensity, lines = [], [], {}, []
    for j, (i, score) in enumerate(match_channels(source_channels, target_channels)):
        if i is not None and score == 1.0:
            schemes.append(target_schemes[i])
            masks.append(target_masks[i])
            intensity[str(j)] = target_intensity[str(i)]
            lines.append({"channel": j, "name": source_channels[j], "scheme": target_schemes[i],
                          "from": f"target channel {i} ({target_channels[i]})"})
        else:
            schemes.append(own_schemes[j])
            masks.append(bool(own_masks[j]))
            intensity[str(j)] = own_intensity[str(j)]
            lines.append({"channel": j, "name": source_channels[j], "scheme": own_schemes[j],
                          "from": "source (no target channel of this modality/sequence)"})
    changes = {"normalization_schemes": schemes, "use_mask_for_norm": masks,
               "foreground_intensity_properties_per_channel": intensity}
    return changes, lines


def _apply_normalization(plans_file: Path, changes: dict) -> None:
    plans = json.loads(plans_file.read_text())
    plans["foreground_intensity_properties_per_channel"] = changes["foreground_intensity_properties_per_channel"]
    for entry in plans["configurations"].values():
        if "normalization_schemes" in entry:
            entry["normalization_schemes"] = changes["normalization_schemes"]
            entry["use_mask_for_norm"] = changes["use_mask_for_norm"]
    atomic_write_json(plans_file, plans)


def _preprocessed_cases(folder: Path) -> int:
    return len(list(folder.glob("*.pkl"))) if folder.is_dir() else 0


def preprocess_command(dataset_id: int, plans: str, configurations: list[str], num_processes: int) -> list[str]:
    return ["nnUNetv2_preprocess", "-d", str(dataset_id), "-plans_name", plans, "-c", *configurations,
            "-np", *([str(num_processes)] * len(configurations))]


def prepare_transfer(source: str | int, target: str | int, plans: str = "nnUNetPlans",
                     configurations: list[str] | None = None, source_plans: str | None = None,
                     num_processes: int = 2, log: Callable[[str], None] = print,
                     environment: Mapping[str, str] | None = None,
                     run_command: Callable[[list[str]], None] | None = None) -> tuple[TransferPreparation, list[str]]:
    """Run steps 2-4 of the workflow where needed; returns the record and the next commands.

    ``environment``: where nnU-Net's folders are (``nnUNet_raw``, ``nnUNet_preprocessed``) and what its commands run
    in (default ``os.environ``); ``run_command`` runs one of them (default: :func:`run_shown` in ``environment``,
    output on this terminal; the benchmark logs it).
    """
    from nnunet_progressive import __version__

    env = dict(os.environ if environment is None else environment)
    run = run_command or functools.partial(run_shown, env=env)
    src, tgt = locate_dataset(source, env), locate_dataset(target, env)
    if src.name == tgt.name:
        raise ProgressiveConfigError(f"--source and --target are both {src.name}; pre-train on another dataset")
    target_plans_file, target_plans, configurations = check_target_planned(tgt, src, plans, configurations)
    if src.raw is None:
        raise ProgressiveConfigError(f"the source {src.name} has no raw data in nnUNet_raw; nnU-Net preprocesses the "
                                     f"source from its raw images with the target's plans")
    source_plans = source_plans or source_plans_name(plans, tgt.dataset_id)
    preprocessed = preprocessed_root(None, env)
    steps: list[dict] = [{"step": f"target {tgt.name} planned ({plans})", "status": "checked"}]

    fingerprint_existed = src.preprocessed is not None and (src.preprocessed / "dataset_fingerprint.json").is_file()
    fingerprint_file = extract_fingerprint(src, num_processes, run, preprocessed)
    steps.append({"step": f"nnUNetv2_extract_fingerprint -d {src.dataset_id}",
                  "status": "already done" if fingerprint_existed else "ran"})

    source_folder = preprocessed / src.name
    record_file = source_folder / transfer_preparation_file_name(source_plans)
    previous = read_record(record_file, TransferPreparation, missing_ok=True)
    moved_file = source_folder / f"{source_plans}.json"
    sha = _sha256(target_plans_file)
    move = ["nnUNetv2_move_plans_between_datasets", "-s", str(tgt.dataset_id), "-t", str(src.dataset_id),
            "-sp", plans, "-tp", source_plans]
    fresh_move = (not moved_file.is_file() or previous is None or previous.target_plans_sha256 != sha
                  or previous.target_dataset != tgt.name or previous.target_plans != plans)
    if fresh_move:
        log(f"moving the plans of {tgt.name} onto {src.name}: {' '.join(move)}")
        run(move)
    moved = json.loads(moved_file.read_text())
    if moved.get("dataset_name") != src.name:
        raise ProgressiveConfigError(f"{moved_file} says dataset_name {moved.get('dataset_name')!r}, not {src.name}")
    steps.append({"step": " ".join(move), "status": "ran" if fresh_move else "already done (target plans unchanged)"})

    copied = source_folder / "dataset.json"
    if not copied.is_file():  # nnU-Net's planner copies it; the documented workflow never plans the source
        shutil.copyfile(src.raw / "dataset.json", copied)
        steps.append({"step": f"dataset.json copied to {copied} (nnUNetv2_preprocess reads it there)", "status": "ran"})

    target_channels, source_channels = _channels(_dataset_json(tgt)), _channels(_dataset_json(src))
    changes, normalization = source_normalization(src, target_plans, target_channels, source_channels,
                                                  fingerprint_file)
    if changes and fresh_move:
        _apply_normalization(moved_file, changes)
    steps.append({"step": "normalisation per source channel", "status": "; ".join(
        f"{line['name']}: {line.get('scheme', 'as the target')} from {line['from']}" for line in normalization)})

    expected = len(training_cases(src.raw, _dataset_json(src)))
    to_preprocess = []
    for configuration in configurations:
        identifier = data_identifier(json.loads(moved_file.read_text()), configuration)
        if fresh_move or identifier is None or _preprocessed_cases(source_folder / identifier) < expected:
            to_preprocess.append(configuration)
    preprocess = preprocess_command(src.dataset_id, source_plans, to_preprocess or configurations, num_processes)
    if to_preprocess:
        log(f"preprocessing {src.name} with the target's plans: {' '.join(preprocess)}")
        run(preprocess)
    for configuration in configurations:
        identifier = data_identifier(json.loads(moved_file.read_text()), configuration)
        count = _preprocessed_cases(source_folder / (identifier or ""))
        if count < expected:
            raise ProgressiveConfigError(f"preprocessing {src.name} ({configuration}) left {count} of {expected} cases "
                                         f"in {source_folder / (identifier or '?')}; see nnU-Net's output above")
    steps.append({"step": " ".join(preprocess), "status": "ran" if to_preprocess else "already done"})

    record = TransferPreparation(package_version=__version__, source_dataset=src.name, target_dataset=tgt.name,
                                 target_plans=plans, source_plans=source_plans, configurations=configurations,
                                 target_plans_sha256=sha, normalization=normalization, steps=steps)
    write_record(record_file, record)
    return record, next_commands(src, tgt, plans, source_plans, configurations[0], target_plans)


PRETRAINING_TRAINER = "nnUNetTrainer_ConstantPatch"  # plain nnU-Net that honours the package's knobs


def pretraining_command(source_id: int, configuration: str, source_plans: str) -> str:
    """Pre-training as docs/finetuning.md advises: fold ``all`` (no validation split is needed) without nnU-Net's
    final validation, which on fold ``all`` predicts every training case and measures nothing (a package trainer,
    so that ``NNPROG_FINAL_VALIDATION=off`` is honoured; its epochs are ``NNPROG_EPOCHS``, nnU-Net's 1000 by
    default)."""
    return (f"NNPROG_FINAL_VALIDATION=off nnUNetv2_train {source_id} {configuration} all -p {source_plans} "
            f"-tr {PRETRAINING_TRAINER}")


def next_commands(src: DatasetFolders, tgt: DatasetFolders, plans: str, source_plans: str, configuration: str,
                  target_plans: dict) -> list[str]:
    """What to run after ``prepare``: pre-train, adapt, fine-tune, predict."""
    checkpoint = (f"$nnUNet_results/{src.name}/{PRETRAINING_TRAINER}__{source_plans}__{configuration}/fold_all/"
                  f"checkpoint_final.pth")
    weights = f"{src.name}_for_{tgt.name}.pth"
    commands = []
    identifier = data_identifier(target_plans, configuration)
    if tgt.preprocessed is None or identifier is None or not any((tgt.preprocessed / identifier).glob("*.pkl")):
        commands.append(f"nnUNetv2_preprocess -d {tgt.dataset_id} -plans_name {plans} -c {configuration}")
    commands += [
        pretraining_command(src.dataset_id, configuration, source_plans),
        f"nnprog transfer adapt {checkpoint} -d {tgt.dataset_id} -c {configuration} -p {plans} -o {weights}",
        f"nnUNetv2_train {tgt.dataset_id} {configuration} 0 -p {plans} -tr nnUNetTrainer_Finetune "
        f"-pretrained_weights {weights}",
        f"nnUNetv2_predict -i IMAGES -o PREDICTIONS -d {tgt.dataset_id} -c {configuration} -p {plans} "
        f"-tr nnUNetTrainer_Finetune -f 0",
    ]
    return commands
