"""The foreground share of a dataset: how much of its training volumes is labelled (the papers' imbalance claim).

Share of a case = voxels with a label > 0 / all voxels of its label map, read from the raw training labels with
nnU-Net's own reader for the dataset (``dataset.json``'s file ending or ``overwrite_image_reader_writer``); the
dataset's share is the mean over its training cases (each case weighs the same, whatever its size), and so is
each label's. Measured once by the benchmark runner when it prepares a dataset, kept in
``<results_dir>/foreground/<DatasetXXX_Name>.json`` (:class:`ForegroundShare`), read by the report.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nnunet_progressive.core.records import Record, read_record, write_record

FOREGROUND_DIR = "foreground"


class ForegroundShare(Record):
    """``foreground/<dataset>.json``: the mean foreground share of a dataset's training labels."""

    dataset: str
    cases: int
    foreground_share: float  # mean over cases of (voxels with label > 0) / voxels
    label_shares: dict[str, float]  # label value -> mean share over cases
    label_names: dict[str, str] = {}  # label value -> name (dataset.json), where it maps a name to one value

    @property
    def smallest_label_share(self) -> float | None:
        """The share of the rarest label (a lesion next to an organ): the imbalance a tiny patch suffers most."""
        return min(self.label_shares.values()) if self.label_shares else None

    @property
    def smallest_label(self) -> str | None:
        if not self.label_shares:
            return None
        label = min(self.label_shares, key=self.label_shares.get)
        return self.label_names.get(label, label)


def label_voxel_counts(label_map: np.ndarray) -> dict[int, int]:
    """Voxels per label value of one label map (label 0 included)."""
    values, counts = np.unique(np.asarray(label_map), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def foreground_share(dataset: str, counts_per_case: Sequence[Mapping[int, int]],
                     label_names: Mapping[str, str] | None = None) -> ForegroundShare:
    """The dataset's shares from the voxel counts of each case (:func:`label_voxel_counts`)."""
    if not counts_per_case:
        raise ValueError(f"{dataset}: no training labels to measure")
    labels = sorted({v for counts in counts_per_case for v in counts if v > 0})
    foreground, per_label = [], {label: [] for label in labels}
    for counts in counts_per_case:
        total = sum(counts.values())
        foreground.append(sum(c for v, c in counts.items() if v > 0) / total)
        for label in labels:
            per_label[label].append(counts.get(label, 0) / total)
    return ForegroundShare(dataset=dataset, cases=len(counts_per_case), foreground_share=statistics.fmean(foreground),
                           label_shares={str(k): statistics.fmean(v) for k, v in per_label.items()},
                           label_names={k: v for k, v in (label_names or {}).items() if k in map(str, labels)})


def _label_names(dataset_json: Mapping) -> dict[str, str]:
    return {str(value): name for name, value in dataset_json.get("labels", {}).items()
            if isinstance(value, int) and value > 0}


def measure_foreground(raw_dataset: str | os.PathLike, progress: bool = True) -> ForegroundShare:
    """Read every training label of a raw nnU-Net dataset folder (nnU-Net's reader; a bar per case)."""
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets
    from tqdm import tqdm

    raw_dataset = Path(raw_dataset)
    dataset_json = json.loads((raw_dataset / "dataset.json").read_text())
    cases = get_filenames_of_train_images_and_targets(str(raw_dataset), dataset_json)
    label_files = [cases[k]["label"] for k in sorted(cases)]
    if not label_files:
        raise ValueError(f"{raw_dataset}: no training labels to measure")
    reader = determine_reader_writer_from_dataset_json(dataset_json, label_files[0], verbose=False)()
    counts = [label_voxel_counts(reader.read_seg(f)[0])
              for f in tqdm(label_files, desc=f"foreground share of {raw_dataset.name}", unit="case",
                            disable=not progress, file=sys.stderr, dynamic_ncols=True)]
    return foreground_share(raw_dataset.name, counts, _label_names(dataset_json))


def foreground_path(results_dir: str | os.PathLike, dataset: str) -> Path:
    return Path(results_dir) / FOREGROUND_DIR / f"{dataset}.json"


def record_foreground(results_dir: str | os.PathLike, raw_dataset: str | os.PathLike,
                      progress: bool = True) -> ForegroundShare | None:
    """Measure and keep the share of a raw dataset once (None when its raw folder is not here: a dataset given
    preprocessed only has no labels to measure)."""
    raw_dataset = Path(raw_dataset)
    path = foreground_path(results_dir, raw_dataset.name)
    kept = read_record(path, ForegroundShare, missing_ok=True)
    if kept is not None:
        return kept
    if not (raw_dataset / "dataset.json").is_file():
        return None
    share = measure_foreground(raw_dataset, progress)
    write_record(path, share)
    return share


def load_foreground(results_dir: str | os.PathLike) -> dict[str, ForegroundShare]:
    """Dataset name -> its kept share (empty if none was measured)."""
    folder = Path(results_dir) / FOREGROUND_DIR
    return {p.stem: read_record(p, ForegroundShare) for p in sorted(folder.glob("*.json"))}
