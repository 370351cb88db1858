"""The 15 tasks of the PGPS benchmark: where each dataset comes from and how we convert it (pure data).

Default nnU-Net dataset ids are 901-915: nnU-Net's own conversion scripts use ids up to the low 200s
(plus 987/989 for dummies and 996-999 for its integration tests) and this project's synthetic presets use
5xx, so the 9xx block below 987 clashes with neither. Every id can be changed per conversion.

Nothing here is downloaded: users fetch each dataset from the page named in its entry (most need an account
or a licence click-through) and point :func:`~nnunet_progressive.datasets.converters.convert` at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TASKS", "TaskInfo", "TaskSetting"]


@dataclass(frozen=True)
class TaskSetting:
    """One task-specific conversion setting (also a ``--flag`` of ``nnprog convert``).

    Args:
        name: keyword name, e.g. ``"amos_modalities"`` (CLI: ``--amos-modalities``).
        default: the value used when the setting is not given.
        help: what it does, and why the default was chosen.
        choices: allowed values, or None when the converter validates free-form values itself.
    """

    name: str
    default: str
    help: str
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TaskInfo:
    """Registry entry of one benchmark task.

    Args:
        key: registry key, e.g. ``"msd_brain_tumour"``.
        display_name: human-readable name.
        dataset_name: nnU-Net folder name part (``DatasetXXX_<dataset_name>``) with default settings.
        default_id: default nnU-Net dataset id (901-915).
        modality: imaging modality (and channels).
        download_page: name of the official page that hands out the data.
        download_url: its address.
        licence: short licence/terms summary from the official pages (read them before use; docs/datasets.md).
        expected_cases: labelled training cases of the complete official release with default settings;
            the converter raises when it finds a different number unless ``allow_partial`` is set.
        layout: the official layout the converter expects (shown in error messages).
        subset_choice: what the paper does not state for this task and what we chose (empty: nothing open).
        converter: module under ``nnunet_progressive.datasets.converters`` that builds the dataset.
        nnunet_converter: the nnU-Net v2 conversion code that module calls (empty: none fits).
        source_name: name of the official folder, where the converter needs it (MSD: ``TaskXX_Name``).
        settings: task-specific settings.
        expected_cases_note: how ``expected_cases`` changes with the settings.
    """

    key: str
    display_name: str
    dataset_name: str
    default_id: int
    modality: str
    download_page: str
    download_url: str
    licence: str
    expected_cases: int
    layout: str
    subset_choice: str
    converter: str
    nnunet_converter: str = ""
    source_name: str = ""
    settings: tuple[TaskSetting, ...] = field(default_factory=tuple)
    expected_cases_note: str = ""


_MSD_PAGE = "Medical Segmentation Decathlon (medicaldecathlon.com; Google Drive / AWS links on the page)"
_MSD_URL = "http://medicaldecathlon.com/"
_MSD_LICENCE = "CC BY-SA 4.0"  # medicaldecathlon.com and the "licence" field of every task's dataset.json
_MSD_CONVERTER = "nnunetv2.dataset_conversion.convert_MSD_dataset.convert_msd_dataset"

# (key, folder, display name, nnU-Net name, modality, training cases of the official release)
_MSD = (
    ("msd_brain_tumour", "Task01_BrainTumour", "MSD Brain Tumour", "BrainTumour", "MRI (FLAIR, T1w, T1gd, T2w)", 484),
    ("msd_heart", "Task02_Heart", "MSD Heart (left atrium)", "Heart", "MRI", 20),
    ("msd_liver", "Task03_Liver", "MSD Liver (liver, tumour)", "Liver", "CT", 131),
    ("msd_hippocampus", "Task04_Hippocampus", "MSD Hippocampus", "Hippocampus", "MRI", 260),
    ("msd_prostate", "Task05_Prostate", "MSD Prostate (PZ, TZ)", "Prostate", "MRI (T2, ADC)", 32),
    ("msd_lung", "Task06_Lung", "MSD Lung (nodules)", "Lung", "CT", 63),
    ("msd_pancreas", "Task07_Pancreas", "MSD Pancreas (pancreas, tumour)", "Pancreas", "CT", 281),
    ("msd_hepatic_vessel", "Task08_HepaticVessel", "MSD Hepatic Vessel", "HepaticVessel", "CT", 303),
    ("msd_spleen", "Task09_Spleen", "MSD Spleen", "Spleen", "CT", 41),
    ("msd_colon", "Task10_Colon", "MSD Colon (cancer)", "Colon", "CT", 126),
)


def _msd_task(index: int, key: str, folder: str, display: str, name: str, modality: str, cases: int) -> TaskInfo:
    return TaskInfo(
        key=key,
        display_name=display,
        dataset_name=name,
        default_id=901 + index,
        modality=modality,
        download_page=_MSD_PAGE,
        download_url=_MSD_URL,
        licence=_MSD_LICENCE,
        expected_cases=cases,
        layout=(f"{folder}/ (extracted {folder}.tar) with dataset.json, imagesTr/*.nii.gz (3D, or 4D for "
                f"multi-channel tasks), labelsTr/*.nii.gz and imagesTs/*.nii.gz; macOS '._*' files are ignored"),
        subset_choice="",
        converter="msd",
        nnunet_converter=_MSD_CONVERTER,
        source_name=folder,
    )


_TOTALSEG_CLASSES_HELP = (
    "TotalSegmentator v2 classes to keep: 'all' (117), one of TotalSegmentator's own five training "
    "parts 'organs' (24), 'vertebrae' (26), 'cardiac' (18), 'muscles' (23), 'ribs' (26), or a comma-separated "
    "list of class names (e.g. 'liver,spleen,pancreas'). Label ids follow TotalSegmentator's v2 class order.")

TASKS: dict[str, TaskInfo] = {
    **{t.key: t for t in (_msd_task(i, *row) for i, row in enumerate(_MSD))},
    "btcv": TaskInfo(
        key="btcv",
        display_name="BTCV (Multi-Atlas Labeling Beyond the Cranial Vault, abdomen, 13 organs)",
        dataset_name="BTCV",
        default_id=911,
        modality="CT",
        download_page="Synapse: Multi-Atlas Labeling Beyond the Cranial Vault - Workshop and Challenge "
                      "(syn3193805; 'Abdomen' RawData.zip)",
        download_url="https://www.synapse.org/#!Synapse:syn3193805/wiki/217789",
        licence="Synapse data-use terms (account needed; read them on the wiki page)",
        expected_cases=30,
        layout="RawData/Training/img/img0001.nii.gz ... and RawData/Training/label/label0001.nii.gz ... "
               "(extracted RawData.zip; point --source at the folder that holds RawData/ or at RawData/ itself)",
        subset_choice="",
        converter="btcv",
    ),
    "amos22": TaskInfo(
        key="amos22",
        display_name="AMOS22 (abdominal multi-organ, 15 organs)",
        dataset_name="AMOS22",
        default_id=912,
        modality="CT (default) or CT+MRI",
        download_page="AMOS22 post-challenge release on Zenodo (amos22.zip, record 7262581; "
                      "challenge page amos22.grand-challenge.org)",
        download_url="https://zenodo.org/records/7262581",
        licence="CC BY 4.0",
        expected_cases=300,
        expected_cases_note="300 with --amos-modalities ct (200 imagesTr + 100 imagesVa), 360 with ct_mri",
        layout="amos22/ with dataset.json, imagesTr/amos_XXXX.nii.gz, labelsTr/, imagesVa/, labelsVa/ "
               "(imagesTs/ is not used); ids <= 500 are CT, larger ids MRI",
        subset_choice="The paper does not say which AMOS task it used. Default: task 1 (CT only), training and "
                      "validation cases of the post-challenge release pooled for nnU-Net's 5-fold CV, as "
                      "nnU-Net's own AMOS converters do. --amos-modalities ct_mri gives task 2 (CT and MRI).",
        converter="amos",
        settings=(TaskSetting(
            "amos_modalities", "ct",
            "ct: AMOS task 1, CT cases only (channel 'CT', CT normalization); ct_mri: task 2, CT and MRI cases in "
            "one dataset (channel 'either_CT_or_MR', z-score normalization, as nnU-Net's task-2 converter)",
            ("ct", "ct_mri")),),
    ),
    "kits23": TaskInfo(
        key="kits23",
        display_name="KiTS23 (kidney, tumour, cyst)",
        dataset_name="KiTS2023",
        default_id=913,
        modality="CT",
        download_page="KiTS23 GitHub repository (neheller/kits23; run kits23_download_data), "
                      "challenge page kits-challenge.org/kits23",
        download_url="https://github.com/neheller/kits23",
        licence="CC BY-NC-SA 4.0 (data; code MIT)",
        expected_cases=489,
        layout="dataset/case_00000/imaging.nii.gz + segmentation.nii.gz ... (the kits23 repository after "
               "kits23_download_data; point --source at the repository or at its dataset/ folder)",
        subset_choice="",
        converter="kits",
        nnunet_converter="nnunetv2.dataset_conversion.Dataset220_KiTS2023.convert_kits2023",
    ),
    "totalsegmentator_v2": TaskInfo(
        key="totalsegmentator_v2",
        display_name="TotalSegmentator v2 (whole-body CT, 117 classes)",
        dataset_name="TotalSegmentatorV2",
        default_id=914,
        modality="CT",
        download_page="TotalSegmentator dataset v2.0.1 on Zenodo (Totalsegmentator_dataset_v201.zip, "
                      "record 10047292)",
        download_url="https://zenodo.org/records/10047292",
        licence="CC BY 4.0",
        expected_cases=1228,
        expected_cases_note="the meta.csv rows of the training splits (default train and val; 1228 subjects "
                            "with --totalseg-splits all)",
        layout="Totalsegmentator_dataset_v201/ with meta.csv (';'-separated, columns image_id and split) and "
               "s0000/ct.nii.gz + s0000/segmentations/<class>.nii.gz (one binary mask per class) ...",
        subset_choice="The paper does not say which classes or cases it used. Our choice (a setting): all 117 v2 "
                      "classes; the official train and val subjects train (nnU-Net's 5-fold CV, or the authors' "
                      "fold 0 with splits_final_official.json) and the test subjects go to imagesTs/labelsTs, as "
                      "the dataset authors' own converter does; --totalseg-classes selects TotalSegmentator's own "
                      "5-part class subsets or a list, --totalseg-splits other training splits ('all' pools "
                      "every subject).",
        converter="totalsegmentator",
        settings=(
            TaskSetting("totalseg_classes", "all", _TOTALSEG_CLASSES_HELP),
            TaskSetting("totalseg_splits", "train,val",
                        "meta.csv splits that train (imagesTr/labelsTr): a comma-separated list of train, val, "
                        "test, or 'all'; the test subjects go to imagesTs/labelsTs unless they train "
                        "(default train,val, as the dataset authors' converter)"),
        ),
    ),
    "toothfairy2": TaskInfo(
        key="toothfairy2",
        display_name="ToothFairy2 (maxillofacial CBCT, 42 classes)",
        dataset_name="ToothFairy2",
        default_id=915,
        modality="CBCT",
        download_page="ToothFairy2 challenge dataset (ditto.ing.unimore.it/toothfairy2; registration needed)",
        download_url="https://ditto.ing.unimore.it/toothfairy2/",
        licence="CC BY-SA 4.0",
        expected_cases=480,
        layout="Dataset112_ToothFairy2/ with dataset.json, imagesTr/<case>_0000.mha and labelsTr/<case>.mha",
        subset_choice="The release keeps FDI tooth numbers as label ids (1-48 with unused 19/20/29/30/39/40). "
                      "Like nnU-Net's Dataset119_ToothFairy2_All we map them to 42 consecutive classes and "
                      "convert .mha to .nii.gz; nnU-Net's 70:30 splits_final.json is not written (5-fold CV).",
        converter="toothfairy",
        nnunet_converter="nnunetv2.dataset_conversion.Dataset119_ToothFairy2_All (mapping_DS119, label_mapping, "
                         "image_to_nifi)",
    ),
}
