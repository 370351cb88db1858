"""AMOS22: 15 abdominal organs, CT (task 1) or CT and MRI (task 2), post-challenge release with labelsVa.

Follows nnU-Net's ``Dataset218_Amos2022_task1`` / ``Dataset219_Amos2022_task2`` conventions (training and
validation cases pooled into imagesTr for 5-fold CV, label names from the release's dataset.json, channel
'CT' or 'either_CT_or_MR', reader ``NibabelIOWithReorient``) but is not those scripts: they also copy the
unlabelled test set, enumerate cases from dataset.json (so a subset fails) and pick CT by hard-coded id
thresholds. Here a case's modality comes from the release's per-case metadata CSV
(``labeled_data_meta_0000_0599.csv``, published next to amos22.zip) when it is in the source folder and has a
modality column; otherwise (and for a case the CSV does not list) from the release's id rule: ids up to 500 are
CT, larger ids MRI. Which source decided, and any case where the two disagree, is recorded in dataset.json. The
case count is checked. Files are copied unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nnunet_progressive.datasets.converters._common import (
    Built,
    ConvertOptions,
    case_number,
    check_case_count,
    files_with_suffix,
    first_existing,
    layout_error,
    run_cases,
)
from nnunet_progressive.datasets.converters.tasks import TaskInfo

CT_MAX_ID = 500  # AMOS readme: ids up to and including 500 are CT (amos_0500 is the last CT), larger ids MRI
METADATA_CSV = "labeled_data_meta_0000_0599.csv"  # per-case metadata of the labelled cases (Zenodo 7262581)
EXPECTED = {"ct": 300, "ct_mri": 360}  # labelled cases: 200 CT + 40 MRI in imagesTr, 100 CT + 20 MRI in imagesVa
_CHANNEL = {"ct": "CT", "ct_mri": "either_CT_or_MR"}


def dataset_name(task: TaskInfo, settings: dict[str, str]) -> str:
    return task.dataset_name if settings["amos_modalities"] == "ct" else f"{task.dataset_name}_CTMRI"


def _locate(task: TaskInfo, source: Path) -> Path:
    found = first_existing([source, source / "amos22"],
                           lambda p: (p / "imagesTr").is_dir() and (p / "labelsTr").is_dir())
    if found is None:
        raise layout_error(task, source, f"no imagesTr/ and labelsTr/ in {source} or {source / 'amos22'}.")
    if not (found / "dataset.json").is_file():
        raise layout_error(task, source, f"dataset.json (label names) is missing in {found}.")
    return found


def _labels(task: TaskInfo, source: Path, dataset_json: Path) -> dict[str, int]:
    raw = json.loads(dataset_json.read_text()).get("labels", {})
    try:
        by_value = {int(k): str(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        by_value = {}
    if sorted(by_value) != list(range(16)):
        raise layout_error(task, source, f"{dataset_json} should map label values '0'..'15' to names (background + "
                                         f"15 organs); found keys {sorted(raw)[:20]}.")
    return {"background": 0, **{by_value[v]: v for v in range(1, 16)}}


def read_modalities(task: TaskInfo, source: Path, root: Path) -> tuple[dict[int, str], Path | None]:
    """{case id: "CT" | "MRI"} from the release's metadata CSV (empty if absent or without a modality column)."""
    import csv

    path = first_existing([root / METADATA_CSV, source / METADATA_CSV, root.parent / METADATA_CSV], Path.is_file)
    if path is None:
        return {}, None
    rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    columns = {name.strip().lower(): name for name in (rows[0].keys() if rows else ())}
    if "amos_id" not in columns:
        raise layout_error(task, source, f"{path} has no amos_id column; is it the release's {METADATA_CSV}?")
    modality_column = next((columns[c] for c in columns if "modality" in c), None)
    if modality_column is None:
        return {}, path
    modalities = {}
    for row in rows:
        value = str(row[modality_column]).strip().upper()
        kind = "MRI" if value.startswith("MR") else "CT" if value.startswith("CT") else None
        text = str(row[columns["amos_id"]]).strip()
        if kind is not None and text.isdigit():
            modalities[int(text)] = kind
    return modalities, path


def _copy_case(image: Path, label: Path, out_image: Path, out_label: Path) -> None:
    shutil.copyfile(image, out_image)
    shutil.copyfile(label, out_label)


def build(task: TaskInfo, source: Path, work: Path, dataset_id: int, options: ConvertOptions) -> Built:
    """Select AMOS cases by modality from imagesTr and imagesVa and copy them into ``work``."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    modalities = options.settings["amos_modalities"]
    root = _locate(task, source)
    labels = _labels(task, source, root / "dataset.json")
    from_csv, csv_path = read_modalities(task, source, root)
    cases: list[tuple[str, Path, Path]] = []
    missing_labels: list[str] = []
    kind_of: dict[str, str] = {}
    by_id_rule: list[str] = []  # cases the CSV does not list (while it is used)
    disagree: list[str] = []  # cases whose CSV modality differs from the id rule
    for images_dir, labels_dir in (("imagesTr", "labelsTr"), ("imagesVa", "labelsVa")):
        for name in files_with_suffix(root / images_dir, ".nii.gz"):
            number = case_number(name, r"amos_(\d+)\.nii\.gz")
            if number is None:
                continue
            rule = "CT" if number <= CT_MAX_ID else "MRI"
            kind = from_csv.get(number, rule)
            if from_csv and number not in from_csv:
                by_id_rule.append(name)
            elif from_csv and kind != rule:
                disagree.append(name)
            if modalities == "ct" and kind != "CT":
                continue
            label = root / labels_dir / name
            if label.is_file():
                cases.append((name[: -len(".nii.gz")], root / images_dir / name, label))
                kind_of[name[: -len(".nii.gz")]] = kind
            else:
                missing_labels.append(f"{labels_dir}/{name}")
    expected = EXPECTED[modalities]
    if missing_labels and not options.allow_partial:
        raise layout_error(task, source, f"{len(missing_labels)} image(s) have no label, e.g. {missing_labels[:3]}. "
                                         f"labelsVa/ ships only with the post-challenge release (Zenodo 7262581); "
                                         f"with an older download pass --allow-partial to convert labelled cases only.")
    check_case_count(task, len(cases), expected, options.allow_partial, root)

    folder = work / f"Dataset{dataset_id:03d}_{dataset_name(task, options.settings)}"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    jobs = [(image, label, folder / "imagesTr" / f"{case}_0000.nii.gz", folder / "labelsTr" / f"{case}.nii.gz")
            for case, image, label in sorted(cases)]
    run_cases(_copy_case, jobs, options.num_processes, "AMOS22")
    num_mri = sum(1 for kind in kind_of.values() if kind == "MRI")
    generate_dataset_json(
        str(folder), {0: _CHANNEL[modalities]}, labels, len(jobs), ".nii.gz",
        dataset_name=dataset_name(task, options.settings), reference="https://amos22.grand-challenge.org/",
        release=task.download_url, overwrite_image_reader_writer="NibabelIOWithReorient", license=task.licence,
        converted_by="nnunet_progressive.datasets.converters.amos",
        description=f"AMOS22 {'task 1 (CT)' if modalities == 'ct' else 'task 2 (CT and MRI)'}; training and "
                    f"validation cases pooled for cross-validation.")
    source_of_modality = (f"{METADATA_CSV} ({csv_path})" if from_csv else
                          f"id rule (ids <= {CT_MAX_ID} are CT)" + (f"; {csv_path} has no modality column"
                                                                     if csv_path is not None else ""))
    return Built(folder, {"expected_cases": expected, "ct_cases": len(cases) - num_mri, "mri_cases": num_mri,
                          "unlabelled_skipped": missing_labels, "modality_from": source_of_modality,
                          "modality_by_id_rule": by_id_rule, "modality_csv_differs_from_id_rule": disagree})
