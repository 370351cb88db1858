"""Source scores (transfer/scores.py): every component and the combination, with answers known by hand."""
from __future__ import annotations

import numpy as np
import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.transfer.scores import (
    COMPONENTS,
    DEFAULT_WEIGHTS,
    ChannelIntensity,
    DatasetProfile,
    cases_score,
    combine,
    component_scores,
    intensity_score,
    interval_overlap,
    label_statistics,
    parse_weights,
    ratio_score,
    recommendation,
    score_candidates,
    scores_table,
    spacing_score,
)

CT_LIVER = ChannelIntensity(mean=100.0, std=40.0, percentile_00_5=-50.0, percentile_99_5=250.0)
MR_BRAIN = ChannelIntensity(mean=400.0, std=100.0, percentile_00_5=150.0, percentile_99_5=650.0)


def _profile(name, channels=("CT",), schemes=("CTNormalization",), spacing=(1.0, 1.0, 1.0), intensity=(CT_LIVER,),
             labels=("liver", "liver tumour"), cases=20, share=0.05, volume=2000.0, kind="dataset"):
    return DatasetProfile(name, kind, tuple(channels), None if schemes is None else tuple(schemes),
                          None if spacing is None else tuple(spacing), None if intensity is None else tuple(intensity),
                          tuple(labels), cases, share, volume)


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
