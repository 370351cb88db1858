"""Tables and plots of transfer learning: the adapt report and the source-score chart (pure)."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from nnunet_progressive.transfer.mapping import ADAPTED, FRESH, HEAD, LOADED
from nnunet_progressive.transfer.scores import COMPONENTS, CandidateScore


def _shape(shape) -> str:
    return "-" if shape is None else "x".join(map(str, shape))


def mapping_report(record: Mapping) -> str:
    """The ``nnprog transfer adapt`` report: counts, then every adapted, fresh and head tensor with both shapes."""
    counts = record["counts"]
    names = record.get("state_dict_names")
    aliases = "" if not names or sum(names.values()) == sum(counts.values()) else (
        f" ({sum(names.values())} state-dict names: several name one tensor)")
    heads = record.get("head_rows") or {}
    lines = [
        f"source: {record['source_checkpoint']}",
        f"target: {record['target_dataset']} {record['target_configuration']} ({record['target_plans']}, "
        f"{record['target_trainer']})",
        f"{record['mapped_share']:.1%} of the target's weights (segmentation heads excluded) come from the source: "
        f"{counts[LOADED]} tensors loaded, {counts[ADAPTED]} adapted, {counts[FRESH]} fresh, {counts[HEAD]} "
        f"segmentation-head tensors{aliases}",
    ]
    if heads:
        kept = heads.get("kept") or {}
        lines.append("segmentation heads: " + (
            "rows kept from the source for " + ", ".join(t if t == s else f"{t} (source {s})" for t, s in kept.items())
            + "; fresh rows for " + (", ".join(heads.get("fresh") or []) or "none")
            + " (the fine-tuning trainers load the kept rows; nnU-Net's -pretrained_weights alone skips heads)"
            if kept else f"fresh ({heads.get('note', '')})"))
    if record.get("channel_matches") is not None:
        lines.append(f"input channels {record.get('source_channel_names')} -> {record['target_channel_names']}: "
                     f"start filters {record['channel_matches']} (None = mean of the source filters)")
    for status in (ADAPTED, FRESH, HEAD):
        entries = [e for e in record["entries"] if e["status"] == status]
        if not entries:
            continue
        lines.append(f"\n{status} ({len(entries)}):")
        width = max(len(e["target"]) for e in entries)
        for entry in entries:
            lines.append(f"  {entry['target']:<{width}}  source {_shape(entry['source_shape']):>14}  target "
                         f"{_shape(entry['target_shape']):>14}  {entry['rule']}")
    unused = record.get("unused_source") or []
    if unused:
        shown = ", ".join(unused[:5]) + (f", ... ({len(unused) - 5} more)" if len(unused) > 5 else "")
        lines.append(f"\nsource tensors the target has no place for ({len(unused)}): {shown}")
    return "\n".join(lines)


def plot_scores(scores: Sequence[CandidateScore], weights: Mapping[str, float], path: str | os.PathLike) -> None:
    """Horizontal bars: each candidate's combined score split into its weighted components."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnunet_progressive.core.io import atomic_save_figure

    shown = [c for c in COMPONENTS if weights.get(c, 0) > 0]
    figure, axis = plt.subplots(figsize=(8, 0.6 * len(scores) + 1.8))
    names = [s.name if len(s.name) <= 40 else s.name[:18] + "..." + s.name[-19:] for s in scores][::-1]
    left = [0.0] * len(scores)
    colours = plt.get_cmap("tab10")
    for index, component in enumerate(shown):
        widths = []
        for score in scores[::-1]:
            known = sum(weights[c] for c in shown if score.components[c] is not None)
            value = score.components[component]
            widths.append(0.0 if value is None or not known else weights[component] * value / known)
        axis.barh(names, widths, left=left, color=colours(index % 10), label=component)
        left = [a + b for a, b in zip(left, widths)]
    axis.set_xlim(0, 1)
    axis.set_xlabel("combined score (weighted mean of the known components)")
    axis.legend(ncol=min(5, len(shown)), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    axis.set_title("transfer sources: closeness to the target")
    atomic_save_figure(figure, path, dpi=120, bbox_inches="tight")
    plt.close(figure)
