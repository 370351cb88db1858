"""`nnprog transfer sources` on generated datasets with a known answer: the candidate with the target's modality and
structures wins over another modality with the same structures and over a larger but distant dataset (real brain
MRI anatomy from the MNI152 template)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nnunet_progressive.core.records import SourceScores, read_record
from nnunet_progressive.datasets.mni152 import write_mni152_dataset
from nnunet_progressive.datasets.synthetic import SyntheticDatasetSpec, write_dataset
from nnunet_progressive.nnunet.runner import NnunetFolders, run_environment

pytestmark = pytest.mark.e2e

TARGET = SyntheticDatasetSpec(name="NNProgSrcTarget", num_cases=4, shape=(32, 32, 32), num_organs=1,
                              num_lesions=2, modality="CT", seed=11)
SIMILAR = SyntheticDatasetSpec(name="NNProgSrcSimilarCT", num_cases=6, shape=(32, 32, 32), num_organs=2,
                               num_lesions=2, modality="CT", seed=12)
OTHER_MODALITY = SyntheticDatasetSpec(name="NNProgSrcMRI", num_cases=6, shape=(32, 32, 32), num_organs=1,
                                      num_lesions=2, modality="MRI", seed=13)


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
    return folders


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
