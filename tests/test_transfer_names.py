"""Label and channel names made comparable (transfer/names.py): answers known by hand."""
from __future__ import annotations

import pytest

from nnunet_progressive.transfer.names import (
    CT,
    MR,
    UNKNOWN,
    Modality,
    channel_modality,
    foreground_label_names,
    label_similarity,
    match_channels,
    match_labels,
    normalise_label,
    singular,
)


@pytest.mark.parametrize("word, expected", [
    ("kidneys", "kidney"), ("arteries", "artery"), ("vertebrae", "vertebra"), ("lungs", "lung"),
    ("pancreas", "pancreas"), ("glands", "gland"), ("bronchi", "bronchus"), ("ribs", "rib"), ("mass", "mass"),
])
def test_plurals_become_singular(word, expected):
    assert singular(word) == expected


@pytest.mark.parametrize("name, structure, side", [
    ("Kidney_L", ("kidney",), "left"), ("left kidneys", ("kidney",), "left"), ("RightKidney", ("kidney",), "right"),
    ("kidney_rt", ("kidney",), "right"), ("lt kidney", ("kidney",), "left"), ("renal", ("kidney",), None),
    ("IVC", ("inferior", "vena", "cava"), None), ("grey matter", ("gray", "matter"), None),
    ("gray_matter", ("gray", "matter"), None), ("Liver tumour", ("liver", "tumor"), None),
    ("adrenal_gland_left", ("adrenal", "gland"), "left"), ("vertebrae_L1", ("vertebra", "l1"), None),
    ("LV", ("ventricle",), "left"), ("organ1", ("organ", "1"), None),
])
def test_label_names_are_normalised(name, structure, side):
    label = normalise_label(name)
    assert (label.structure, label.side) == (structure, side)


def test_label_similarity_grades_side_and_partial_matches():
    left, right, plain = (normalise_label(n) for n in ("kidney_left", "Right Kidney", "kidneys"))
    assert label_similarity(left, normalise_label("Kidney L")) == 1.0
    assert label_similarity(left, plain) == 0.75
    assert label_similarity(left, right) == 0.5
    assert label_similarity(normalise_label("kidney cyst"), plain) == 0.25
    assert label_similarity(normalise_label("liver"), plain) == 0.0
    assert label_similarity(normalise_label("organ1"), normalise_label("organ2")) == 0.5


def test_match_labels_uses_synonyms_and_reports_misses():
    matches = match_labels(["kidney_left", "liver", "heart"], ["Kidney L", "Right kidney", "hepatic"])
    assert [(m.source, m.similarity) for m in matches] == [("Kidney L", 1.0), ("hepatic", 1.0), (None, 0.0)]


def test_foreground_names_leave_out_background_and_ignore():
    labels = {"background": 0, "liver": 1, "tumor": [2, 3], "ignore": 4}
    assert foreground_label_names(labels) == ["liver", "tumor"]


@pytest.mark.parametrize("name, family, sequence", [
    ("CT", CT, None), ("venous CT", CT, None), ("T1", MR, "T1"), ("t1ce", MR, "T1c"), ("T1Gd", MR, "T1c"),
    ("T1-weighted", MR, "T1"), ("MRI T1", MR, "T1"), ("t1 post contrast", MR, "T1c"), ("FLAIR", MR, "FLAIR"),
    ("T2 FLAIR", MR, "FLAIR"), ("T2w", MR, "T2"), ("ADC", MR, "ADC"), ("MRI", MR, None), ("noNorm", UNKNOWN, None),
    ("zscore", UNKNOWN, None),
])
def test_channel_names_give_modality_and_sequence(name, family, sequence):
    assert channel_modality(name) == Modality(family, sequence)


def test_channels_match_by_sequence_then_index():
    assert match_channels(["T1c", "FLAIR"], ["T1", "T2", "FLAIR", "T1c"]) == [(3, 1.0), (2, 1.0)]
    assert match_channels(["CT"], ["T1"]) == [(None, 0.0)]
    # T2 has no exact partner: a same-family channel at its own index wins the tie
    assert match_channels(["T1", "T2"], ["T1c", "FLAIR"]) == [(0, 0.5), (1, 0.5)]


def test_anatomy_from_labels_else_name_and_description():
    from nnunet_progressive.transfer.names import dataset_anatomy, label_anatomy

    assert dataset_anatomy(["Kidney_L", "kidney tumour", "cyst"]) == {"kidney"}
    assert dataset_anatomy(["edema", "enhancing tumour"], "BrainTumour", "Gliomas") == {"brain"}
    assert dataset_anatomy(["cancer"], "Task06_Lung", "Lung and tumours") == {"lung"}
    assert dataset_anatomy(["organ1", "lesion"], "NNProgTiny3D", "Synthetic dataset") == frozenset()
    assert label_anatomy("liver tumour", frozenset({"kidney"})) == {"liver"}  # the name says where
    assert label_anatomy("tumour", frozenset({"kidney"})) == {"kidney"}  # the dataset says where


def test_a_tumour_in_another_organ_or_region_is_not_a_full_match():
    from nnunet_progressive.transfer.names import anatomy_similarity, match_labels_in_context

    lung, brain, liver, kidney = (frozenset({o}) for o in ("lung", "brain", "liver", "kidney"))
    assert anatomy_similarity(lung, brain) == 0.25 and anatomy_similarity(liver, kidney) == 0.5
    assert anatomy_similarity(frozenset({"aorta"}), liver) == 0.5  # the aorta runs through the abdomen
    assert anatomy_similarity(lung, frozenset()) is None
    [match] = match_labels_in_context(["tumor"], ["edema", "tumour"], lung, brain)
    assert (match.source, match.name_similarity, match.anatomy, match.similarity) == ("tumour", 1.0, 0.25, 0.25)
    [match] = match_labels_in_context(["tumor"], ["tumour"], lung, frozenset())
    assert match.similarity == 1.0 and match.anatomy is None  # unknown anatomy: the name decides
    [match] = match_labels_in_context(["aorta"], ["spleen", "liver", "aorta"], frozenset({"aorta"}),
                                      frozenset({"spleen", "liver", "aorta"}))
    assert (match.source, match.similarity) == ("aorta", 1.0)


def test_other_words_for_abnormal_tissue_are_related_not_equal():
    """Issue 23's hand check: a lesion dataset scored 0 against a tumour one. Now half: a kindred target."""
    assert label_similarity(normalise_label("lesion"), normalise_label("tumour")) == 0.5
    assert label_similarity(normalise_label("lung nodule"), normalise_label("lung tumour")) == 0.5
    assert label_similarity(normalise_label("left kidney tumor"), normalise_label("right kidney lesion")) == 0.25
    assert label_similarity(normalise_label("liver lesion"), normalise_label("lung tumour")) < 0.5
    assert label_similarity(normalise_label("tumour"), normalise_label("tumor")) == 1.0
