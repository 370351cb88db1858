"""`nnprog transfer sources` on real scans (pyradiomics' test scans, tests/real_scans.py) for a CT target: a lung CT
tumour target made from lung1's scan and tumour label; candidates made from the other lung CT patient (lung2) with
its tumour label and with its lungs as the label, and from the two brain MR patients (brain1, brain2) with their
tumour labels. A CT source is recommended; the brain MR tumour source, whose label shares the target's word but not
its organ or its modality, comes last. Three small cases per dataset (crops and a mirrored copy of a scan, 5-7 mm,
at most 61 voxels per axis), through the real command and nnU-Net's fingerprint extraction."""
from __future__ import annotations

import subprocess
import sys

import pytest
import SimpleITK as sitk
from real_scans import write_real_source_dataset

from nnunet_progressive.core.records import SourceScores, read_record
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders, run_environment

pytestmark = pytest.mark.e2e

TARGET, CT_TUMOUR, CT_LUNGS, MR_TUMOUR = 641, 642, 643, 644


@pytest.fixture(scope="module")
def folders(tmp_path_factory, pytestconfig) -> NnunetFolders:
    cache = pytestconfig.cache.mkdir("real_scans")
    folders = NnunetFolders.under(tmp_path_factory.mktemp("real_sources"))
    for kind, dataset_id in (("lung1 tumour CT", TARGET), ("lung2 tumour CT", CT_TUMOUR), ("lung2 lungs CT", CT_LUNGS),
                             ("brain tumour MR", MR_TUMOUR)):
        write_real_source_dataset(kind, folders.raw, dataset_id, cache)
    return folders


def test_every_case_keeps_its_label(folders):
    for dataset in folders.raw.iterdir():
        for label in (dataset / "labelsTr").iterdir():
            array = sitk.GetArrayFromImage(sitk.ReadImage(str(label)))
            assert array.any() and max(array.shape) <= 61, (label.name, array.shape)


def test_a_lung_ct_tumour_target_recommends_a_ct_source(folders, tmp_path):
    output = tmp_path / "sources.json"
    result = subprocess.run([sys.executable, "-m", "nnunet_progressive.cli.main", "transfer", "sources", "--target",
                             str(TARGET), "--candidates", str(MR_TUMOUR), str(CT_LUNGS), str(CT_TUMOUR), "--grid", "32",
                             "-o", str(output)], capture_output=True, text=True, env=run_environment(folders))
    assert result.returncode == 0, result.stderr
    print(result.stdout)  # the table, for the record (pytest -s)
    ranked = read_record(output, SourceScores).candidates
    order = [c["name"] for c in ranked]
    summary = [(c["name"], round(c["combined"], 3), c["components"]) for c in ranked]
    assert order == [f"Dataset{CT_TUMOUR}_RealLungTumourCT2", f"Dataset{CT_LUNGS}_RealChestCT",
                     f"Dataset{MR_TUMOUR}_RealBrainTumourMR"], summary
    assert f"recommendation: pre-train on Dataset{CT_TUMOUR}_RealLungTumourCT2" in result.stdout
    ct_tumour, ct_lungs, brain = ranked
    assert ct_tumour["components"]["modality"] == ct_lungs["components"]["modality"] == 1.0
    assert brain["components"]["modality"] == 0.0 and brain["components"]["intensity"] == 0.0
    assert ct_tumour["components"]["labels"] == 1.0  # tumour in a lung dataset, both
    assert brain["components"]["labels"] == 0.25  # the same word in another body region
    assert ct_lungs["components"]["labels"] < brain["components"]["labels"]  # the domain decides, not the name
    # chest CT against chest CT in HU: 0.48 (the lungs' share of the body differs between the patients,
    # 27% and 19% of the body below -400 HU, which moves the quantiles near the lung edge); brain MR against CT: 0
    assert ct_tumour["components"]["intensity"] == ct_lungs["components"]["intensity"] > 0.3, summary
