"""Label and channel names made comparable across datasets.

Label names: lower case, words split at ``_``/``-``/spaces/camelCase/digits; the side (left, right, l, r,
lt, rt, ...) is taken out as its own attribute; plurals become singular ("kidneys" -> "kidney", "vertebrae"
-> "vertebra"); adjectives and abbreviations become the organ's noun ("renal" -> "kidney", "ivc" ->
"inferior vena cava", "tumour" -> "tumor"). Two labels then match fully when structure and side agree.

Channel names: nnU-Net's ``channel_names`` are free text ("CT", "T1", "t1ce", "FLAIR", "ADC", "noNorm").
:func:`channel_modality` maps them to a family (CT, MR, PET, US, XR, RGB, unknown) and, for MR, a sequence.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# --- labels ----------------------------------------------------------------------------------------------

SIDE_WORDS = {"left": "left", "l": "left", "lt": "left", "sinister": "left", "sin": "left",
              "right": "right", "r": "right", "rt": "right", "dexter": "right", "dex": "right"}

IRREGULAR_SINGULAR = {
    "vertebrae": "vertebra", "bronchi": "bronchus", "teeth": "tooth", "testes": "testis", "femora": "femur",
    "ovaries": "ovary", "arteries": "artery", "cavities": "cavity", "bodies": "body", "ribs": "rib",
    "glands": "gland", "lobes": "lobe", "nuclei": "nucleus", "foci": "focus", "metastases": "metastasis",
    "calculi": "calculus", "hippocampi": "hippocampus", "thalami": "thalamus", "ventricles": "ventricle",
}
# words that end in s but are singular
SINGULAR_S = {"pancreas", "corpus", "thalamus", "hippocampus", "uterus", "esophagus", "oesophagus", "bronchus",
              "humerus", "radius", "sacrum", "os", "glottis", "testis", "pelvis", "iris", "metastasis", "sinus",
              "nucleus", "plexus", "fundus", "atlas", "axis", "calculus", "meninges", "ductus", "lens", "abscess",
              "process", "mass", "always", "chiasmus", "vas", "ganglias", "ascites", "diabetes", "focus", "is"}

# word -> replacement words (adjectives to the organ's noun, spelling variants, abbreviations)
WORD_SYNONYMS = {
    "renal": "kidney", "nephric": "kidney", "hepatic": "liver", "hepar": "liver", "splenic": "spleen",
    "lien": "spleen", "pancreatic": "pancreas", "gastric": "stomach", "cardiac": "heart", "myocardial":
    "myocardium", "pulmonary": "lung", "cerebral": "brain", "vertebral": "vertebra", "oesophagus": "esophagus",
    "oesophageal": "esophagus", "esophageal": "esophagus", "tumour": "tumor", "neoplasm": "tumor",
    "carcinoma": "tumor", "cancer": "tumor", "grey": "gray", "haemorrhage": "hemorrhage", "adrenal":
    "adrenal gland", "suprarenal": "adrenal gland", "ivc": "inferior vena cava", "svc": "superior vena cava",
    "gb": "gallbladder", "gm": "gray matter", "wm": "white matter", "csf": "cerebrospinal fluid",
    "lv": "left ventricle", "rv": "right ventricle", "myo": "myocardium", "bladder": "urinary bladder",
    "colonic": "colon", "duodenal": "duodenum", "prostatic": "prostate", "hippocampal": "hippocampus",
    "lesional": "lesion", "nodule": "lesion", "tumor": "tumor", "et": "enhancing tumor", "ncr": "necrosis",
    "ed": "edema", "oedema": "edema", "femoral": "femur", "aortic": "aorta", "thyroidal": "thyroid",
}
NOISE_WORDS = {"the", "of", "and", "structure", "region", "label", "class", "mask", "seg", "segmentation"}


@dataclass(frozen=True)
class LabelName:
    """A label name reduced to its structure words and its side."""

    original: str
    structure: tuple[str, ...]  # singular words, synonyms resolved, side removed, order kept
    side: str | None  # "left" | "right" | None

    @property
    def key(self) -> str:
        return " ".join(self.structure)


def _words(text: str) -> list[str]:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(text))  # camelCase
    text = re.sub(r"([A-Za-z]{2,})(\d)", r"\1 \2", text)  # organ1 -> organ 1; L1, T12, C7 stay whole
    return [w for w in re.split(r"[^0-9a-z]+", text.lower()) if w]


def singular(word: str) -> str:
    """``kidneys`` -> ``kidney``, ``arteries`` -> ``artery``, ``vertebrae`` -> ``vertebra``; others unchanged."""
    if word in IRREGULAR_SINGULAR:
        return IRREGULAR_SINGULAR[word]
    if word in SINGULAR_S or len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("ae"):
        return word[:-1]
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normalise_label(name: str) -> LabelName:
    """A label name as comparable words: ``"Kidney_L"`` -> structure ``("kidney",)``, side ``"left"``."""
    words = []
    for word in _words(name):
        word = singular(word)
        words += WORD_SYNONYMS.get(word, word).split()
    side = None
    structure: list[str] = []
    for word in words:
        if word in SIDE_WORDS:
            side = SIDE_WORDS[word] if side in (None, SIDE_WORDS[word]) else None
        elif word not in NOISE_WORDS:
            structure.append(word)
    deduplicated = tuple(dict.fromkeys(structure))
    return LabelName(str(name), deduplicated, side)


ABNORMAL_TISSUE_WORDS = frozenset({"tumor", "lesion", "metastasis"})
"""Words (after normalise_label) for abnormal tissue: a "lesion" and a "tumor" label are related tasks, not one."""
RELATED_ABNORMALITY = 0.5  # "lesion" vs "tumour", "lung nodule" vs "lung tumour": same place, kindred target


def _abnormal_as_one(structure: tuple[str, ...]) -> frozenset[str]:
    return frozenset("abnormal tissue" if word in ABNORMAL_TISSUE_WORDS else word for word in structure)


def label_similarity(a: LabelName, b: LabelName) -> float:
    """1 same structure and side; 0.75 same structure, one side unknown; 0.5 same structure, other side; 0.5 for
    the same structure but another word for abnormal tissue (``"lesion"`` vs ``"tumour"``; half that on other
    sides); otherwise half the word overlap (Jaccard) of the structures (``"kidney cyst"`` vs ``"kidney"``: 0.25)."""
    if not a.structure or not b.structure:
        return 0.0
    if a.structure == b.structure or set(a.structure) == set(b.structure):
        if a.side == b.side:
            return 1.0
        return 0.75 if (a.side is None or b.side is None) else 0.5
    if _abnormal_as_one(a.structure) == _abnormal_as_one(b.structure):
        other_sides = a.side is not None and b.side is not None and a.side != b.side
        return RELATED_ABNORMALITY / 2 if other_sides else RELATED_ABNORMALITY
    words_a = {w for w in a.structure if not w.isdigit()}
    words_b = {w for w in b.structure if not w.isdigit()}
    union = words_a | words_b
    return 0.5 * len(words_a & words_b) / len(union) if union else 0.0


@dataclass(frozen=True)
class LabelMatch:
    target: str
    source: str | None
    similarity: float


def foreground_label_names(labels: Mapping[str, object]) -> list[str]:
    """The foreground names of a dataset.json ``labels`` dict (background, value 0 and ``ignore`` left out)."""
    names = []
    for name, value in labels.items():
        if str(name).lower() in ("background", "ignore"):
            continue
        if value == 0 or value == [0] or value == (0,):
            continue
        names.append(str(name))
    return names


def match_labels(target: Iterable[str], source: Iterable[str]) -> list[LabelMatch]:
    """For each target label the most similar source label (None and 0 if the source has none)."""
    source = list(source)
    normal_source = [normalise_label(s) for s in source]
    matches = []
    for name in target:
        normal = normalise_label(name)
        scored = [(label_similarity(normal, s), i) for i, s in enumerate(normal_source)]
        best, index = max(scored, default=(0.0, -1))
        matches.append(LabelMatch(name, source[index] if best > 0 else None, best))
    return matches


# --- channels --------------------------------------------------------------------------------------------

CT, MR, PET, US, XR, RGB, UNKNOWN = "CT", "MR", "PET", "US", "XR", "RGB", "unknown"

_CT_WORDS = {"ct", "cta", "ncct", "cect", "hu", "cbct", "arterial", "venous", "portal", "native", "delayed", "nc"}
_MR_SEQUENCES = {
    "t1": "T1", "t1w": "T1", "mprage": "T1", "spgr": "T1", "t1c": "T1c", "t1ce": "T1c", "t1gd": "T1c",
    "t1post": "T1c", "t1contrast": "T1c", "t2": "T2", "t2w": "T2", "flair": "FLAIR", "t2flair": "FLAIR",
    "adc": "ADC", "dwi": "DWI", "hbv": "DWI", "bval": "DWI", "pd": "PD", "pdw": "PD", "swi": "SWI",
    "dixon": "Dixon", "water": "Dixon", "fat": "Dixon", "cine": "cine", "lge": "LGE", "bold": "BOLD",
}
_MR_WORDS = {"mr", "mri", "magnetic"}
_PET_WORDS = {"pet", "suv", "fdg", "psma"}
_US_WORDS = {"us", "ultrasound", "echo", "sonography"}
_XR_WORDS = {"xray", "radiograph", "cxr", "dx", "mammography", "mg"}
_RGB_WORDS = {"rgb", "red", "green", "blue", "r", "g", "b", "he", "histology", "photo"}


@dataclass(frozen=True)
class Modality:
    family: str  # CT | MR | PET | US | XR | RGB | unknown
    sequence: str | None = None  # MR sequence (T1, T1c, T2, FLAIR, ADC, DWI, ...) when known


def _channel_words(name: str) -> list[str]:
    return [w for w in re.split(r"[^0-9a-z+]+", str(name).lower()) if w]


def _mr_sequence(word: str) -> str | None:
    word = word.replace("+c", "c").replace("+", "")
    if word in _MR_SEQUENCES:
        return _MR_SEQUENCES[word]
    if word.startswith("t1"):
        rest = word[2:]
        return "T1c" if any(k in rest for k in ("c", "gd", "post")) else "T1"
    if word.startswith("t2"):
        return "FLAIR" if "flair" in word else "T2"
    return None


def channel_modality(name: str) -> Modality:
    """The imaging family (and MR sequence) a ``channel_names`` entry stands for."""
    words = _channel_words(name)
    compact = "".join(words)
    for word in (compact, *words):
        sequence = _mr_sequence(word)
        if sequence is not None:
            return Modality(MR, sequence)
    found = set(words) | {compact}
    for family, vocabulary in ((CT, _CT_WORDS), (MR, _MR_WORDS), (PET, _PET_WORDS), (US, _US_WORDS),
                               (XR, _XR_WORDS), (RGB, _RGB_WORDS)):
        if found & vocabulary:
            return Modality(family)
    return Modality(UNKNOWN)


def modality_similarity(a: Modality, b: Modality) -> float:
    """1 same family and sequence; 0.75 same family, one sequence unknown; 0.5 same family, other sequence;
    0.25 when either family is unknown (the names do not say); 0 different families."""
    if a.family == UNKNOWN or b.family == UNKNOWN:
        return 0.25
    if a.family != b.family:
        return 0.0
    if a.sequence == b.sequence:
        return 1.0
    return 0.75 if (a.sequence is None or b.sequence is None) else 0.5


def match_channels(target: list[str], source: list[str]) -> list[tuple[int | None, float]]:
    """For each target channel: (index of the most similar source channel, similarity); ties take the
    source channel with the same index, then the first."""
    result = []
    source_modalities = [channel_modality(s) for s in source]
    for index, name in enumerate(target):
        modality = channel_modality(name)
        best, best_index = 0.0, None
        for j, other in enumerate(source_modalities):
            score = modality_similarity(modality, other)
            exact = str(name).strip().lower() == str(source[j]).strip().lower()
            score = max(score, 1.0 if exact else 0.0)
            better = score > best or (score == best and best_index is not None and j == index and score > 0)
            if better:
                best, best_index = score, j
        result.append((best_index, best))
    return result


# --- anatomy ---------------------------------------------------------------------------------------------------
# Where a label lies, so that a generic name ("tumor", "lesion", "edema") is read in its dataset's context: a brain
# tumour and a lung tumour share a word, not a task. Organs (structure words after normalise_label) -> body
# regions; an organ may span regions (the aorta runs through thorax and abdomen).

ORGAN_REGIONS: dict[str, tuple[str, ...]] = {
    "brain": ("head",), "gray matter": ("head",), "white matter": ("head",), "cerebrospinal fluid": ("head",),
    "hippocampus": ("head",), "thalamus": ("head",), "cerebellum": ("head",), "brainstem": ("head",),
    "brain stem": ("head",),
    "pituitary": ("head",), "putamen": ("head",), "caudate": ("head",), "amygdala": ("head",),
    "eye": ("head",), "optic nerve": ("head",), "chiasm": ("head",), "cochlea": ("head",),
    "parotid": ("neck",), "mandible": ("neck",), "thyroid": ("neck",), "larynx": ("neck",),
    "pharynx": ("neck",), "carotid": ("neck",),
    "lung": ("thorax",), "heart": ("thorax",), "myocardium": ("thorax",), "atrium": ("thorax",),
    "trachea": ("thorax",), "bronchus": ("thorax",), "esophagus": ("thorax",), "rib": ("thorax",),
    "pulmonary artery": ("thorax",), "superior vena cava": ("thorax",), "breast": ("breast",),
    "aorta": ("thorax", "abdomen"), "spinal cord": ("neck", "thorax", "abdomen"),
    "vertebra": ("neck", "thorax", "abdomen"),
    "liver": ("abdomen",), "spleen": ("abdomen",), "kidney": ("abdomen",), "pancreas": ("abdomen",),
    "stomach": ("abdomen",), "gallbladder": ("abdomen",), "duodenum": ("abdomen",), "colon": ("abdomen",),
    "adrenal gland": ("abdomen",), "inferior vena cava": ("abdomen",), "portal vein": ("abdomen",),
    "small bowel": ("abdomen",), "intestine": ("abdomen",), "bowel": ("abdomen",),
    "prostate": ("pelvis",), "urinary bladder": ("pelvis",), "uterus": ("pelvis",), "rectum": ("pelvis",),
    "ovary": ("pelvis",), "femur": ("pelvis",), "hip": ("pelvis",), "sacrum": ("pelvis",),
}
ANATOMY_SAME_REGION = 0.5  # two labels in other organs of one body region (liver vs kidney tumour)
ANATOMY_OTHER_REGION = 0.25  # two labels in different body regions (brain vs lung tumour)


def organs_in(words: Iterable[str]) -> frozenset[str]:
    """The organs of :data:`ORGAN_REGIONS` whose words all occur in ``words`` (normalised structure words)."""
    present = set(words)
    return frozenset(organ for organ in ORGAN_REGIONS if set(organ.split()) <= present)


def text_organs(text: str) -> frozenset[str]:
    """The organs named in free text (a dataset's name or description), words normalised as label names."""
    words: list[str] = []
    for word in _words(text):
        words += WORD_SYNONYMS.get(singular(word), singular(word)).split()
    return organs_in(words)


def dataset_anatomy(labels: Iterable[str], name: str = "", description: str = "") -> frozenset[str]:
    """The organs a dataset is about: those its labels name, else those in its name and description (a
    ``BrainTumour`` dataset with labels edema/tumor is about the brain); empty when nothing says."""
    named = frozenset().union(*(organs_in(normalise_label(label).structure) for label in labels))
    return named or (text_organs(name) | text_organs(description))


def label_anatomy(label: str, context: frozenset[str]) -> frozenset[str]:
    """The organs one label lies in: those its name says (``liver tumour`` -> liver), else the dataset's."""
    return organs_in(normalise_label(label).structure) or context


def regions_of(organs: Iterable[str]) -> frozenset[str]:
    return frozenset(region for organ in organs for region in ORGAN_REGIONS.get(organ, ()))


def anatomy_similarity(a: frozenset[str], b: frozenset[str]) -> float | None:
    """1 when the organs overlap, :data:`ANATOMY_SAME_REGION` for other organs of one region,
    :data:`ANATOMY_OTHER_REGION` otherwise; None when either side's anatomy is unknown."""
    if not a or not b:
        return None
    if a & b:
        return 1.0
    return ANATOMY_SAME_REGION if regions_of(a) & regions_of(b) else ANATOMY_OTHER_REGION


@dataclass(frozen=True)
class AnatomicalMatch:
    """A target label's best source label: name similarity times the anatomy factor (1 when unknown)."""

    target: str
    source: str | None
    similarity: float
    name_similarity: float
    anatomy: float | None  # None: the anatomy of either label is unknown
    target_organs: tuple[str, ...]
    source_organs: tuple[str, ...]


def match_labels_in_context(target: Iterable[str], source: Iterable[str], target_context: frozenset[str],
                            source_context: frozenset[str]) -> list[AnatomicalMatch]:
    """For each target label the source label with the highest name similarity x anatomy factor."""
    source = list(source)
    normal_source = [normalise_label(s) for s in source]
    source_organs = [label_anatomy(s, source_context) for s in source]
    matches = []
    for name in target:
        normal, organs = normalise_label(name), label_anatomy(name, target_context)
        best = AnatomicalMatch(name, None, 0.0, 0.0, None, tuple(sorted(organs)), ())
        for other, normal_other, other_organs in zip(source, normal_source, source_organs):
            by_name = label_similarity(normal, normal_other)
            if by_name == 0:
                continue
            anatomy = anatomy_similarity(organs, other_organs)
            score = by_name * (1.0 if anatomy is None else anatomy)
            if score > best.similarity:
                best = AnatomicalMatch(name, other, score, by_name, anatomy, tuple(sorted(organs)),
                                       tuple(sorted(other_organs)))
        matches.append(best)
    return matches
