"""`nnprog transfer sources` on generated datasets with a known answer: the candidate with the target's modality and
structures wins over another modality with the same structures and over a larger but distant dataset (real brain
MRI anatomy from the MNI152 template); the three scenarios of issue 23 (a CT aorta target, a brain MR target, a lung
CT tumour target) with named labels, which docs/finetuning.md cites for the default weights."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nnunet_progressive.core.records import SourceScores, read_record
from nnunet_progressive.datasets.mni152 import write_mni152_dataset
from nnunet_progressive.datasets.synthetic import SyntheticDatasetSpec, write_dataset
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders, run_environment

pytestmark = pytest.mark.e2e

TARGET = SyntheticDatasetSpec(name="NNProgSrcTarget", num_cases=4, shape=(32, 32, 32), num_organs=1,
                              num_lesions=2, modality="CT", seed=11)
SIMILAR = SyntheticDatasetSpec(name="NNProgSrcSimilarCT", num_cases=6, shape=(32, 32, 32), num_organs=2,
                               num_lesions=2, modality="CT", seed=12)
OTHER_MODALITY = SyntheticDatasetSpec(name="NNProgSrcMRI", num_cases=6, shape=(32, 32, 32), num_organs=1,
                                      num_lesions=2, modality="MRI", seed=13)
# issue 23's scenarios: (spec, labels in label order, dataset.json description)
ABDOMEN_CT = (SyntheticDatasetSpec(name="NNProgSrcAbdomenCT", num_cases=4, shape=(32, 32, 32), num_organs=3,
                                   num_lesions=0, modality="CT", seed=21), ("spleen", "liver", "aorta"), "abdominal CT")
AORTA_CT = (SyntheticDatasetSpec(name="NNProgSrcAortaCT", num_cases=4, shape=(32, 32, 32), num_organs=1, num_lesions=0,
                                 modality="CT", seed=22, spacing=(1.5, 1.0, 1.0)), ("aorta",), "CT angiography")
LUNG_TUMOUR_CT = (SyntheticDatasetSpec(name="NNProgSrcLungTumourCT", num_cases=4, shape=(32, 32, 32), num_organs=0,
                                       num_lesions=2, modality="CT", seed=23), ("tumour",), "lung CT with tumours")
BRAIN_TUMOUR_MR = (SyntheticDatasetSpec(name="NNProgSrcBrainTumourMR", num_cases=4, shape=(32, 32, 32), num_organs=1,
                                        num_lesions=2, modality="MRI", seed=24), ("edema", "tumor"),
                   "brain MR with gliomas")
SCENARIO_IDS = {ABDOMEN_CT: 625, AORTA_CT: 626, LUNG_TUMOUR_CT: 627, BRAIN_TUMOUR_MR: 628}
OTHER_BRAIN_MR = 629  # a second MNI152 set: other seed and spacing


def write_named(raw, dataset_id: int, spec: SyntheticDatasetSpec, labels: tuple[str, ...], description: str) -> None:
    """A generated dataset whose labels carry anatomical names (generated ones are organ1..N, lesion)."""
    folder = write_dataset(spec, raw, dataset_id)
    dataset_json = json.loads((folder / "dataset.json").read_text())
    values = [v for k, v in dataset_json["labels"].items() if k != "background"]
    assert len(values) == len(labels), (dataset_json["labels"], labels)
    dataset_json["labels"] = {"background": 0, **dict(zip(labels, values))}
    dataset_json["description"] = description
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))


def _nnprog(folders: NnunetFolders, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnunet_progressive.cli.main", *args], capture_output=True,
                          text=True, env=run_environment(folders))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> NnunetFolders:
    folders = NnunetFolders.under(tmp_path_factory.mktemp("sources"))
    write_dataset(TARGET, folders.raw, 621)
    write_dataset(SIMILAR, folders.raw, 622)
    write_dataset(OTHER_MODALITY, folders.raw, 623)
    write_mni152_dataset(folders.raw, 624, num_cases=16, spacing_mm=6.0)  # larger, distant: brain MRI tissue
    for (spec, labels, description), dataset_id in SCENARIO_IDS.items():
        write_named(folders.raw, dataset_id, spec, labels, description)
    write_mni152_dataset(folders.raw, OTHER_BRAIN_MR, num_cases=4, spacing_mm=5.0, seed=7)
    return folders


def _ranked(folders, tmp_path, target: int, *candidates: int) -> tuple[list[dict], str]:
    output = tmp_path / f"target_{target}.json"
    result = _nnprog(folders, "transfer", "sources", "--target", str(target), "--candidates",
                     *map(str, candidates), "-o", str(output))
    assert result.returncode == 0, result.stderr
    return read_record(output, SourceScores).candidates, result.stdout


@pytest.mark.long
def test_ct_aorta_target_recommends_the_ct_multi_organ_source(folders, tmp_path):
    ranked, stdout = _ranked(folders, tmp_path, 626, 624, 628, 625)
    assert ranked[0]["name"] == "Dataset625_NNProgSrcAbdomenCT", [(c["name"], c["combined"]) for c in ranked]
    assert ranked[0]["components"]["labels"] == 1.0 and ranked[0]["details"]["label_matches"] == {"aorta": "aorta"}
    assert ranked[0]["details"]["intensity_basis"] == "scans"
    assert "recommendation: pre-train on Dataset625_NNProgSrcAbdomenCT" in stdout
    # per-pair detail of the image similarity: 2 x 2 pairs with their SSIM and registration
    pairs = ranked[0]["details"]["image_pairs"]["pairs"]
    assert len(pairs) == 4 and all({"ssim", "registration_ok", "target_case", "candidate_case"} <= set(p)
                                   for p in pairs)


def test_brain_mr_target_recommends_the_other_brain_mr(folders, tmp_path):
    ranked, _ = _ranked(folders, tmp_path, 624, 625, 628, OTHER_BRAIN_MR)
    assert ranked[0]["name"] == f"Dataset{OTHER_BRAIN_MR}_NNProgMNI152Tissue", [(c["name"], c["combined"])
                                                                                for c in ranked]
    assert ranked[0]["components"]["modality"] == 1.0 and ranked[0]["components"]["labels"] == 1.0


def test_lung_ct_tumour_target_recommends_a_ct_source_not_the_brain_mr_tumour_source(folders, tmp_path):
    ranked, stdout = _ranked(folders, tmp_path, 627, 628, 625)
    by_name = {c["name"]: c for c in ranked}
    assert ranked[0]["name"] == "Dataset625_NNProgSrcAbdomenCT", [(c["name"], c["combined"]) for c in ranked]
    brain = by_name["Dataset628_NNProgSrcBrainTumourMR"]
    assert brain["components"]["modality"] == 0.0
    assert brain["components"]["labels"] == 0.25  # "tumour" in lung against "tumor" in brain
    [detail] = brain["details"]["label_detail"]
    assert (detail["source"], detail["target_organs"], detail["source_organs"]) == ("tumor", ["lung"], ["brain"])
    for candidate in ranked:  # a component without signal is said, in the table and the record
        if candidate["details"]["no_signal"]:
            assert "note: image: no signal" in stdout and candidate["components"]["image"] is None


@pytest.mark.long
def test_same_modality_and_structures_win(folders, tmp_path):
    output, plot = tmp_path / "scores.json", tmp_path / "scores.png"
    result = _nnprog(folders, "transfer", "sources", "--target", "621", "--candidates", "624", "623", "622",
                     "-o", str(output), "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    scores = read_record(output, SourceScores)
    order = [c["name"] for c in scores.candidates]
    assert order == ["Dataset622_NNProgSrcSimilarCT", "Dataset623_NNProgSrcMRI", "Dataset624_NNProgMNI152Tissue"]
    best, mri, brain = scores.candidates
    assert best["components"]["modality"] == 1.0 and mri["components"]["modality"] == 0.0
    assert best["components"]["labels"] == mri["components"]["labels"] == 1.0 > brain["components"]["labels"]
    assert brain["components"]["cases"] > best["components"]["cases"]  # larger, and still last
    assert best["components"]["image"] > mri["components"]["image"]
    assert all(c["coverage"] == 1.0 for c in scores.candidates)
    assert scores.recommendation.startswith("pre-train on Dataset622_NNProgSrcSimilarCT")
    assert "recommendation: pre-train on Dataset622" in result.stdout and plot.stat().st_size > 0
    # nnU-Net's own fingerprint extraction ran for every dataset
    assert all((folders.preprocessed / name / "dataset_fingerprint.json").is_file() for name in order)


def test_weighting_is_settable_and_components_switch_off(folders, tmp_path):
    output = tmp_path / "task_only.json"
    result = _nnprog(folders, "transfer", "sources", "--target", "621", "--candidates", "622", "623",
                     "--off", "modality,normalization,intensity,image,spacing", "--weights", "cases=3",
                     "-o", str(output))
    assert result.returncode == 0, result.stderr
    scores = read_record(output, SourceScores)
    assert scores.weights["image"] == 0 and scores.weights["cases"] == 3
    assert all(c["components"]["image"] is None for c in scores.candidates)  # switched off: not even computed
    assert "image" not in result.stdout.splitlines()[1]


def test_a_model_folder_is_a_candidate(folders, tmp_path):
    model = folders.results / "Dataset623_NNProgSrcMRI" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (model / "fold_0").mkdir(parents=True)
    raw = folders.raw / "Dataset623_NNProgSrcMRI"
    (model / "dataset.json").write_text((raw / "dataset.json").read_text())
    plans = {"dataset_name": "Dataset623_NNProgSrcMRI", "configurations": {
        "3d_fullres": {"normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False]}}}
    (model / "plans.json").write_text(json.dumps(plans))
    fingerprint = folders.preprocessed / "Dataset623_NNProgSrcMRI" / "dataset_fingerprint.json"
    (model / "dataset_fingerprint.json").write_text(fingerprint.read_text())
    output = tmp_path / "with_model.json"
    result = _nnprog(folders, "transfer", "sources", "--target", "621", "--candidates", "622", str(model / "fold_0"),
                     "-o", str(output))
    assert result.returncode == 0, result.stderr
    rows = {c["name"]: c for c in read_record(output, SourceScores).candidates}
    row = rows["Dataset623_NNProgSrcMRI:nnUNetTrainer__nnUNetPlans__3d_fullres"]
    assert row["kind"] == "model" and row["components"]["foreground"] is None and row["coverage"] < 1.0
    assert row["components"]["modality"] == 0.0 and row["components"]["labels"] == 1.0


def test_bad_weights_are_one_clear_error(folders):
    result = _nnprog(folders, "transfer", "sources", "--target", "621", "--candidates", "622", "--weights", "label=2")
    assert result.returncode == 2 and "unknown component 'label'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
