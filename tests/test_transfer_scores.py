"""Source scores (transfer/scores.py): every component and the combination, with answers known by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.transfer.images import scan_quantiles
from nnunet_progressive.transfer.scores import (
    COMPONENTS,
    DEFAULT_WEIGHTS,
    SCAN_QUANTILES,
    Z_SCALE,
    ChannelIntensity,
    DatasetProfile,
    cases_score,
    combine,
    component_scores,
    image_signal,
    intensity_score,
    interval_overlap,
    label_statistics,
    parse_weights,
    quantile_distance_score,
    ratio_score,
    recommendation,
    score_candidates,
    scores_table,
    spacing_score,
)

CT_LIVER = ChannelIntensity(mean=100.0, std=40.0, percentile_00_5=-50.0, percentile_99_5=250.0)
MR_BRAIN = ChannelIntensity(mean=400.0, std=100.0, percentile_00_5=150.0, percentile_99_5=650.0)


def _profile(name, channels=("CT",), schemes=("CTNormalization",), spacing=(1.0, 1.0, 1.0), intensity=(CT_LIVER,),
             labels=("liver", "liver tumour"), cases=20, share=0.05, volume=2000.0, kind="dataset", anatomy=None,
             scans=None):
    return DatasetProfile(name, kind, tuple(channels), None if schemes is None else tuple(schemes),
                          None if spacing is None else tuple(spacing), None if intensity is None else tuple(intensity),
                          tuple(labels), cases, share, volume, anatomy, scans)


def test_spacing_score_is_orientation_free_and_halves_per_doubling():
    assert spacing_score((1, 1, 1), (1, 1, 1)) == 1.0
    assert spacing_score((5, 1, 1), (1, 1, 5)) == 1.0
    assert spacing_score((2, 2, 2), (1, 1, 1)) == pytest.approx(0.5)
    assert spacing_score((1, 1), (1, 1, 1)) == 0.0
    assert spacing_score(None, (1, 1, 1)) is None


def test_interval_overlap_and_ratios():
    assert interval_overlap((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert interval_overlap((0, 1), (2, 3)) == 0.0
    assert ratio_score(2.0, 8.0) == 0.25 and ratio_score(None, 1.0) is None
    assert cases_score(9) == pytest.approx(1 / 3) and cases_score(5000) == 1.0


def test_intensity_compares_hounsfield_for_ct_and_z_scores_otherwise():
    shifted = ChannelIntensity(mean=600.0, std=40.0, percentile_00_5=450.0, percentile_99_5=750.0)
    target = _profile("t")
    # CT vs CT: raw HU ranges [-50, 250] and [450, 750] do not overlap
    assert intensity_score(target, _profile("c", intensity=(shifted,))) == 0.0
    # MR vs MR: the same range after z-scoring, whatever the scanner units
    scaled = ChannelIntensity(mean=4000.0, std=1000.0, percentile_00_5=1500.0, percentile_99_5=6500.0)
    mr = _profile("m", channels=("T1",), schemes=("ZScoreNormalization",), intensity=(MR_BRAIN,))
    assert intensity_score(mr, _profile("m2", channels=("T1",), intensity=(scaled,))) == pytest.approx(1.0)
    # across families: 0
    assert intensity_score(target, mr) == 0.0


def test_label_statistics_of_known_label_maps():
    label = np.zeros((10, 10, 10), np.uint8)
    label[:2] = 1  # 200 voxels of label 1
    label[5, 5, 5] = 2  # one voxel of label 2
    share, volume = label_statistics([(label, (2.0, 1.0, 1.0))], {"background": 0, "organ": 1, "lesion": 2})
    assert share == pytest.approx(201 / 1000)
    assert volume == pytest.approx(np.median([400.0, 2.0]))


def test_weights_parse_switch_off_and_refuse_nonsense():
    weights = parse_weights("labels=2, image=0", off=["cases"])
    assert weights["labels"] == 2 and weights["image"] == 0 and weights["cases"] == 0
    assert weights["modality"] == DEFAULT_WEIGHTS["modality"]
    with pytest.raises(ProgressiveConfigError, match="unknown component 'label'"):
        parse_weights("label=2")
    with pytest.raises(ProgressiveConfigError, match="finite number >= 0"):
        parse_weights("labels=-1")
    with pytest.raises(ProgressiveConfigError, match="every component is switched off"):
        parse_weights(off=list(COMPONENTS))


def test_combine_leaves_unknown_components_out_and_reports_coverage():
    weights = {"modality": 3.0, "labels": 1.0, "image": 0.0}
    combined, coverage = combine({"modality": 1.0, "labels": None, "image": 0.0}, weights)
    assert combined == 1.0 and coverage == pytest.approx(0.75)


def test_same_modality_and_structures_beat_other_modality_and_a_larger_distant_source():
    """The known answer the issue asks for, on profiles built by hand."""
    target = _profile("target", cases=10)
    similar = _profile("similar_ct_liver", cases=30, labels=("Liver", "liver_tumors", "spleen"))
    other_modality = _profile("mr_liver", channels=("T1",), schemes=("ZScoreNormalization",),
                              intensity=(MR_BRAIN,), spacing=(3.0, 1.5, 1.5), cases=30)
    large_distant = _profile("large_brain_mr", channels=("T1",), schemes=("ZScoreNormalization",),
                             intensity=(MR_BRAIN,), labels=("gray matter", "white matter"), spacing=(1, 1, 1),
                             cases=2000, share=0.5, volume=500000.0)
    scores = score_candidates(target, [large_distant, other_modality, similar],
                              image_similarity={"similar_ct_liver": 0.8, "mr_liver": 0.3, "large_brain_mr": 0.1})
    assert [s.name for s in scores] == ["similar_ct_liver", "mr_liver", "large_brain_mr"]
    best = scores[0]
    assert best.components["modality"] == 1.0 and best.components["labels"] == 1.0
    assert scores[2].components["labels"] == 0.0 and scores[2].components["cases"] == 1.0
    assert best.details["label_matches"] == {"liver": "Liver", "liver tumour": "liver_tumors"}
    assert recommendation(scores).startswith("pre-train on similar_ct_liver")
    table = scores_table(scores, DEFAULT_WEIGHTS)
    assert table.splitlines()[2].startswith("| **similar_ct_liver**")


def test_switching_components_off_changes_the_answer():
    target = _profile("target", labels=("liver",))
    ct_brain = _profile("ct_brain", labels=("brain",))
    mr_liver = _profile("mr_liver", channels=("T1",), schemes=("ZScoreNormalization",), intensity=(MR_BRAIN,))
    assert score_candidates(target, [ct_brain, mr_liver])[0].name == "ct_brain"
    only_task = parse_weights(off=["modality", "normalization", "intensity", "image", "spacing"])
    assert score_candidates(target, [ct_brain, mr_liver], only_task)[0].name == "mr_liver"


def test_model_folder_without_labels_statistics_is_scored_on_what_it_tells():
    target = _profile("target")
    model = _profile("model", kind="model", share=None, volume=None, cases=None)
    components = component_scores(target, model)
    assert components["foreground"] is None and components["cases"] is None and components["image"] is None
    score = score_candidates(target, [model])[0]
    assert score.combined == pytest.approx(1.0) and score.coverage < 1.0
    assert set(score.details["unknown"]) == {"foreground", "structure_size", "cases", "image"}


def test_weak_best_candidate_is_called_so():
    target = _profile("target", labels=("liver",))
    far = _profile("far", channels=("T1",), schemes=("ZScoreNormalization",), intensity=(MR_BRAIN,),
                   labels=("femur",), spacing=(4, 4, 4), share=0.5, volume=1e6)
    assert recommendation(score_candidates(target, [far])).startswith("no candidate is close")


# --- issue 23: the domain counts more than a generic label name ---------------------------------------------------

SPLEEN_LIVER_AORTA = ("spleen", "liver", "aorta")


def test_a_lung_ct_tumour_target_prefers_a_ct_source_over_a_brain_mr_tumour_source():
    """The issue's case: labels 1.00/modality 0 (brain MR tumour) used to beat modality 1/labels 0 (CT organs)."""
    target = _profile("lung_ct", labels=("tumour",), share=0.002, volume=5000.0, anatomy=("lung",))
    ct_organs = _profile("ct_organs", labels=SPLEEN_LIVER_AORTA, share=0.08, volume=300000.0)
    brain_mr = _profile("brain_mr_tumour", channels=("FLAIR", "T1", "T1c", "T2"), schemes=("ZScoreNormalization",) * 4,
                        intensity=(MR_BRAIN,) * 4, labels=("edema", "tumor"), spacing=(1.0, 1.0, 1.0), share=0.01,
                        volume=20000.0, anatomy=("brain",))
    scores = score_candidates(target, [brain_mr, ct_organs], image_similarity={"ct_organs": 0.0,
                                                                               "brain_mr_tumour": 0.05})
    assert [s.name for s in scores] == ["ct_organs", "brain_mr_tumour"]
    brain = scores[1]
    assert brain.components["labels"] == pytest.approx(0.25)  # "tumour" in lung vs brain: a quarter of a match
    detail = brain.details["label_detail"][0]
    assert (detail["name_similarity"], detail["anatomy"]) == (1.0, 0.25)
    assert (detail["target_organs"], detail["source_organs"]) == (["lung"], ["brain"])
    # the image component carried no signal (CT vs CT pairs at 0.00): left out for all, said, weight spread
    assert all(s.components["image"] is None and s.details["no_signal"] == ["image"] for s in scores)
    assert "image: no signal" in scores[0].details["notes"][0] and scores[1].details["image_measured"] == 0.05
    weights_without_image = {**DEFAULT_WEIGHTS, "image": 0.0}
    assert scores[0].combined == pytest.approx(combine(scores[0].components, weights_without_image)[0])
    assert "no signal (0.00)" in scores_table(scores, DEFAULT_WEIGHTS)


def test_the_domain_outweighs_a_full_generic_label_match_even_without_anatomy():
    """Anatomy unknown on both sides (generated names): modality and intensity still decide."""
    target = _profile("target", labels=("lesion",))
    same_domain = _profile("ct_other_labels", labels=("organ1", "organ2"))
    other_domain = _profile("mr_same_labels", channels=("T2",), schemes=("ZScoreNormalization",),
                            intensity=(MR_BRAIN,), labels=("lesion",))
    assert score_candidates(target, [other_domain, same_domain])[0].name == "ct_other_labels"


def test_image_component_keeps_its_weight_when_same_modality_scans_look_alike():
    target = _profile("target")
    scores = score_candidates(target, [_profile("a"), _profile("b", channels=("T1",))],
                              image_similarity={"a": 0.4, "b": 0.02})
    assert all(not s.details["notes"] for s in scores)
    assert {s.name: s.components["image"] for s in scores} == {"a": 0.4, "b": 0.02}
    assert image_signal(target, [_profile("a")], {"a": 0.05}).startswith("image: no signal")
    assert image_signal(target, [_profile("a")], {"a": None}) is None


def test_scan_intensity_compares_whole_scan_distributions_before_foreground_ranges():
    quantiles = tuple(float(v) for v in np.linspace(-100, 300, len(SCAN_QUANTILES)))
    shifted = tuple(v + 100.0 for v in quantiles)
    target, near, far = _profile("t", scans=(quantiles,)), _profile("n", scans=(quantiles,)), _profile(
        "f", scans=(shifted,))
    assert intensity_score(target, near) == 1.0
    assert intensity_score(target, far) == pytest.approx(math.exp(-1.0))  # 100 HU apart: exp(-1)
    model = _profile("model", kind="model")  # no scans: the fingerprint's foreground ranges
    assert intensity_score(target, model) == 1.0
    assert {s.name: s.details["intensity_basis"] for s in score_candidates(target, [far, model])} == {
        "f": "scans", "model": "foreground"}
    assert quantile_distance_score((0.0, 1.0), (0.25, 1.25), Z_SCALE) == pytest.approx(math.exp(-1.0))


def test_scan_quantiles_use_the_body_and_z_score_mr():
    rng = np.random.default_rng(0)
    image = np.zeros((20, 20, 20), np.float32) - 1000.0  # air
    image[5:15, 5:15, 5:15] = rng.normal(40.0, 10.0, (10, 10, 10))  # soft tissue
    ct = scan_quantiles(image, True, SCAN_QUANTILES)
    assert -10 < ct[0] < ct[-1] < 70  # the air outside the body is not in the distribution
    mr = scan_quantiles(np.where(image > -500, image * 3 + 500, 0), False, SCAN_QUANTILES)
    assert abs(mr[len(mr) // 2]) < 0.2 and mr[0] < -1 < 1 < mr[-1]  # z-scored: scanner units do not matter


def test_default_weights_are_stated_as_they_are():
    import subprocess
    import sys

    from nnunet_progressive.cli.transfer import default_weights_text

    text = default_weights_text()
    assert text.startswith("modality 3, intensity 2, labels 2")
    assert DEFAULT_WEIGHTS["modality"] + DEFAULT_WEIGHTS["intensity"] > DEFAULT_WEIGHTS["labels"]
    result = subprocess.run([sys.executable, "-m", "nnunet_progressive.cli.main", "transfer", "sources", "--help"],
                            capture_output=True, text=True, env={"COLUMNS": "10000", "PATH": ""})
    assert result.returncode == 0 and f"(defaults: {text})" in result.stdout, result.stdout + result.stderr


def test_a_model_folder_is_compared_at_the_spacing_it_was_trained_at(tmp_path):
    """Not its dataset's original spacing: the plans' configuration (inherits_from followed)."""
    import json

    from nnunet_progressive.nnunet.offline.transfer.sources import model_candidate, trained_spacing

    plans = {"dataset_name": "Dataset700_X", "original_median_spacing_after_transp": [5.0, 0.7, 0.7],
             "configurations": {"3d_fullres": {"spacing": [1.5, 1.5, 1.5],
                                               "normalization_schemes": ["CTNormalization"]},
                                "3d_lowres": {"inherits_from": "3d_fullres", "spacing": [3.0, 3.0, 3.0]},
                                "3d_cascade_fullres": {"inherits_from": "3d_fullres"}}}
    assert trained_spacing(plans, "3d_lowres") == (3.0, 3.0, 3.0)
    assert trained_spacing(plans, "3d_cascade_fullres") == (1.5, 1.5, 1.5)
    assert trained_spacing(plans, None) == (1.5, 1.5, 1.5)
    folder = tmp_path / "Dataset700_X" / "nnUNetTrainer__nnUNetPlans__3d_lowres"
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "description": "abdominal CT",
                                                     "labels": {"background": 0, "tumour": 1}, "numTraining": 9}))
    (folder / "dataset_fingerprint.json").write_text(json.dumps({"spacings": [[5.0, 0.7, 0.7]]}))
    profile = model_candidate(folder).profile
    assert profile.spacing == (3.0, 3.0, 3.0) and profile.anatomy == ()
    assert spacing_score(profile.spacing, (3.0, 3.0, 3.0)) == 1.0
