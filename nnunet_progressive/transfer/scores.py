"""How close a candidate source dataset is to the target: one score per component, then a weighted mean.

Every component is a pure function returning a number in [0, 1] (1 = the same), or None when a candidate
does not tell (a trained model folder has no label images, say). The combined score is the weighted mean of
the components that are known and switched on; the table says which were left out.

Domain closeness
- ``modality``: channel names (CT, MR sequences, PET, ...; :mod:`.names`), per target channel its best
  source channel: 1 same sequence, 0.75 same family with a sequence unknown, 0.5 another sequence of the same
  family, 0 another family.
- ``normalization``: share of target channels whose matched source channel uses the same nnU-Net
  normalisation scheme (CTNormalization, ZScoreNormalization, ...).
- ``spacing``: ``exp(-mean |ln(s_target / s_source)|)`` over the median spacings, sorted (orientation-free):
  twice the spacing on every axis gives 0.5.
- ``intensity``: how alike the intensity distributions of the whole scans are (inside the body, a few cases of
  each dataset, :data:`SCAN_QUANTILES`), per matched channel: ``exp(-W1 / scale)`` with W1 the mean absolute
  difference of the quantiles (the Wasserstein-1 distance), in Hounsfield units when both channels are CT
  (scale :data:`HU_SCALE`), otherwise after z-scoring each scan's body voxels (what nnU-Net's normalisation makes
  of them; scale :data:`Z_SCALE`); 0 across families. Where a side has no scans (a model folder), the
  foreground ranges [0.5th, 99.5th percentile] of nnU-Net's fingerprints are compared instead (intersection over
  union, HU or z-scored as above); ``details['intensity_basis']`` says which.
- ``image``: image similarity (SSIM after registration) of a few cases of each dataset, reusing the PDL
  similarity code; computed by the caller, clipped to [0, 1]. It carries no signal when even the candidates of
  the target's modality reach a mean pair SSIM below :data:`IMAGE_SIGNAL_FLOOR` (the registration on the
  coarse grid does not see the anatomy): it is then left out for every candidate, its weight is spread over the
  other components, and the scores say so (:func:`image_signal`).

Task closeness
- ``labels``: per target foreground label, its most similar source label: name similarity
  (:func:`.names.label_similarity`) times the anatomy factor (:func:`.names.anatomy_similarity`: a label's organs
  from its name, else its dataset's other labels, name and description; 1 same organs, 0.5 same body region, 0.25
  other regions, 1 when unknown), averaged: the share of the target's structures the source already segments.
- ``foreground``: ``min/max`` of the foreground voxel shares.
- ``structure_size``: ``min/max`` of the typical structure size (cube root of the median structure volume,
  mm): a structure twice as long gives 0.5.
- ``cases``: ``min(1, log10(1 + n) / 3)``: 9 cases 0.33, 99 cases 0.67, 999 and more 1. Weighted low by
  default: a small similar source beats a large distant one (Zoetmulder et al. 2022).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.transfer.names import (
    CT,
    channel_modality,
    dataset_anatomy,
    match_channels,
    match_labels_in_context,
)

DOMAIN_COMPONENTS = ("modality", "normalization", "spacing", "intensity", "image")
TASK_COMPONENTS = ("labels", "foreground", "structure_size", "cases")
COMPONENTS = DOMAIN_COMPONENTS + TASK_COMPONENTS
# The domain counts more than a label name (Zoetmulder et al. 2022: same-domain sources transfer best): modality
# 3 and scan intensities 2 (5 of 11) against labels 2, so a source of another modality with a matching generic
# label ("tumor") never beats a source of the target's modality; docs/finetuning.md names the scenarios that
# check these weights (tests/test_transfer_scores.py, tests/test_transfer_sources_e2e.py, on real scans
# tests/test_transfer_sources_real_scans.py).
DEFAULT_WEIGHTS: dict[str, float] = {
    "modality": 3.0, "normalization": 0.5, "spacing": 1.0, "intensity": 2.0, "image": 1.0,
    "labels": 2.0, "foreground": 0.5, "structure_size": 0.5, "cases": 0.5,
}
WEAK_RECOMMENDATION = 0.4  # below this combined score no candidate is called close
SCAN_QUANTILES = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 5th, 10th, ..., 95th percentile
HU_SCALE = 100.0  # Hounsfield units: a distribution shifted by 100 HU scores exp(-1) = 0.37
Z_SCALE = 0.25  # standard deviations of the body voxels: quantiles 0.25 SD apart score 0.37
IMAGE_SIGNAL_FLOOR = 0.1  # a mean pair SSIM below this for same-modality scans: the image component is noise


@dataclass(frozen=True)
class ChannelIntensity:
    """Foreground intensity statistics of one channel (nnU-Net's dataset_fingerprint.json)."""

    mean: float
    std: float
    percentile_00_5: float
    percentile_99_5: float


@dataclass(frozen=True)
class DatasetProfile:
    """What the scores compare, gathered from dataset.json, plans, fingerprint and a sample of labels."""

    name: str
    kind: str = "dataset"  # "dataset" | "model"
    channel_names: tuple[str, ...] = ()
    normalization_schemes: tuple[str, ...] | None = None
    spacing: tuple[float, ...] | None = None  # median voxel spacing in mm
    intensity: tuple[ChannelIntensity | None, ...] | None = None
    labels: tuple[str, ...] = ()  # foreground label names
    num_cases: int | None = None
    foreground_share: float | None = None  # mean share of foreground voxels per case
    structure_volume_mm3: float | None = None  # median over labels of the mean volume per case
    anatomy: tuple[str, ...] | None = None  # organs it is about (names.dataset_anatomy); None: from the labels
    scan_intensity: tuple[tuple[float, ...] | None, ...] | None = None  # per channel, SCAN_QUANTILES of the scans

    def organs(self) -> frozenset[str]:
        return frozenset(self.anatomy) if self.anatomy is not None else dataset_anatomy(self.labels)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CandidateScore:
    name: str
    kind: str
    components: dict[str, float | None]
    combined: float
    coverage: float  # share of the switched-on weight whose component was known
    details: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# --- components -------------------------------------------------------------------------------------------

def _clip(value: float) -> float:
    return float(min(1.0, max(0.0, value)))


def modality_score(target: DatasetProfile, source: DatasetProfile) -> float | None:
    if not target.channel_names or not source.channel_names:
        return None
    matches = match_channels(list(target.channel_names), list(source.channel_names))
    return _clip(sum(score for _, score in matches) / len(matches))


def normalization_score(target: DatasetProfile, source: DatasetProfile) -> float | None:
    if not target.normalization_schemes or not source.normalization_schemes:
        return None
    matches = match_channels(list(target.channel_names), list(source.channel_names))
    same = [target.normalization_schemes[i] == source.normalization_schemes[j]
            for i, (j, _) in enumerate(matches) if j is not None and i < len(target.normalization_schemes)
            and j < len(source.normalization_schemes)]
    return sum(same) / len(target.channel_names) if target.channel_names else None


def spacing_score(target: Sequence[float] | None, source: Sequence[float] | None) -> float | None:
    """``exp(-mean |ln ratio|)`` of the sorted spacings; 0 for 2D against 3D."""
    if not target or not source:
        return None
    if len(target) != len(source):
        return 0.0
    if any(s <= 0 for s in (*target, *source)):
        raise ProgressiveConfigError(f"spacings must be positive, got {list(target)} and {list(source)}")
    pairs = zip(sorted(target, reverse=True), sorted(source, reverse=True))
    return _clip(math.exp(-sum(abs(math.log(a / b)) for a, b in pairs) / len(target)))


def interval_overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two closed intervals (1 when both are the same point)."""
    low, high = max(a[0], b[0]), min(a[1], b[1])
    union = max(a[1], b[1]) - min(a[0], b[0])
    if union <= 0:
        return 1.0 if a == b else 0.0
    return _clip(max(0.0, high - low) / union)


def _range(stats: ChannelIntensity, hounsfield: bool) -> tuple[float, float]:
    if hounsfield:
        return stats.percentile_00_5, stats.percentile_99_5
    std = stats.std if stats.std > 0 else 1.0
    return (stats.percentile_00_5 - stats.mean) / std, (stats.percentile_99_5 - stats.mean) / std


def quantile_distance_score(a: Sequence[float], b: Sequence[float], scale: float) -> float:
    """``exp(-mean |a_i - b_i| / scale)``: 1 for the same distribution (quantiles ``a`` and ``b``), 0.37 when
    they are ``scale`` apart on average (the Wasserstein-1 distance of the two distributions)."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"quantiles of different lengths: {len(a)} and {len(b)}")
    distance = sum(abs(float(x) - float(y)) for x, y in zip(a, b)) / len(a)
    return _clip(math.exp(-distance / scale))


def intensity_basis(target: DatasetProfile, source: DatasetProfile) -> str | None:
    """``"scans"`` (whole-scan distributions), ``"foreground"`` (fingerprint ranges) or None (unknown)."""
    if target.scan_intensity and source.scan_intensity:
        return "scans"
    if target.intensity and source.intensity:
        return "foreground"
    return None


def intensity_score(target: DatasetProfile, source: DatasetProfile) -> float | None:
    basis = intensity_basis(target, source)
    if basis is None or not target.channel_names or not source.channel_names:
        return None
    mine_all = target.scan_intensity if basis == "scans" else target.intensity
    theirs_all = source.scan_intensity if basis == "scans" else source.intensity
    matches = match_channels(list(target.channel_names), list(source.channel_names))
    scores = []
    for i, (j, _) in enumerate(matches):
        mine = mine_all[i] if i < len(mine_all) else None
        theirs = theirs_all[j] if (j is not None and j < len(theirs_all)) else None
        if mine is None or theirs is None:
            scores.append(0.0)
            continue
        family_t = channel_modality(target.channel_names[i]).family
        family_s = channel_modality(source.channel_names[j]).family
        if (family_t == CT) != (family_s == CT):
            scores.append(0.0)
            continue
        hounsfield = family_t == CT and family_s == CT
        if basis == "scans":
            scores.append(quantile_distance_score(mine, theirs, HU_SCALE if hounsfield else Z_SCALE))
        else:
            scores.append(interval_overlap(_range(mine, hounsfield), _range(theirs, hounsfield)))
    return sum(scores) / len(scores)


def label_score(target: DatasetProfile, source: DatasetProfile) -> float | None:
    if not target.labels:
        return None
    if not source.labels:
        return 0.0
    matches = match_labels_in_context(target.labels, source.labels, target.organs(), source.organs())
    return _clip(sum(m.similarity for m in matches) / len(matches))


def ratio_score(a: float | None, b: float | None, power: float = 1.0) -> float | None:
    """``(min/max) ** power`` of two positive quantities; None if either is unknown."""
    if a is None or b is None:
        return None
    if a <= 0 or b <= 0:
        return 1.0 if a == b else 0.0
    return _clip((min(a, b) / max(a, b)) ** power)


def cases_score(num_cases: int | None) -> float | None:
    if num_cases is None:
        return None
    return _clip(math.log10(1 + max(0, num_cases)) / 3.0)


def component_scores(target: DatasetProfile, source: DatasetProfile,
                     image_similarity: float | None = None) -> dict[str, float | None]:
    """Every component of :data:`COMPONENTS` for one candidate (None = unknown)."""
    size_t = None if target.structure_volume_mm3 is None else target.structure_volume_mm3 ** (1 / 3)
    size_s = None if source.structure_volume_mm3 is None else source.structure_volume_mm3 ** (1 / 3)
    return {
        "modality": modality_score(target, source),
        "normalization": normalization_score(target, source),
        "spacing": spacing_score(target.spacing, source.spacing),
        "intensity": intensity_score(target, source),
        "image": None if image_similarity is None else _clip(image_similarity),
        "labels": label_score(target, source),
        "foreground": ratio_score(target.foreground_share, source.foreground_share),
        "structure_size": ratio_score(size_t, size_s),
        "cases": cases_score(source.num_cases),
    }


# --- weighting ---------------------------------------------------------------------------------------------

def parse_weights(text: str | None = None, off: Sequence[str] = ()) -> dict[str, float]:
    """The default weights with ``"labels=2,image=0"`` applied and the components in ``off`` set to 0."""
    weights = dict(DEFAULT_WEIGHTS)
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    for item in items:
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in weights:
            raise ProgressiveConfigError(f"--weights: unknown component {name!r}; the components are "
                                         f"{', '.join(COMPONENTS)}")
        try:
            number = float(value)
        except ValueError:
            raise ProgressiveConfigError(f"--weights: {item!r} is not NAME=NUMBER, e.g. labels=2") from None
        if not math.isfinite(number) or number < 0:
            raise ProgressiveConfigError(f"--weights: {name} must be a finite number >= 0, got {value!r}")
        weights[name] = number
    for name in off:
        if name not in weights:
            raise ProgressiveConfigError(f"--off: unknown component {name!r}; the components are "
                                         f"{', '.join(COMPONENTS)}")
        weights[name] = 0.0
    if not any(weights.values()):
        raise ProgressiveConfigError("every component is switched off (all weights are 0); keep at least one")
    return weights


def combine(components: Mapping[str, float | None], weights: Mapping[str, float]) -> tuple[float, float]:
    """(weighted mean of the known components, share of the switched-on weight that was known)."""
    total = sum(w for w in weights.values() if w > 0)
    known = {name: value for name, value in components.items() if value is not None and weights.get(name, 0) > 0}
    known_weight = sum(weights[name] for name in known)
    if known_weight == 0:
        return 0.0, 0.0
    combined = sum(weights[name] * value for name, value in known.items()) / known_weight
    return float(combined), float(known_weight / total)


def image_signal(target: DatasetProfile, candidates: Sequence[DatasetProfile],
                 image_similarity: Mapping[str, float | None]) -> str | None:
    """Why the image component carries no signal for this target (None when it does).

    Scans of the target's modality should look alike after registration; when even those candidates reach a mean
    pair SSIM below :data:`IMAGE_SIGNAL_FLOOR` (or, without any, no candidate does), the SSIMs are noise around 0.
    """
    known = {c.name: image_similarity.get(c.name) for c in candidates if image_similarity.get(c.name) is not None}
    if not known:
        return None
    same = [c.name for c in candidates if c.name in known and modality_score(target, c) == 1.0]
    reference = same or list(known)
    if max(known[name] for name in reference) >= IMAGE_SIGNAL_FLOOR:
        return None
    which = "candidates of the target's modality" if same else "candidates"
    values = ", ".join(f"{name} {known[name]:.2f}" for name in reference)
    return (f"image: no signal (mean pair SSIM of the {which} below {IMAGE_SIGNAL_FLOOR}: {values}); left out, its "
            f"weight spread over the other components")


def score_candidates(target: DatasetProfile, candidates: Sequence[DatasetProfile],
                     weights: Mapping[str, float] | None = None,
                     image_similarity: Mapping[str, float | None] | None = None,
                     image_details: Mapping[str, Mapping] | None = None) -> list[CandidateScore]:
    """Every candidate scored against the target, best first (ties: by name). ``image_details``: per candidate,
    what the image similarity measured (per-pair SSIMs, registration), kept in the details."""
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    image_similarity = dict(image_similarity or {})
    no_signal = image_signal(target, candidates, image_similarity) if weights.get("image", 0) > 0 else None
    used_weights = {**weights, "image": 0.0} if no_signal else weights
    scored = []
    for candidate in candidates:
        measured = image_similarity.get(candidate.name)
        components = component_scores(target, candidate, None if no_signal else measured)
        combined, coverage = combine(components, used_weights)
        matches = match_labels_in_context(target.labels, candidate.labels, target.organs(), candidate.organs())
        details = {
            "label_matches": {m.target: m.source for m in matches},
            "label_detail": [{"target": m.target, "source": m.source, "similarity": round(m.similarity, 4),
                              "name_similarity": round(m.name_similarity, 4), "anatomy": m.anatomy,
                              "target_organs": list(m.target_organs), "source_organs": list(m.source_organs)}
                             for m in matches],
            "channel_matches": {target.channel_names[i]: (candidate.channel_names[j] if j is not None else None)
                                for i, (j, _) in enumerate(match_channels(list(target.channel_names),
                                                                         list(candidate.channel_names)))},
            "intensity_basis": intensity_basis(target, candidate),
            "switched_off": sorted(n for n in COMPONENTS if weights.get(n, 0) == 0),
            "unknown": sorted(n for n, v in components.items() if v is None and used_weights.get(n, 0) > 0),
            "no_signal": ["image"] if no_signal else [],
            "notes": [no_signal] if no_signal else [],
        }
        if measured is not None:
            details["image_measured"] = measured
        if image_details and candidate.name in image_details:
            details["image_pairs"] = image_details[candidate.name]
        scored.append(CandidateScore(candidate.name, candidate.kind, components, combined, coverage, details))
    return sorted(scored, key=lambda s: (-s.combined, s.name))


def recommendation(scores: Sequence[CandidateScore]) -> str:
    """One sentence: which candidate to pre-train on, and why (or that none is close)."""
    if not scores:
        return "no candidates were given"
    best = scores[0]
    strong = sorted(((v, k) for k, v in best.components.items() if v is not None), reverse=True)[:3]
    reasons = ", ".join(f"{k} {v:.2f}" for v, k in strong)
    if best.combined < WEAK_RECOMMENDATION:
        return (f"no candidate is close to the target (best: {best.name}, {best.combined:.2f} < "
                f"{WEAK_RECOMMENDATION}); training from scratch may do as well")
    runner_up = f"; next: {scores[1].name} ({scores[1].combined:.2f})" if len(scores) > 1 else ""
    return f"pre-train on {best.name} (combined {best.combined:.2f}: {reasons}){runner_up}"


def _cell(score: CandidateScore, component: str) -> str:
    if component in score.details.get("no_signal", ()):
        measured = score.details.get("image_measured")
        return "no signal" + ("" if measured is None else f" ({measured:.2f})")
    value = score.components[component]
    return "n/a" if value is None else f"{value:.2f}"


def scores_table(scores: Sequence[CandidateScore], weights: Mapping[str, float]) -> str:
    """A markdown table: one row per candidate, one column per switched-on component, combined last."""
    shown = [c for c in COMPONENTS if weights.get(c, 0) > 0]
    header = ["candidate", *[f"{c} ({weights[c]:g})" for c in shown], "combined", "known"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, score in enumerate(scores):
        cells = [("**" + score.name + "**") if rank == 0 else score.name]
        cells += [_cell(score, c) for c in shown]
        cells += [f"{score.combined:.3f}", f"{score.coverage:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def label_statistics(cases: Sequence[tuple[object, Sequence[float]]], label_values: Mapping[str, object]
                     ) -> tuple[float | None, float | None]:
    """(mean foreground voxel share, median over labels of the mean volume per case in mm^3) of label maps.

    ``cases``: (label array, spacing in mm) pairs; ``label_values``: dataset.json ``labels`` (regions: lists
    of values; background, value 0 and ``ignore`` are left out).
    """
    import numpy as np

    from nnunet_progressive.transfer.names import foreground_label_names

    names = foreground_label_names(label_values)
    if not cases or not names:
        return None, None
    ignore = label_values.get("ignore")
    shares, volumes = [], {name: [] for name in names}
    for array, spacing in cases:
        array = np.asarray(array)
        voxel = float(np.prod([float(s) for s in spacing]))
        valid = array != ignore if isinstance(ignore, int) else np.ones(array.shape, bool)
        shares.append(float(((array > 0) & valid).sum()) / max(1, int(valid.sum())))
        for name in names:
            values = label_values[name]
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            volumes[name].append(float(np.isin(array, values).sum()) * voxel)
    mean_volumes = sorted(sum(v) / len(v) for v in volumes.values())
    return float(sum(shares) / len(shares)), float(np.median(mean_volumes))
