"""`nnprog transfer adapt`: a checkpoint mapped onto the target's network, loadable by stock nnU-Net.

nnU-Net's ``load_pretrained_weights`` (``nnUNetv2_train ... -pretrained_weights FILE``) asserts that every tensor
of the target network except the segmentation layers is in ``FILE['network_weights']`` with the same shape. So the
output holds the TARGET network's complete state dict: mapped tensors from the source (loaded or adapted, see
:mod:`nnunet_progressive.transfer.mapping`), the rest from a fresh network built exactly as the trainer builds it
(``build_network_architecture`` of the chosen trainer, nnU-Net's initialisation, seeded). The mapping record is
stored in the checkpoint (key ``nnprog_transfer``, ignored by nnU-Net) and beside it as JSON; the output is then
loaded once with nnU-Net's own ``load_pretrained_weights`` as a check.

Segmentation heads: nnU-Net's loader skips them, so they hold the target network's fresh rows except for the target
labels whose names match a source label (the source's labels from the dataset.json of its model folder): those rows
(background included) are the source's, and the fine-tuning trainers load them (:mod:`nnunet_progressive.nnunet.
transfer`). Counts are of tensors, not of state-dict names (nnU-Net's U-Nets reach one tensor by several names).
"""
from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.io import replacing
from nnunet_progressive.core.records import (
    TRANSFER_CHECKPOINT_KEY,
    TransferRecord,
    transfer_report_path,
    write_record,
)
from nnunet_progressive.transfer.mapping import (
    ADAPTED,
    CHANNEL_RULES,
    DEFAULT_MIN_SHARE,
    HEAD,
    LOADED,
    HeadRows,
    adapt_tensor,
    check_enough_maps,
    head_with_rows,
    match_head_rows,
    plan_mapping,
    strip_wrappers,
)
from nnunet_progressive.transfer.names import match_channels

STATE_DICT_KEYS = ("network_weights", "state_dict", "model", "net", "network")


def load_state_dict(checkpoint: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The network weights in a checkpoint: nnU-Net's ``network_weights``, a ``state_dict``/``model`` entry, or a
    plain ``{name: tensor}`` file. Loaded on the CPU (pickled objects allowed, as nnU-Net loads checkpoints)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise ProgressiveConfigError(f"checkpoint {path} does not exist")
    try:
        content = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a damaged or foreign file
        raise ProgressiveConfigError(f"{path} cannot be read by torch.load ({type(error).__name__}: {error})") from None
    if isinstance(content, torch.nn.Module):
        content = content.state_dict()
    if not isinstance(content, dict):
        raise ProgressiveConfigError(f"{path} holds a {type(content).__name__}, not a checkpoint dictionary")
    for key in STATE_DICT_KEYS:
        if isinstance(content.get(key), dict):
            content = content[key]
            break
    tensors = {str(k): v for k, v in content.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ProgressiveConfigError(f"{path} holds no network weights: expected nnU-Net's 'network_weights' or a "
                                     f"state dict, found keys {sorted(map(str, content))[:10]}")
    return tensors


def tensor_identity(tensor: torch.Tensor) -> tuple:
    """What two state-dict names of one tensor share: storage, offset, shape and strides."""
    return tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.stride()


def aliases_of(state: dict[str, torch.Tensor], names: list[str]) -> list[str]:
    """Every name whose tensor shares storage (same data pointer, shape and strides) with one of ``names``."""
    wanted = {tensor_identity(state[n]) for n in names if n in state}
    return [n for n, t in state.items() if tensor_identity(t) in wanted]


def input_convolution(state: dict[str, torch.Tensor], network: torch.nn.Module | None = None) -> list[str]:
    """Names of the input convolution's weight with all aliases (``keys_to_in_proj`` of nnU-Net's networks, else
    the first convolution weight)."""
    first = []
    if network is not None and getattr(network, "keys_to_in_proj", None):
        first = [f"{k}.weight" for k in network.keys_to_in_proj if f"{k}.weight" in state]
    if not first:
        first = [next((n for n, t in state.items() if n.endswith("weight") and t.ndim >= 3), "")]
    return aliases_of(state, [n for n in first if n])


@dataclass(frozen=True)
class TargetNetwork:
    network: torch.nn.Module
    dataset_name: str
    channel_names: list[str]
    planned: object  # PlannedConfiguration
    labels: dict  # dataset.json labels of the target


def build_target_network(dataset: str | int, configuration: str, plans: str = "nnUNetPlans",
                         trainer: str = "nnUNetTrainer", seed: int = 0,
                         preprocessed: str | os.PathLike | None = None) -> TargetNetwork:
    """The network ``nnUNetv2_train DATASET CONFIGURATION FOLD -tr TRAINER -p PLANS`` builds, freshly initialised
    (``preprocessed``: nnU-Net's preprocessed folder, default ``$nnUNet_preprocessed``)."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    from nnunet_progressive.nnunet.orchestration.discovery import find_trainer_class
    from nnunet_progressive.nnunet.resolve import resolve_configuration

    planned = resolve_configuration(dataset, configuration, plans, preprocessed)
    dataset_json_file = planned.preprocessed_dataset_folder / "dataset.json"
    if not dataset_json_file.is_file():
        raise ProgressiveConfigError(f"{dataset_json_file} is missing; nnUNetv2_plan_and_preprocess writes it")
    dataset_json = json.loads(dataset_json_file.read_text())
    trainer_class = find_trainer_class(trainer)
    plans_manager, configuration_manager = planned.plans_manager, planned.configuration_manager
    channels = determine_num_input_channels(plans_manager, configuration_manager, dataset_json)
    heads = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    torch.manual_seed(seed)
    build = trainer_class.build_network_architecture
    if "plans_manager" in inspect.signature(build).parameters:
        network = build(plans_manager, configuration_manager, channels, heads, True)
    else:  # trainers written for nnU-Net < 2.8
        network = build(configuration_manager.network_arch_class_name, configuration_manager.network_arch_init_kwargs,
                        configuration_manager.network_arch_init_kwargs_req_import, channels, heads, True)
    names = [str(dataset_json["channel_names"][k]) for k in sorted(dataset_json["channel_names"], key=int)]
    return TargetNetwork(network, planned.dataset_name, names, planned, dict(dataset_json["labels"]))


def source_dataset_json(checkpoint: Path) -> dict | None:
    """The dataset.json of the model folder a checkpoint sits in (fold_X/checkpoint.pth), or None."""
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        candidate = folder / "dataset.json"
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return None


def source_channel_names(checkpoint: Path) -> list[str] | None:
    """Channel names from the dataset.json of the model folder a checkpoint sits in (fold_X/checkpoint.pth)."""
    dataset_json = source_dataset_json(checkpoint)
    if dataset_json is None:
        return None
    channels = dataset_json.get("channel_names") or {}
    return [str(channels[k]) for k in sorted(channels, key=int)]


def head_value(fresh: torch.Tensor, source: torch.Tensor | None, rows: HeadRows) -> tuple[torch.Tensor, str]:
    """A head tensor with the kept rows from ``source`` (the rest fresh), and the rule that says so."""
    if not rows.kept:
        return fresh, f"segmentation head: {rows.describe()}"
    if source is None:
        return fresh, "segmentation head: all rows fresh (the source has no head at this resolution)"
    try:
        value = head_with_rows(fresh.float().numpy(), source.float().numpy(), rows)
    except ValueError:
        return fresh, (f"segmentation head: all rows fresh (source head {tuple(source.shape)} has other features than "
                       f"the target's {tuple(fresh.shape)})")
    return torch.from_numpy(value).to(fresh.dtype), f"segmentation head: {rows.describe()}"


def channel_matches(target_names: list[str], source_names: list[str] | None, source_channels: int | None,
                    rule: str) -> list[int | None] | None:
    """Per target channel the source channel its first-layer filter starts from (exact modality/sequence
    match), or None (the mean of the source filters)."""
    if rule == "mean" or not source_names or source_channels is None or len(source_names) != source_channels:
        return None
    return [j if score == 1.0 else None for j, score in match_channels(target_names, source_names)]


def head_rows_record(rows: HeadRows, kept_any: bool, head_rules: dict[str, str]) -> dict:
    """What the record says of the heads: labels kept (target -> source), fresh, per output channel the source row."""
    kept = rows.kept if kept_any else {}
    return {"target_labels": list(rows.target_labels), "kept": kept,
            "fresh": [label for label in rows.target_labels if label not in kept],
            "source_channels": list(rows.source_channels) if kept_any else [None] * len(rows.target_labels),
            "note": rows.describe() if kept_any else next(iter(head_rules.values()), rows.describe())}


def adapt_checkpoint(checkpoint: str | os.PathLike, dataset: str | int, configuration: str, output: str | os.PathLike,
                     plans: str = "nnUNetPlans", trainer: str = "nnUNetTrainer", channel_rule: str = "match",
                     source_channels: list[str] | None = None, min_share: float = DEFAULT_MIN_SHARE,
                     adapt_kernels: bool = True, seed: int = 0,
                     preprocessed: str | os.PathLike | None = None) -> TransferRecord:
    """Write ``output`` (nnU-Net checkpoint format) for the target network; returns the mapping record.

    ``preprocessed``: nnU-Net's preprocessed folder of the target (default ``$nnUNet_preprocessed``)."""
    from nnunet_progressive import __version__

    if channel_rule not in CHANNEL_RULES:
        raise ProgressiveConfigError(f"--channel-rule must be one of {CHANNEL_RULES}, got {channel_rule!r}")
    if not 0.0 <= min_share <= 1.0:
        raise ProgressiveConfigError(f"--min-share must lie in [0, 1], got {min_share}")
    checkpoint, output = Path(checkpoint).resolve(), Path(output)
    if output.resolve() == checkpoint:
        raise ProgressiveConfigError(f"-o {output} would overwrite the source checkpoint; write to another file")
    source = {strip_wrappers(k): v for k, v in load_state_dict(checkpoint).items()}
    target = build_target_network(dataset, configuration, plans, trainer, seed, preprocessed)
    shared = target.network.state_dict()  # aliases share storage here (not in the copies below)
    target_state = {k: v.detach().clone() for k, v in shared.items()}
    plan = plan_mapping({k: tuple(v.shape) for k, v in source.items()},
                        {k: tuple(v.shape) for k, v in target_state.items()},
                        input_convolution(source), input_convolution(shared, target.network), adapt_kernels)
    check_enough_maps(plan, {k: tuple(v.shape) for k, v in source.items()},
                      {k: tuple(v.shape) for k, v in target_state.items()}, min_share)
    names = source_channels or source_channel_names(checkpoint)
    matches = channel_matches(target.channel_names, names, plan.source_input_channels, channel_rule)
    source_json = source_dataset_json(checkpoint)
    rows = match_head_rows(target.labels, None if source_json is None else source_json.get("labels"))
    head_rules, rows_kept = {}, False
    for entry in plan.entries:
        if entry.status == HEAD:
            value, head_rules[entry.target] = head_value(target_state[entry.target],
                                                         source.get(entry.source) if entry.source else None, rows)
            rows_kept |= value is not target_state[entry.target]
            target_state[entry.target] = value
            continue
        if entry.status == LOADED:
            value = source[entry.source]
        elif entry.status == ADAPTED:
            value = torch.from_numpy(np.ascontiguousarray(
                adapt_tensor(entry, source[entry.source].float().numpy(), matches)))
        else:
            continue
        target_state[entry.target] = value.to(dtype=target_state[entry.target].dtype).clone()
    tensor_of = {name: tensor_identity(tensor) for name, tensor in shared.items()}
    record = TransferRecord(
        package_version=__version__, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source_checkpoint=str(checkpoint), source_channel_names=names, target_dataset=target.dataset_name,
        target_configuration=configuration, target_plans=plans, target_trainer=trainer,
        target_channel_names=target.channel_names, channel_rule=channel_rule, channel_matches=matches, seed=seed,
        counts=plan.tensor_counts(tensor_of), state_dict_names=plan.counts(), mapped_share=plan.mapped_share(tensor_of),
        entries=[{"target": e.target, "source": e.source, "target_shape": list(e.target_shape),
                  "source_shape": None if e.source_shape is None else list(e.source_shape), "status": e.status,
                  "rule": head_rules.get(e.target, e.rule)} for e in plan.entries],
        unused_source=list(plan.unused_source),
        head_rows=head_rows_record(rows, rows_kept, head_rules))
    with replacing(output, suffix=".pth") as temporary:
        torch.save({"network_weights": target_state, TRANSFER_CHECKPOINT_KEY: record.to_json()}, temporary)
    write_record(transfer_report_path(output), record)
    _check_nnunet_loads(target.network, output)
    return record


def _check_nnunet_loads(network: torch.nn.Module, checkpoint: Path) -> None:
    """Load the written file with nnU-Net's own ``load_pretrained_weights`` (what ``-pretrained_weights`` does)."""
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            load_pretrained_weights(network, str(checkpoint), verbose=False)
    except AssertionError as error:  # pragma: no cover - the plan covers every target key
        raise ProgressiveConfigError(f"nnU-Net's load_pretrained_weights refuses {checkpoint}: {error}") from None


def read_transfer_record(checkpoint: str | os.PathLike) -> TransferRecord | None:
    """The mapping record of a checkpoint written by ``nnprog transfer adapt`` (None for other checkpoints): from the
    JSON beside it, else from the checkpoint itself."""
    from nnunet_progressive.core.records import read_record
    from nnunet_progressive.core.validation import validate

    report = transfer_report_path(checkpoint)
    if report.is_file():
        return read_record(report, TransferRecord)
    try:
        content = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
    except Exception:
        return None
    data = content.get(TRANSFER_CHECKPOINT_KEY) if isinstance(content, dict) else None
    return None if data is None else validate(TransferRecord, data, f"{checkpoint} ({TRANSFER_CHECKPOINT_KEY})")
