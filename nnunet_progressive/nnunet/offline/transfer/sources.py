"""`nnprog transfer sources`'s nnU-Net side: what a dataset or a trained model folder tells about itself.

A dataset's :class:`~nnunet_progressive.transfer.scores.DatasetProfile` comes from its dataset.json, nnU-Net's
dataset fingerprint (``nnUNetv2_extract_fingerprint`` is run where it is missing and the raw data is there), its
plans (normalisation schemes; predicted from the channel names with nnU-Net's own rule when not planned) and a
sample of its raw label maps (foreground share, structure size) and of its raw scans (the intensity distribution
of the whole scans, inside the body). The organs it is about come from its labels, else its name and description
(:func:`~nnunet_progressive.transfer.names.dataset_anatomy`). A model folder (``nnUNet_results/DatasetX/
Trainer__Plans__Config``, a fold folder or a checkpoint in one) gives plans.json (its spacing is the spacing of the
configuration it was trained with), dataset.json and the fingerprint nnU-Net copied there; it has no label images
and no scans. The image similarity reads a few raw cases with nnU-Net's reader.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.nnunet.orchestration.runner import nnunet_command
from nnunet_progressive.nnunet.resolve import DatasetFolders, configuration_value, locate_dataset, preprocessed_root
from nnunet_progressive.transfer.names import CT, channel_modality, dataset_anatomy, foreground_label_names
from nnunet_progressive.transfer.scores import SCAN_QUANTILES, ChannelIntensity, DatasetProfile, label_statistics

DEFAULT_SAMPLE = 3  # label maps read per dataset for foreground share and structure size


@dataclass(frozen=True)
class Candidate:
    """A profile and, for datasets with raw data, where to read sample cases."""

    profile: DatasetProfile
    raw_folder: Path | None = None
    dataset_json: dict | None = None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ProgressiveConfigError(f"{path} is not valid JSON ({error}); restore it or re-create it") from None


def run_shown(command: list[str], env: Mapping[str, str] | None = None) -> None:
    """Run one of nnU-Net's commands with its output (and progress bars) on this terminal, in ``env`` (default
    ``os.environ``); a clear error if it fails."""
    result = subprocess.run(nnunet_command(command), env=dict(os.environ if env is None else env))
    if result.returncode != 0:
        raise ProgressiveConfigError(f"`{' '.join(command)}` failed with exit code {result.returncode}; its output "
                                     f"is above")


def extract_fingerprint(folders: DatasetFolders, num_processes: int = 2,
                        run_command: Callable[[list[str]], None] = run_shown,
                        preprocessed: str | os.PathLike | None = None) -> Path:
    """The dataset's ``dataset_fingerprint.json``; made by ``nnUNetv2_extract_fingerprint`` (run with
    ``run_command``) if it is missing. ``preprocessed``: nnU-Net's preprocessed folder (default
    ``$nnUNet_preprocessed``)."""
    if folders.preprocessed is not None and (folders.preprocessed / "dataset_fingerprint.json").is_file():
        return folders.preprocessed / "dataset_fingerprint.json"
    if folders.raw is None:
        raise ProgressiveConfigError(f"{folders.name} has no dataset_fingerprint.json and no raw data to compute it "
                                     f"from; put the dataset into nnUNet_raw")
    print(f"extracting the dataset fingerprint of {folders.name} (nnUNetv2_extract_fingerprint)", flush=True)
    run_command(["nnUNetv2_extract_fingerprint", "-d", str(folders.dataset_id), "-np", str(num_processes)])
    path = preprocessed_root(preprocessed) / folders.name / "dataset_fingerprint.json"
    if not path.is_file():
        raise ProgressiveConfigError(f"nnUNetv2_extract_fingerprint ran but {path} is missing")
    return path


def _intensity(fingerprint: dict | None, num_channels: int) -> tuple[ChannelIntensity | None, ...] | None:
    if not fingerprint or "foreground_intensity_properties_per_channel" not in fingerprint:
        return None
    properties = fingerprint["foreground_intensity_properties_per_channel"]
    result = []
    for channel in range(num_channels):
        entry = properties.get(str(channel))
        result.append(None if entry is None else ChannelIntensity(
            float(entry["mean"]), float(entry["std"]), float(entry["percentile_00_5"]),
            float(entry["percentile_99_5"])))
    return tuple(result)


def _median_spacing(fingerprint: dict | None) -> tuple[float, ...] | None:
    if not fingerprint or not fingerprint.get("spacings"):
        return None
    spacings = np.asarray(fingerprint["spacings"], dtype=float)
    return tuple(float(v) for v in np.median(spacings, axis=0))


def _schemes_from_plans(plans: dict, configuration: str | None = None) -> tuple[str, ...] | None:
    """A configuration's normalisation schemes (following ``inherits_from``); 3d_fullres or 2d by default."""
    configurations = plans.get("configurations", {})
    names = [configuration] if configuration in configurations else [
        c for c in ("3d_fullres", "2d", *configurations) if c in configurations]
    for name in names:
        schemes = configuration_value(plans, name, "normalization_schemes", None)
        if schemes is not None:
            return tuple(schemes)
    return None


def predicted_schemes(channel_names: Sequence[str]) -> tuple[str, ...]:
    """nnU-Net's own choice from channel names (``CT`` -> CTNormalization, otherwise mostly ZScoreNormalization)."""
    from nnunetv2.preprocessing.normalization.map_channel_name_to_normalization import get_normalization_scheme

    return tuple(get_normalization_scheme(name).__name__ for name in channel_names)


def _channel_names(dataset_json: dict) -> list[str]:
    channels = dataset_json.get("channel_names", dataset_json.get("modality"))
    if not channels:
        raise ProgressiveConfigError("dataset.json has no channel_names")
    return [str(channels[key]) for key in sorted(channels, key=int)]


def training_cases(raw_folder: Path, dataset_json: dict) -> dict[str, dict]:
    """nnU-Net's case listing of a raw dataset: id -> {'images': [...], 'label': path}."""
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    return get_filenames_of_train_images_and_targets(str(raw_folder), dict(dataset_json))


def sample_ids(case_ids: Sequence[str], count: int) -> list[str]:
    """``count`` case ids spread evenly over the sorted ids (deterministic)."""
    ids = sorted(case_ids)
    if count >= len(ids):
        return ids
    return [ids[int(i)] for i in np.linspace(0, len(ids) - 1, count).round()]


def _reader(dataset_json: dict, example_file: str):
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    return determine_reader_writer_from_dataset_json(dataset_json, example_file, allow_nonmatching_filename=True,
                                                     verbose=False)()


def read_sample_labels(raw_folder: Path, dataset_json: dict, count: int) -> list[tuple[np.ndarray, tuple]]:
    cases = training_cases(raw_folder, dataset_json)
    chosen = sample_ids(list(cases), count)
    if not chosen:
        return []
    reader = _reader(dataset_json, cases[chosen[0]]["label"])
    result = []
    for case in chosen:
        seg, properties = reader.read_seg(cases[case]["label"])
        result.append((np.asarray(seg)[0], tuple(float(s) for s in properties["spacing"])))
    return result


@functools.lru_cache(maxsize=4)
def read_sample_images(raw_folder: Path, count: int) -> list[tuple[np.ndarray, tuple]]:
    """``count`` raw cases (image (c, *spatial), spacing) of a dataset, read once per process."""
    dataset_json = _read_json(raw_folder / "dataset.json")
    cases = training_cases(raw_folder, dataset_json)
    chosen = sample_ids(list(cases), count)
    if not chosen:
        return []
    reader = _reader(dataset_json, cases[chosen[0]]["images"][0])
    result = []
    for case in chosen:
        images, properties = reader.read_images(cases[case]["images"])
        result.append((np.asarray(images, dtype=np.float32), tuple(float(s) for s in properties["spacing"])))
    return result


def anatomy_of(dataset_json: dict) -> tuple[str, ...]:
    """The organs a dataset is about (its labels, else its name and description), sorted."""
    labels = foreground_label_names(dataset_json.get("labels", {}))
    return tuple(sorted(dataset_anatomy(labels, str(dataset_json.get("name", "")),
                                        str(dataset_json.get("description", "")))))


def scan_intensity(raw_folder: Path, channel_names: Sequence[str], count: int
                   ) -> tuple[tuple[float, ...], ...] | None:
    """Per channel the :data:`~nnunet_progressive.transfer.scores.SCAN_QUANTILES` of ``count`` raw scans (body
    voxels; Hounsfield units for CT channels, z-scored otherwise); None without scans."""
    from nnunet_progressive.transfer.images import dataset_scan_quantiles

    cases = read_sample_images(raw_folder, count) if count > 0 else []
    if not cases:
        return None
    return tuple(dataset_scan_quantiles(cases, index, channel_modality(name).family == CT, SCAN_QUANTILES)
                 for index, name in enumerate(channel_names))


def dataset_candidate(dataset: str | int, plans: str = "nnUNetPlans", compute_fingerprint: bool = True,
                      label_sample: int = DEFAULT_SAMPLE, num_processes: int = 2,
                      scan_sample: int = 2) -> Candidate:
    """The profile of a dataset in nnUNet_raw / nnUNet_preprocessed."""
    folders = locate_dataset(dataset)
    json_path = next((p / "dataset.json" for p in (folders.raw, folders.preprocessed)
                      if p is not None and (p / "dataset.json").is_file()), None)
    if json_path is None:
        raise ProgressiveConfigError(f"{folders.name} has no dataset.json in nnUNet_raw or nnUNet_preprocessed")
    dataset_json = _read_json(json_path)
    channels = _channel_names(dataset_json)
    fingerprint_path = None
    if folders.preprocessed is not None and (folders.preprocessed / "dataset_fingerprint.json").is_file():
        fingerprint_path = folders.preprocessed / "dataset_fingerprint.json"
    elif compute_fingerprint and folders.raw is not None:
        fingerprint_path = extract_fingerprint(folders, num_processes)
    fingerprint = _read_json(fingerprint_path) if fingerprint_path else None
    plans_file = folders.preprocessed / f"{plans}.json" if folders.preprocessed else None
    schemes = None
    if plans_file is not None and plans_file.is_file():
        schemes = _schemes_from_plans(_read_json(plans_file))
    schemes = schemes or predicted_schemes(channels)
    share = volume = None
    if folders.raw is not None and label_sample > 0:
        share, volume = label_statistics(read_sample_labels(folders.raw, dataset_json, label_sample),
                                         dataset_json["labels"])
    num_cases = dataset_json.get("numTraining") or (len(fingerprint["spacings"]) if fingerprint else None)
    scans = scan_intensity(folders.raw, channels, scan_sample) if folders.raw is not None else None
    profile = DatasetProfile(
        name=folders.name, kind="dataset", channel_names=tuple(channels), normalization_schemes=tuple(schemes),
        spacing=_median_spacing(fingerprint), intensity=_intensity(fingerprint, len(channels)),
        labels=tuple(foreground_label_names(dataset_json["labels"])), num_cases=num_cases,
        foreground_share=share, structure_volume_mm3=volume, anatomy=anatomy_of(dataset_json),
        scan_intensity=scans)
    return Candidate(profile, folders.raw, dataset_json)


def model_folder_of(path: str | os.PathLike) -> Path:
    """The trainer folder (``Trainer__Plans__Config``, holding plans.json and dataset.json) of a path in it."""
    path = Path(path).resolve()
    for folder in (path, *path.parents[:3]):
        if folder.is_dir() and (folder / "plans.json").is_file() and (folder / "dataset.json").is_file():
            return folder
    raise ProgressiveConfigError(f"{path} is not in an nnU-Net model folder: no plans.json and dataset.json in it or "
                                 f"above it (expected nnUNet_results/DatasetXXX_Name/Trainer__Plans__Config)")


def trained_spacing(plans: dict, configuration: str | None) -> tuple[float, ...] | None:
    """The voxel spacing a model was trained at: its configuration's ``spacing`` in plans.json (3d_fullres, else 2d,
    else the first configuration, when the folder name does not say)."""
    configurations = plans.get("configurations", {})
    names = [configuration] if configuration in configurations else [
        c for c in ("3d_fullres", "2d", *configurations) if c in configurations]
    for name in names:
        spacing = configuration_value(plans, name, "spacing", None)
        if spacing:
            return tuple(float(v) for v in spacing)
    return None


def model_candidate(path: str | os.PathLike) -> Candidate:
    """The profile of a trained model folder (no label images: foreground and size stay unknown)."""
    folder = model_folder_of(path)
    dataset_json, plans = _read_json(folder / "dataset.json"), _read_json(folder / "plans.json")
    channels = _channel_names(dataset_json)
    configuration = folder.name.split("__")[-1] if folder.name.count("__") == 2 else None
    fingerprint = _read_json(folder / "dataset_fingerprint.json") if (
        folder / "dataset_fingerprint.json").is_file() else None
    intensity = _intensity(fingerprint, len(channels))
    if intensity is None and "foreground_intensity_properties_per_channel" in plans:
        intensity = _intensity(plans, len(channels))
    spacing = trained_spacing(plans, configuration) or _median_spacing(fingerprint)
    profile = DatasetProfile(
        name=f"{plans.get('dataset_name', folder.parent.name)}:{folder.name}", kind="model",
        channel_names=tuple(channels),
        normalization_schemes=_schemes_from_plans(plans, configuration) or predicted_schemes(channels),
        spacing=spacing, intensity=intensity, labels=tuple(foreground_label_names(dataset_json["labels"])),
        num_cases=dataset_json.get("numTraining"), anatomy=anatomy_of(dataset_json))
    return Candidate(profile)


def image_similarity(target: Candidate, candidate: Candidate, cases: int, grid_size: int):
    """SSIM-based image similarity of a few raw cases (:class:`~nnunet_progressive.transfer.images.ImageSimilarity`;
    None when either side has no raw images)."""
    from nnunet_progressive.transfer.images import dataset_image_similarity
    from nnunet_progressive.transfer.names import match_channels

    if target.raw_folder is None or candidate.raw_folder is None or cases < 1:
        return None
    target_cases = read_sample_images(target.raw_folder, cases)
    candidate_cases = read_sample_images(candidate.raw_folder, cases)
    if not target_cases or not candidate_cases:
        return None
    match, _ = match_channels(list(target.profile.channel_names), list(candidate.profile.channel_names))[0]
    return dataset_image_similarity(target_cases, candidate_cases, 0, match or 0, grid_size)

