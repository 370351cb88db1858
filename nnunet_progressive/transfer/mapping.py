"""Weights from one network into another: the mapping plan on ``{name: shape}`` and the tensor rules (pure).

The plan decides, for every tensor of the TARGET network, where its values come from:

- ``loaded``: a source tensor with the same (normalised) name and shape;
- ``adapted``: a source tensor that differs only in what a documented rule can bridge:
  - input channels (the first convolution, :func:`adapt_input_channels`): every target channel starts from the
    filter of the source channel with the same name (modality and sequence, e.g. ``T1`` -> ``T1``), or from the
    mean of the source filters when no source channel matches; all are multiplied by ``C_source / C_target``,
    so that an input whose channels all carry the same image gives the source network's response (exactly so
    when no channel matched). nnU-Net's U-Nets put an instance norm right after this convolution, which takes
    out any constant scale anyway.
  - odd kernel sizes (:func:`adapt_kernel`): per axis ``k -> 1`` sums the filter over that axis (same response
    to images constant along it, e.g. 1 mm isotropic -> 5 mm slices), a smaller kernel keeps the centre, a
    larger one is zero-padded around it (the same response on any image);
- ``fresh``: no source tensor of that name, or a shape no rule bridges (other feature counts, depth): the target
  network's own initialisation is kept;
- ``head``: segmentation layers (``.seg_layers.``): nnU-Net's ``load_pretrained_weights`` never loads them. Their
  rows (one per output class) are kept from the source for the target labels whose names match a source label's
  (:func:`match_head_rows`; background to background), fresh for the others; the fine-tuning trainers load them.

Counts are of tensors (unique parameters): nnU-Net's U-Nets hold one tensor under several state-dict names (the
decoder keeps the encoder as ``decoder.encoder``; a conv is also reachable through ``all_modules``), so the names
are grouped by the tensor they share (:meth:`MappingPlan.tensor_counts`).

Names are compared after removing the ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes, on both
sides. Decoder stages are matched by resolution from the top (nnU-Net numbers them from the bottleneck), so a
deeper or shallower source still lines up its full-resolution stages with the target's.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.transfer.finetune import DECODER, ENCODER, HEADS, NEW

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
HEAD_MARKER = ".seg_layers."  # what nnU-Net's load_pretrained_weights skips
LOADED, ADAPTED, FRESH, HEAD = "loaded", "adapted", "fresh", "head"
STATUSES = (LOADED, ADAPTED, FRESH, HEAD)
CHANNEL_RULES = ("match", "mean")
DEFAULT_MIN_SHARE = 0.5
_DECODER_INDEXED = re.compile(r"^(decoder\.(?:stages|transpconvs|seg_layers))\.(\d+)(\..*)?$")
_ENCODER_STAGE_WEIGHT = re.compile(r"^encoder\.(?:stages\.(\d+)|stem)\..*weight$")
ENCODER_PREFIXES = ("encoder.", "swinViT.", "vit.", "eva.", "down_projection.", "stem.")
HEAD_PREFIXES = ("out.",)  # MONAI UNETR / SwinUNETR
_PRIMUS_HEAD = re.compile(r"^up_projection\.decode\.\d+\.(?:weight|bias)$")  # Primus: the decoder's last conv

Shape = tuple[int, ...]


def strip_wrappers(name: str) -> str:
    """``module._orig_mod.encoder.x`` -> ``encoder.x`` (DDP and torch.compile prefixes, in any order)."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name


def normalise_names(shapes: Mapping[str, Sequence[int]], where: str) -> dict[str, Shape]:
    """Names without wrapper prefixes; two names that become the same is an error naming both."""
    result: dict[str, Shape] = {}
    origin: dict[str, str] = {}
    for name, shape in shapes.items():
        clean = strip_wrappers(str(name))
        if clean in result and tuple(shape) != result[clean]:
            raise ProgressiveConfigError(f"{where}: {origin[clean]!r} and {name!r} are the same tensor after removing "
                                         f"'module.'/'_orig_mod.' but have shapes {result[clean]} and {tuple(shape)}")
        result[clean] = tuple(int(s) for s in shape)
        origin.setdefault(clean, str(name))
    return result


def is_head(name: str) -> bool:
    name = strip_wrappers(name)
    return HEAD_MARKER in "." + name or name.startswith(HEAD_PREFIXES) or _PRIMUS_HEAD.match(name) is not None


def parameter_role(name: str) -> str:
    """``heads``, ``encoder`` or ``decoder`` by name (nnU-Net U-Nets, ResEnc, MONAI UNETR/SwinUNETR, Primus)."""
    name = strip_wrappers(name)
    if is_head(name):
        return HEADS
    if name.startswith(ENCODER_PREFIXES) or name.startswith("decoder.encoder."):  # nnU-Net's decoder keeps an alias
        return ENCODER
    return DECODER


def decoder_levels(names: Iterable[str]) -> int:
    """Number of decoder stages (``decoder.stages.<i>``) in a state dict's names."""
    levels = [int(m.group(2)) for m in map(_DECODER_INDEXED.match, names) if m and m.group(1).endswith("stages")]
    return max(levels) + 1 if levels else 0


def source_name_for(target_name: str, target_levels: int, source_levels: int) -> str | None:
    """The source tensor name at the same decoder resolution (None if the source has no such level)."""
    match = _DECODER_INDEXED.match(target_name)
    if match is None or target_levels == source_levels or not source_levels:
        return target_name
    index = int(match.group(2)) + (source_levels - target_levels)
    if index < 0:
        return None
    return f"{match.group(1)}.{index}{match.group(3) or ''}"


def first_convolution(shapes: Mapping[str, Shape]) -> list[str]:
    """Names of the input convolution's weight: the first weight with >= 3 dimensions, and its aliases
    (names that end with it, e.g. nnU-Net's ``decoder.encoder.`` copy)."""
    first = next((n for n, s in shapes.items() if n.endswith("weight") and len(s) >= 3), None)
    if first is None:
        return []
    return [n for n in shapes if n == first or n.endswith("." + first)]


@dataclass(frozen=True)
class TensorMapping:
    target: str
    source: str | None
    target_shape: Shape
    source_shape: Shape | None
    status: str  # loaded | adapted | fresh | head
    rule: str

    @property
    def elements(self) -> int:
        return math.prod(self.target_shape)


@dataclass(frozen=True)
class MappingPlan:
    entries: tuple[TensorMapping, ...]
    unused_source: tuple[str, ...]
    source_input_channels: int | None
    target_input_channels: int | None

    def by_status(self, status: str) -> list[TensorMapping]:
        return [e for e in self.entries if e.status == status]

    def counts(self) -> dict[str, int]:
        """State-dict names per status (aliases counted once each; see :meth:`tensor_counts`)."""
        return {status: len(self.by_status(status)) for status in STATUSES}

    def _unique(self, tensor_of: Mapping[str, object] | None) -> list[TensorMapping]:
        """One entry per tensor: the first name of each group of aliases (``tensor_of``: name -> tensor id)."""
        if tensor_of is None:
            return list(self.entries)
        seen, unique = set(), []
        for entry in self.entries:
            key = tensor_of.get(entry.target, entry.target)
            if key not in seen:
                seen.add(key)
                unique.append(entry)
        return unique

    def tensor_counts(self, tensor_of: Mapping[str, object] | None) -> dict[str, int]:
        """Tensors (unique parameters and buffers) per status; names that share a tensor count once."""
        unique = self._unique(tensor_of)
        return {status: sum(1 for e in unique if e.status == status) for status in STATUSES}

    def mapped_share(self, tensor_of: Mapping[str, object] | None = None) -> float:
        """Share of the target's non-head elements that come from the source (loaded or adapted), each tensor
        counted once when ``tensor_of`` groups the aliases."""
        body = [e for e in self._unique(tensor_of) if e.status != HEAD]
        total = sum(e.elements for e in body)
        mapped = sum(e.elements for e in body if e.status in (LOADED, ADAPTED))
        return mapped / total if total else 0.0

    def status_of(self) -> dict[str, str]:
        return {e.target: e.status for e in self.entries}

    def to_dict(self) -> dict:
        data = asdict(self)
        data["counts"] = self.counts()
        data["mapped_share"] = self.mapped_share()
        return data


def _kernel_rule(source: Shape, target: Shape) -> str | None:
    """How an odd kernel becomes another (None if it cannot)."""
    if len(source) != len(target) or len(source) < 3 or source[:2] != target[:2]:
        return None
    parts = []
    for axis, (k_source, k_target) in enumerate(zip(source[2:], target[2:])):
        if k_source == k_target:
            continue
        if k_source % 2 == 0 or k_target % 2 == 0:
            return None
        if k_target == 1:
            parts.append(f"summed over axis {axis}")
        elif k_target < k_source:
            parts.append(f"centre {k_target} of {k_source} on axis {axis}")
        else:
            parts.append(f"zero-padded {k_source}->{k_target} on axis {axis}")
    if not parts:
        return None
    return f"kernel {'x'.join(map(str, source[2:]))} -> {'x'.join(map(str, target[2:]))} ({'; '.join(parts)})"


def plan_mapping(source: Mapping[str, Sequence[int]], target: Mapping[str, Sequence[int]],
                 source_input: Iterable[str] | None = None, target_input: Iterable[str] | None = None,
                 adapt_kernels: bool = True) -> MappingPlan:
    """Where every target tensor comes from (see the module docstring).

    ``source_input`` / ``target_input``: names of the input convolution's weight (all aliases); by default the
    first convolution weight and the names ending with it (:func:`first_convolution`).
    """
    source_shapes = normalise_names(source, "source checkpoint")
    target_shapes = normalise_names(target, "target network")
    source_in = {strip_wrappers(n) for n in source_input} if source_input is not None else set(
        first_convolution(source_shapes))
    target_in = {strip_wrappers(n) for n in target_input} if target_input is not None else set(
        first_convolution(target_shapes))
    source_channels = next((source_shapes[n][1] for n in source_in if n in source_shapes), None)
    target_channels = next((target_shapes[n][1] for n in target_in if n in target_shapes), None)
    source_levels, target_levels = decoder_levels(source_shapes), decoder_levels(target_shapes)
    entries, used = [], set()
    for name, shape in target_shapes.items():
        source_name = source_name_for(name, target_levels, source_levels)
        source_shape = source_shapes.get(source_name) if source_name else None
        if is_head(name):
            entries.append(TensorMapping(name, source_name if source_shape is not None else None, shape,
                                         source_shape, HEAD, "segmentation head: fresh rows for the target's classes"))
            if source_shape is not None:
                used.add(source_name)
            continue
        if source_shape is None:
            entries.append(TensorMapping(name, None, shape, None, FRESH, "no source tensor of this name"))
            continue
        used.add(source_name)
        if source_shape == shape:
            entries.append(TensorMapping(name, source_name, shape, source_shape, LOADED, "identical"))
            continue
        rules = []
        bridged = source_shape
        if name in target_in and len(shape) == len(source_shape) and len(shape) >= 3 and \
                shape[0] == source_shape[0] and shape[1] != source_shape[1]:
            rules.append(f"input channels {source_shape[1]} -> {shape[1]}")
            bridged = (shape[0], shape[1], *source_shape[2:])
        if bridged != shape and adapt_kernels:
            kernel = _kernel_rule(bridged, shape)
            if kernel:
                rules.append(kernel)
                bridged = shape
        if bridged == shape and rules:
            entries.append(TensorMapping(name, source_name, shape, source_shape, ADAPTED, "; ".join(rules)))
        else:
            entries.append(TensorMapping(name, source_name, shape, source_shape, FRESH,
                                         f"shape {source_shape} cannot become {shape}"))
    unused = tuple(n for n in source_shapes if n not in used)
    return MappingPlan(tuple(entries), unused, source_channels, target_channels)


# --- segmentation heads ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeadRows:
    """Per target output channel (nnU-Net's order: sorted label values) its label and the source channel whose
    head row it keeps (None: fresh). ``reason`` says why no row is kept when ``source_channels`` are all None."""

    target_labels: tuple[str, ...]
    source_channels: tuple[int | None, ...]
    source_labels: tuple[str | None, ...]
    reason: str = ""

    @property
    def kept(self) -> dict[str, str]:
        return {t: s for t, s in zip(self.target_labels, self.source_labels) if s is not None}

    @property
    def fresh(self) -> list[str]:
        return [t for t, s in zip(self.target_labels, self.source_labels) if s is None]

    def describe(self) -> str:
        if not self.kept:
            return f"all rows fresh ({self.reason or 'no target label name matches a source label'})"
        kept = ", ".join(t if t == s else f"{t} <- {s}" for t, s in self.kept.items())
        return f"rows kept for {kept}; fresh for {', '.join(self.fresh) or 'none'}"


def output_channels(labels: Mapping[str, object]) -> list[str] | None:
    """Label names in nnU-Net's output-channel order (sorted values, ``ignore`` left out); None when the labels
    are regions (lists of values: one sigmoid head per region, not per label)."""
    by_value: dict[int, str] = {}
    for name, value in labels.items():
        if str(name).lower() == "ignore":
            continue
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                return None
            value = value[0]
        by_value.setdefault(int(value), str(name))
    return [by_value[v] for v in sorted(by_value)]


def match_head_rows(target_labels: Mapping[str, object], source_labels: Mapping[str, object] | None) -> HeadRows:
    """Which source head row each target output channel keeps: background to background, a foreground label to the
    source label of the same structure and side (normalised names, :func:`.names.label_similarity` = 1)."""
    from nnunet_progressive.transfer.names import label_similarity, normalise_label

    target = output_channels(target_labels)
    if target is None:
        return HeadRows((), (), (), "the target's labels are regions")
    fresh = (tuple(target), (None,) * len(target), (None,) * len(target))
    if source_labels is None:
        return HeadRows(*fresh, "the source's labels are unknown (no dataset.json beside the checkpoint)")
    source = output_channels(source_labels)
    if source is None:
        return HeadRows(*fresh, "the source's labels are regions")
    channels: list[int | None] = []
    for index, name in enumerate(target):
        if index == 0 and source:  # value 0: background
            channels.append(0)
            continue
        normal = normalise_label(name)
        match = next((j for j, other in enumerate(source) if j > 0 and
                      label_similarity(normal, normalise_label(other)) == 1.0), None)
        channels.append(match)
    if all(c is None for c in channels[1:]):
        return HeadRows(*fresh, "no target label name matches a source label")
    return HeadRows(tuple(target), tuple(channels), tuple(None if c is None else source[c] for c in channels))


def head_with_rows(fresh: np.ndarray, source: np.ndarray, rows: HeadRows) -> np.ndarray:
    """A head tensor (weight ``(classes, features, *1)`` or bias ``(classes,)``): the kept rows from ``source``,
    the others from ``fresh``. Raises ValueError when the shapes beyond the class axis differ."""
    fresh, source = np.asarray(fresh), np.asarray(source)
    if fresh.shape[1:] != source.shape[1:] or fresh.shape[0] != len(rows.source_channels):
        raise ValueError(f"head shapes {source.shape} -> {fresh.shape} with {len(rows.source_channels)} target classes")
    result = fresh.copy()
    for index, channel in enumerate(rows.source_channels):
        if channel is not None:
            result[index] = source[channel]
    return result


# --- diagnosis --------------------------------------------------------------------------------------------------

def describe_network(shapes: Mapping[str, Sequence[int]]) -> str:
    """``5 encoder stages, features [32, 64, ...], kernels [3x3x3, ...], 1 input channel`` from names and shapes."""
    shapes = normalise_names(shapes, "network")
    stages: dict[str, Shape] = {}
    for name, shape in shapes.items():
        match = _ENCODER_STAGE_WEIGHT.match(name)
        if match and len(shape) >= 3:
            stages.setdefault(match.group(1) or "stem", shape)
    if not stages:
        return f"{len(shapes)} tensors (not an nnU-Net U-Net: no encoder.stages)"
    ordered = sorted(stages.items(), key=lambda item: -1 if item[0] == "stem" else int(item[0]))
    features = [s[0] for _, s in ordered]
    kernels = ["x".join(map(str, s[2:])) for _, s in ordered]
    first = first_convolution(shapes)
    channels = shapes[first[0]][1] if first else "?"
    return (f"{len(ordered)} encoder stages, features {features}, kernels {kernels}, {channels} input "
            f"channel{'s' if channels != 1 else ''}")


def check_enough_maps(plan: MappingPlan, source: Mapping[str, Sequence[int]], target: Mapping[str, Sequence[int]],
                      min_share: float = DEFAULT_MIN_SHARE) -> None:
    """Raise when less than ``min_share`` of the target's (non-head) elements come from the source."""
    share = plan.mapped_share()
    if share >= min_share:
        return
    mismatches = [e for e in plan.entries if e.status == FRESH][:3]
    listed = "; ".join(f"{e.target}: source {e.source_shape or 'missing'} vs target {e.target_shape}"
                       for e in mismatches)
    raise ProgressiveConfigError(
        f"only {share:.0%} of the target network's weights map from the checkpoint (at least {min_share:.0%} "
        f"needed): the networks differ. Source: {describe_network(source)}. Target: {describe_network(target)}. "
        f"First mismatches: {listed}. Pre-train the source with the target's plans (`nnprog transfer prepare`) "
        f"so both networks match, or accept a partial load with --min-share {max(0.0, share - 0.01):.2f}")


# --- tensor rules (numpy) -------------------------------------------------------------------------------------

def adapt_input_channels(weight: np.ndarray, target_channels: int, matches: Sequence[int | None] | None = None
                         ) -> np.ndarray:
    """A first-convolution weight ``(out, C_source, *k)`` for ``target_channels`` input channels.

    ``matches[i]``: the source channel whose filter target channel ``i`` starts from (None: the mean of the source
    filters); by default none. Everything is then multiplied by ``C_source / C_target``.
    """
    weight = np.asarray(weight)
    if weight.ndim < 3:
        raise ValueError(f"expected a convolution weight (out, in, *kernel), got shape {weight.shape}")
    source_channels = weight.shape[1]
    matches = list(matches) if matches is not None else [None] * target_channels
    if len(matches) != target_channels:
        raise ValueError(f"need one match per target channel ({target_channels}), got {len(matches)}")
    mean = weight.mean(axis=1)
    columns = [weight[:, j] if j is not None else mean for j in matches]
    return (np.stack(columns, axis=1) * (source_channels / target_channels)).astype(weight.dtype, copy=False)


def adapt_kernel(weight: np.ndarray, target_shape: Sequence[int]) -> np.ndarray:
    """A convolution weight with odd kernel sizes moved to ``target_shape`` (see the module docstring)."""
    weight = np.asarray(weight)
    target_shape = tuple(int(s) for s in target_shape)
    if _kernel_rule(tuple(weight.shape), target_shape) is None and tuple(weight.shape) != target_shape:
        raise ValueError(f"no kernel rule from {weight.shape} to {target_shape}")
    result = weight
    for axis in range(2, weight.ndim):
        k_source, k_target = result.shape[axis], target_shape[axis]
        if k_source == k_target:
            continue
        if k_target == 1:
            result = result.sum(axis=axis, keepdims=True)
        elif k_target < k_source:
            offset = (k_source - k_target) // 2
            result = np.take(result, range(offset, offset + k_target), axis=axis)
        else:
            pad = [(0, 0)] * result.ndim
            pad[axis] = ((k_target - k_source) // 2, (k_target - k_source) // 2)
            result = np.pad(result, pad)
    return result.astype(weight.dtype, copy=False)


def adapt_tensor(entry: TensorMapping, value: np.ndarray, channel_matches: Sequence[int | None] | None = None
                 ) -> np.ndarray:
    """The source value of an ``adapted`` entry moved to the target shape (channels first, then kernel)."""
    value = np.asarray(value)
    if entry.status != ADAPTED:
        raise ValueError(f"{entry.target} is {entry.status}, not adapted")
    if entry.target_shape[1] != value.shape[1]:
        value = adapt_input_channels(value, entry.target_shape[1], channel_matches)
    if tuple(value.shape) != entry.target_shape:
        value = adapt_kernel(value, entry.target_shape)
    return value


def frozen_roles(names: Iterable[str], statuses: Mapping[str, str] | None) -> dict[str, str]:
    """Fine-tuning role of every parameter: heads, decoder, encoder (pre-trained, loaded unchanged) or new.

    ``statuses`` (from a transfer record): encoder tensors that were adapted or fresh become ``new`` (they train
    while the pre-trained encoder is frozen); without it every encoder tensor counts as pre-trained.
    """
    roles = {}
    clean_statuses = {strip_wrappers(k): v for k, v in (statuses or {}).items()}
    for name in names:
        role = parameter_role(name)
        if role == ENCODER and statuses is not None and clean_statuses.get(strip_wrappers(name), LOADED) != LOADED:
            role = NEW
        roles[name] = role
    return roles
