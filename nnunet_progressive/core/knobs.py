"""The knob table: every ``NNPROG_*`` setting, its type, range, default, help and which trainers read it.

:class:`ProgressiveSettings` IS the table: one field per knob, declared with :func:`knob`. Everything else is
generated from it: parsing and checking of the environment (:func:`settings_from_env`), the ``--help`` text
(:func:`env_variable_help`), the README table (checked by a test) and the check that a trainer reads every
knob that is set (:func:`problems_for_trainer`).

A trainer class fixes the defaults (e.g. ``_100epochs``); the environment overrides them when a run starts.
The settings a run started with are part of its identity: they are stored with the run and ``--c`` / ``--val``
continue with them, whatever the environment says then.

Features name what reads a knob; a trainer reads the knobs of the features it has (see
``knob_features()`` of the trainer mixins in :mod:`nnunet_progressive.nnunet`).
"""
from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.validation import validate

ENV_PREFIX = "NNPROG_"
DICE_METHODS = ("sliding_window", "pseudo_dice")
RANKING_METRICS = ("combined", "mse", "psnr", "ssim")  # = pdl.similarity.compare.RANKING_METRICS (issue 23)
# PGPS choices (pgps/schedule.py explains them)
GROWTH_ORDERS = ("ratio", "smallest", "round_robin")
BATCH_SAMPLINGS = ("volumes", "cases", "sqrt", "single_volume")
AUGMENTATION_REGIMES = ("planned", "per_patch")
FINAL_VALIDATIONS = ("on", "off")
# where nnU-Net's training augmentation runs (nnunet/hooks/augmentation_placement.py explains it)
AUGMENT_PLACES = ("workers", "device")
# the published PGPS variants (pgps/sampling.py explains them): where a case's random crops lie; optimisers
RANDOM_CROP_PLACEMENTS = ("uniform", "grid", "poisson_disk")
OPTIMIZERS = ("sgd", "lamb")
STAGE_CHECKPOINTS = ("on", "off")

# Features: what reads a knob. Every trainer of the package has RUN_LENGTH.
RUN_LENGTH = "run length"  # every trainer of this package
PATCH_SIZES = "PGPS patch sizes"  # PGPS and RPSS trainers
PATCH_CURRICULUM = "PGPS curriculum"  # PGPS trainers (stages in time)
PERFORMANCE_BATCH = "PGPS Performance batch"  # PGPS Performance trainers
STOP_AT_DICE = "stop at Dice"  # *_StopAtDice and PDL trainers
CASE_SUBSET = "PDL Set 1"  # PDL trainers
SIMILARITY_RANKING = "PDL ranking"  # PDL trainers that order Set 1 by similarity
RANDOM_SUBSET = "PDL random Set 1"  # nnUNetTrainer_PDL_Random
FINETUNE_SCHEDULE = "fine-tuning schedule"  # nnUNetTrainer_Finetune and its variants
HEAD_PHASE = "fine-tuning heads first"  # nnUNetTrainer_Finetune_HeadFirst
FROZEN_PHASE = "fine-tuning frozen encoder"  # nnUNetTrainer_Finetune_FrozenEncoder


@dataclass(frozen=True)
class Knob:
    """One row of the knob table (read from a field of :class:`ProgressiveSettings`)."""

    field: str
    help: str
    readers: tuple[str, ...]
    default_text: str
    type_text: str

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.field.upper()


# --- value parsers (strings from the environment; values from JSON pass through) ---------------------------

def _integer(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("is not an integer") from None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("is not a number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _at_least(minimum: float) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value < minimum:
            raise ValueError(f"must be >= {minimum}")
        return value

    return check


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError("must be > 0")
    return value


def _fraction(value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise ValueError("must lie in (0, 1]")
    return value


def _below_half(value: float) -> float:
    if not 0.0 <= value < 0.5:
        raise ValueError("must lie in [0, 0.5)")
    return value


def _choice(choices: tuple[str, ...]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"must be one of {choices}")
        return value

    return check


def on_off(value: Any) -> str:
    """``on``/``off``, also from YAML's booleans (an unquoted ``off`` in a spec loads as False) and their spellings."""
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return "on"
    if text in ("false", "no", "0"):
        return "off"
    return text


def _lowercase(value: Any) -> str:
    return str(value).strip().lower()


def _patch(value: Any) -> Any:
    if isinstance(value, str):
        parts = [p for p in value.replace("x", ",").split(",") if p.strip()]
        try:
            value = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError("is not a patch size; write it like 32,32,32 (nnU-Net axis order)") from None
    if isinstance(value, list | tuple):
        value = tuple(value)
        if len(value) not in (2, 3) or not all(isinstance(v, int) and v >= 1 for v in value):
            raise ValueError("needs 2 or 3 positive sizes, e.g. 32,32,32")
    return value


Count = Annotated[int, BeforeValidator(_integer), AfterValidator(_at_least(1))]
Seed = Annotated[int, BeforeValidator(_integer), AfterValidator(_at_least(0))]
NonNegative = Annotated[int, BeforeValidator(_integer), AfterValidator(_at_least(0))]
Positive = Annotated[float, BeforeValidator(_number), AfterValidator(_positive)]
Number = Annotated[float, BeforeValidator(_number)]
Fraction = Annotated[float, BeforeValidator(_number), AfterValidator(_fraction)]
PatchSize = Annotated[tuple[int, ...], BeforeValidator(_patch)]
DiceMethod = Annotated[str, AfterValidator(_choice(DICE_METHODS))]
RankingMetric = Annotated[str, AfterValidator(_choice(RANKING_METRICS))]  # issue 23
FinalValidation = Annotated[str, BeforeValidator(on_off), AfterValidator(_choice(FINAL_VALIDATIONS))]
GrowthOrder = Annotated[str, AfterValidator(_choice(GROWTH_ORDERS))]
BatchSampling = Annotated[str, AfterValidator(_choice(BATCH_SAMPLINGS))]
AugmentationRegime = Annotated[str, AfterValidator(_choice(AUGMENTATION_REGIMES))]
AugmentPlace = Annotated[str, BeforeValidator(_lowercase), AfterValidator(_choice(AUGMENT_PLACES))]
RandomCrops = Annotated[str, BeforeValidator(_lowercase), AfterValidator(_choice(RANDOM_CROP_PLACEMENTS))]
Optimizer = Annotated[str, BeforeValidator(_lowercase), AfterValidator(_choice(OPTIMIZERS))]
StageCheckpoints = Annotated[str, BeforeValidator(on_off), AfterValidator(_choice(STAGE_CHECKPOINTS))]
JitterShare = Annotated[float, BeforeValidator(_number), AfterValidator(_below_half)]


def knob(default: Any, readers: Iterable[str], help: str, default_text: str | None = None, type_text: str = "") -> Any:
    """A field of :class:`ProgressiveSettings`: its default, the features that read it and its help line."""
    return Field(default, description=help, json_schema_extra={
        "readers": list(readers), "default_text": default_text if default_text is not None else str(default),
        "type_text": type_text})


class ProgressiveSettings(BaseModel):
    """Every knob; ``None`` means "nnU-Net's or the plan's own value"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: Count | None = knob(None, [RUN_LENGTH], "total epochs", "1000 (nnU-Net), or the `_Xepochs` variant's",
                                "integer >= 1")
    iterations: Count | None = knob(None, [RUN_LENGTH], "training iterations per epoch", "250", "integer >= 1")
    val_iterations: Count | None = knob(None, [RUN_LENGTH], "validation iterations per epoch", "50", "integer >= 1")
    save_every: Count | None = knob(None, [RUN_LENGTH], "write `checkpoint_latest.pth` every N epochs", "50",
                                    "integer >= 1")
    final_validation: FinalValidation = knob(
        "on", [RUN_LENGTH], "nnU-Net's validation right after training (`--val_best` included): `on`, or `off` to "
        "skip it (`nnUNetv2_train ... --val` still runs it), e.g. for pre-training on fold `all`, where it predicts "
        "every training case",
        "on (nnU-Net's)", " | ".join(FINAL_VALIDATIONS))
    augment_on: AugmentPlace = knob(
        "workers", [RUN_LENGTH], "where the training augmentation runs: `workers` (nnU-Net's loader workers, per "
        "sample) or `device` (the workers only load, crop and stack; nnU-Net's pipeline, batched, runs on the whole "
        "batch in the training process on the training device); a trainer with its own `get_training_transforms` "
        "is refused with `device`", "workers (nnU-Net's)", " | ".join(AUGMENT_PLACES))
    growth_share: Number | None = knob(None, [PATCH_CURRICULUM], "share of epochs spent before the planned patch",
                                       "even split per stage, as the papers", "number in (0, 1)")
    min_patch: PatchSize | None = knob(None, [PATCH_SIZES], "smallest patch, e.g. `64,64,64`",
                                       "the smallest the network accepts", "2 or 3 sizes")
    growth_order: GrowthOrder = knob(
        "ratio", [PATCH_SIZES], "which axis grows next: `ratio` (furthest behind its planned size), `smallest` (the "
        "2025 code: smallest grown size), `round_robin` (the 2024 code)", "ratio", " | ".join(GROWTH_ORDERS))
    augmentation: AugmentationRegime = knob(
        "planned", [PATCH_SIZES], "augmentation regime of the smaller patches: `planned` (the planned patch's dummy-2D "
        "decision and rotation range at every stage) or `per_patch` (nnU-Net's rule applied to each stage's patch, as "
        "the published code)", "planned", " | ".join(AUGMENTATION_REGIMES))
    max_batch: Count | None = knob(None, [PERFORMANCE_BATCH], "Performance: hard batch cap (a safety setting)",
                                   "none: the voxel budget is the limit", "integer >= 1")
    batch_budget: Positive = knob(1.0, [PERFORMANCE_BATCH],
                                  "Performance: voxel budget as a multiple of the planned batch x patch", "1.0",
                                  "number > 0")
    memory_target: Positive | None = knob(
        None, [PERFORMANCE_BATCH], "Performance: device memory target in GiB; the voxel budget becomes what the "
        "memory estimate fits into it (weights, gradients and optimiser state first; pgps/memory_target.py), checked "
        "against the measured peak of each stage's first iterations on CUDA; refused with NNPROG_BATCH_BUDGET",
        "none: the planned footprint (NNPROG_BATCH_BUDGET)", "number > 0")
    batch_sampling: BatchSampling = knob(
        "volumes", [PERFORMANCE_BATCH], "Performance: `volumes` (the planned number of cases per batch, several "
        "crops from each, as the 2025 code), `cases` (every crop from its own case), `sqrt` (ceil(sqrt(b)) crops per "
        "case: the 2025 code's `_Performance_SQRT`) or `single_volume` (every crop from one case: "
        "`_Performance_SingleVolume`)", "volumes",
        " | ".join(BATCH_SAMPLINGS))
    target_dice: Fraction | None = knob(None, [STOP_AT_DICE], "stop when the validation Dice reaches it",
                                        "none (log only)", "number in (0, 1]")
    check_every: Count = knob(5, [STOP_AT_DICE], "epochs between Dice checks", "5", "integer >= 1")
    dice_method: DiceMethod = knob(
        "sliding_window", [STOP_AT_DICE],
        "`sliding_window` (real Dice on the fold's validation cases) or `pseudo_dice` (cheap: the epoch's "
        "validation patches)", "sliding_window", " | ".join(DICE_METHODS))
    set1_share: Fraction = knob(0.5, [CASE_SUBSET], "PDL: Set 1 size as a share of the fold's training cases",
                                "0.5 (not published; our choice)", "number in (0, 1]")
    set1_epochs: Count = knob(10, [CASE_SUBSET], "PDL: epochs on Set 1 alone", "10 (the CT abstract's 10 epochs)",
                              "integer >= 1")
    pdl_seed: Seed = knob(0, [RANDOM_SUBSET], "PDL_Random: seed of the random Set 1", "0", "integer >= 0")
    ranking: str | None = knob(None, [SIMILARITY_RANKING], "PDL: ranking JSON",
                               "`$nnUNet_preprocessed/DatasetXXX/similarity_ranking_<DATA_IDENTIFIER>_fold<F>.json`, "
                               "e.g. `similarity_ranking_nnUNetPlans_3d_fullres_fold0.json`", "file path")
    finetune_lr: Positive = knob(1e-3, [FINETUNE_SCHEDULE], "fine-tuning: peak learning rate (nnU-Net: 1e-2 from "
                                 "scratch)", "1e-3 (nnssl, STU-Net)", "number > 0")
    warmup_epochs: NonNegative | None = knob(
        None, [FINETUNE_SCHEDULE], "fine-tuning: epochs of linear warmup of the whole network before the poly decay",
        "a tenth of the epochs, at most 50 (nnssl)", "integer >= 0")
    head_epochs: Count = knob(10, [HEAD_PHASE], "HeadFirst: epochs training the segmentation heads alone",
                              "10 (MultiTalent)", "integer >= 1")
    head_lr: Positive = knob(5e-4, [HEAD_PHASE], "HeadFirst: peak learning rate of the heads-only phase",
                             "5e-4 (MultiTalent)", "number > 0")
    frozen_epochs: Count | None = knob(None, [FROZEN_PHASE], "FrozenEncoder: epochs with the pre-trained encoder "
                                       "frozen", "a tenth of the epochs, at most 50 (nnssl)", "integer >= 1")
    # --- benchmark protocol (issue 24): the seed of a run's random generators ----------------------------------
    seed: Seed | None = knob(
        None, [RUN_LENGTH], "seed of python's, numpy's and torch's generators in the training process, set at the "
        "run's start (before the network is built) and again at each `--c` (seed and epoch); nnU-Net's augmentation "
        "workers draw their own (set nnUNet_n_proc_DA=0 to sample and augment in the seeded process)",
        "none (nnU-Net seeds nothing)", "integer >= 0")
    # --- PDL ranking per fold and metric (issue 23, ranking part) ---
    ranking_metric: RankingMetric = knob(
        "combined", [SIMILARITY_RANKING], "PDL: the ranking's order Set 1 is taken from: `combined` (mean of the MSE, "
        "PSNR, SSIM and UQI ranks) or one of the abstracts' metrics alone (`mse`, `psnr`, `ssim`)", "combined",
        " | ".join(RANKING_METRICS))
    # --- the published PGPS variants (issue 24: the papers as they were run) ---------------------------------------
    random_crops: RandomCrops = knob(
        "uniform", [PATCH_SIZES], "where a case's random (not foreground-forced) crops lie: `uniform` (nnU-Net's), "
        "`grid` (jittered cells of a grid over the case: the 2025 code's `_Performance_GridSampler`) or "
        "`poisson_disk` (about half a patch apart: `_Performance_PoissonDisk`)", "uniform",
        " | ".join(RANDOM_CROP_PLACEMENTS))
    foreground_jitter: JitterShare = knob(
        0.0, [PATCH_SIZES], "shift of a foreground-centred crop: in half of the draws up to this share of the patch "
        "per axis (the 2025 code's `SpatialJitterV2`: 0.25); 0 keeps nnU-Net's centred crop",
        "0 (nnU-Net's)", "number in [0, 0.5)")
    stage_checkpoints: StageCheckpoints = knob(
        "off", [PATCH_CURRICULUM], "`on`: also write `checkpoint_stageK_PATCH.pth` at the end of each patch stage "
        "(the 2024 code); `--c` never reads them", "off", " | ".join(STAGE_CHECKPOINTS))
    optimizer: Optimizer = knob(
        "sgd", [PERFORMANCE_BATCH], "Performance: `sgd` (nnU-Net's, or the network recipe's) or `lamb` (LAMB, You "
        "et al. 2019, for the large batches of small patches; the 2025 code's `_Lamb1e3`)", "sgd",
        " | ".join(OPTIMIZERS))
    lamb_lr: Positive = knob(1e-3, [PERFORMANCE_BATCH], "Performance with `lamb`: peak learning rate (poly decay)",
                             "1e-3 (the 2025 code's `_Lamb1e3`)", "number > 0")
    # --- issue 25: measured step times choose the PGPS schedule (pgps/profile.py, hooks/measured_schedule.py) ---
    measured_schedule: Annotated[str, BeforeValidator(on_off), AfterValidator(_choice(("on", "off")))] = knob(
        "off", [PATCH_CURRICULUM], "PGPS: `on` leaves out the stages whose measured step saves less than 10% against "
        "the next larger kept stage (their epochs go to that stage), from this device's profile (`nnprog profile`; "
        "made at the start of the run if none matches); the stages are fixed in the run's record",
        "off (the voxel schedule)", "on | off")
    # --- issue 25: a time budget sets the run length (stopping/time_budget.py, RunLengthMixin) ---
    time_budget: Positive | None = knob(
        None, [RUN_LENGTH], "hours of training (the epochs' wall time, validation included): before each epoch the "
        "run sets its number of epochs (never more than it started with) from the epochs it measured, so the "
        "learning rate anneals to its end at the budget; PGPS stage boundaries scale with the length",
        "none (the epochs are the length)", "number > 0")

    # --- the record form -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = self.model_dump()
        if self.min_patch is not None:
            data["min_patch"] = list(self.min_patch)
        return data

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "stored settings") -> ProgressiveSettings:
        """Settings from a record; unknown keys (written by other package versions) are left out."""
        known = {k: v for k, v in data.items() if k in cls.model_fields}
        return validate(cls, known, where, name_of=env_name)

    def replace(self, **changes: Any) -> ProgressiveSettings:
        return validate(type(self), {**self.model_dump(), **changes}, "settings", name_of=env_name)

    def differences(self, other: ProgressiveSettings) -> dict[str, tuple]:
        """Fields whose values differ: name -> (self's value, other's value)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}

    def knobs_read_by(self, features: Iterable[str]) -> dict[str, Any]:
        """Knob name -> value for the knobs a trainer reading ``features`` uses (its start-up log lists these)."""
        data = self.to_dict()
        return {env_name(field): data[field] for field in fields_read_by(features)}

    def set_knobs(self, defaults: ProgressiveSettings | None = None) -> dict[str, Any]:
        """Knob name -> value for every field that differs from ``defaults`` (default: the table's)."""
        base = (defaults or ProgressiveSettings()).to_dict()
        return {env_name(k): v for k, v in self.to_dict().items() if v != base[k]}


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def knob_table() -> tuple[Knob, ...]:
    """The rows of the table, in field order."""
    rows = []
    for name, info in ProgressiveSettings.model_fields.items():
        extra = info.json_schema_extra or {}
        rows.append(Knob(name, info.description or "", tuple(extra["readers"]), extra["default_text"],
                         extra["type_text"]))
    return tuple(rows)


def fields_read_by(features: Iterable[str]) -> tuple[str, ...]:
    """The fields (in table order) that a trainer reading ``features`` uses."""
    features = set(features)
    return tuple(row.field for row in knob_table() if features.intersection(row.readers))


KNOB_NAMES: tuple[str, ...] = tuple(knob.env_name for knob in knob_table())


@dataclass(frozen=True)
class EnvironmentKnobs:
    """The ``NNPROG_*`` variables of an environment: their values and the problems found in them."""

    values: dict[str, str]  # field -> text, for known, non-empty knobs
    unknown: tuple[str, ...]  # NNPROG_* names that are no knob

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> EnvironmentKnobs:
        environ = os.environ if environ is None else environ
        fields = {env_name(f): f for f in ProgressiveSettings.model_fields}
        values, unknown = {}, []
        for name, text in environ.items():
            if name in fields:
                if text.strip():
                    values[fields[name]] = text.strip()
            elif is_unknown_knob_name(name):  # NNPROG_EPOCH, and nnprog_epochs, NNPROGEPOCHS, NN_PROG_EPOCHS
                unknown.append(name)
        return cls(values, tuple(sorted(unknown)))

    def settings(self, defaults: ProgressiveSettings | None = None, where: str = "NNPROG settings"
                 ) -> ProgressiveSettings:
        """``defaults`` (default: the table's) with these knobs on top; one :class:`ProgressiveConfigError` naming
        ``where`` and every bad value (the ``unknown`` names are not looked at here)."""
        data = {**(defaults or ProgressiveSettings()).model_dump(), **self.values}
        return validate(ProgressiveSettings, data, where, name_of=env_name)

    def ignored_by(self, trainer_name: str, features: Iterable[str]) -> list[str]:
        """These knobs that ``trainer_name`` (reading ``features``) would ignore, as messages."""
        features = set(features)
        return [f"{row.env_name} is set but {trainer_name} does not read it (it is read by {' / '.join(row.readers)} "
                f"trainers); unset it (`unset {row.env_name}`) or pick a trainer that uses it"
                for row in knob_table() if row.field in self.values and not features.intersection(row.readers)]


def _squashed(name: str) -> str:
    """A variable name without case and underscores: ``nn_prog_Epochs`` -> ``NNPROGEPOCHS``."""
    return name.upper().replace("_", "")


_SQUASHED_PREFIX = _squashed(ENV_PREFIX)


def is_unknown_knob_name(name: str) -> bool:
    """True for a variable meant as a knob that is none: it starts with ``NNPROG`` once case and underscores are
    ignored (``NNPROG_EPOCH``, but also ``nnprog_epochs``, ``NNPROGEPOCHS``, ``NN_PROG_EPOCHS``) and is not
    spelt exactly as a knob. Such a variable is refused, never silently ignored."""
    return name not in KNOB_NAMES and _squashed(name).startswith(_SQUASHED_PREFIX)


def closest_knob_name(name: str) -> str | None:
    """The knob ``name`` was probably meant to be: the one it equals without case and underscores, else the one
    whose name after the prefix is closest (difflib), else None."""
    by_rest = {_squashed(knob_name)[len(_SQUASHED_PREFIX):]: knob_name for knob_name in KNOB_NAMES}
    rest = _squashed(name)[len(_SQUASHED_PREFIX):] if _squashed(name).startswith(_SQUASHED_PREFIX) else name
    if rest in by_rest:
        return by_rest[rest]
    close = difflib.get_close_matches(rest, list(by_rest), n=1, cutoff=0.6)
    return by_rest[close[0]] if close else None


def unknown_knob_message(name: str, in_environment: bool = True) -> str:
    """``NNPROG_EPOCH is not a knob; did you mean NNPROG_EPOCHS?`` (also for ``nnprog_epochs`` and the like); with
    how to unset it where it is an environment variable (``in_environment``; in a spec the fix is the name)."""
    close = closest_knob_name(name)
    hint = f"did you mean {close}?" if close else f"the knobs are {', '.join(KNOB_NAMES)}"
    spelling = "" if name.startswith(ENV_PREFIX) else (
        f" (knob names are upper-case and start with {ENV_PREFIX}, spelt exactly as in `nnprog knobs`)")
    unset = f" (unset it: `unset {name}`)" if in_environment else ""
    return f"{name} is not a knob of nnunet-progressive{spelling}; {hint}{unset}"


def settings_from_env(defaults: ProgressiveSettings | None = None, environ: Mapping[str, str] | None = None,
                      check_unknown: bool = True) -> ProgressiveSettings:
    """``defaults`` with every NNPROG_* variable that is set (and non-empty) applied on top.

    Raises one :class:`ProgressiveConfigError` naming every bad value, and every ``NNPROG_*`` name that is no
    knob (with the closest knob name) unless ``check_unknown`` is False.
    """
    knobs = EnvironmentKnobs.read(environ)
    if check_unknown and knobs.unknown:
        raise ProgressiveConfigError("; ".join(unknown_knob_message(n) for n in knobs.unknown))
    return knobs.settings(defaults)


def problems_for_trainer(trainer_name: str, features: Iterable[str], environ: Mapping[str, str] | None = None
                         ) -> list[str]:
    """Knobs set in the environment that ``trainer_name`` (reading ``features``) would ignore, as messages."""
    return EnvironmentKnobs.read(environ).ignored_by(trainer_name, features)


def env_variable_help(columns: int | None = None) -> str:
    """Every knob, its meaning, default and readers, wrapped to ``columns`` (default: the terminal's width)."""
    import shutil
    import textwrap

    columns = max(60, columns or shutil.get_terminal_size().columns)
    blocks = []
    for row in knob_table():
        text = (f"{_plain(row.help)} (default: {_plain(row.default_text)}; read by: {', '.join(row.readers)})")
        blocks.append(row.env_name + "\n" + textwrap.fill(text, columns, initial_indent="    ",
                                                          subsequent_indent="    ", break_on_hyphens=False))
    return "\n".join(blocks)


def readme_table() -> str:
    """The knob table as markdown (the README's copy is checked against this by a test)."""
    lines = ["| variable | meaning | default | read by |", "|---|---|---|---|"]
    lines += [f"| `{row.env_name}` | {row.help} | {row.default_text} | {', '.join(row.readers)} |"
              for row in knob_table()]
    return "\n".join(lines)


def _plain(text: str) -> str:
    return text.replace("`", "")
