"""Every trainer of this package as a pure description: name, nnU-Net base, mixins, method, what it changes and
its default settings.

Importable without torch or nnU-Net (``tests/test_nnunet_variants.py`` checks): ``nnprog trainers``, ``nnprog
schedule``, the benchmark's epoch bar and the trainer lookup read it; the factory (:mod:`.variants`) builds the
classes nnU-Net trains from it, so a name, its mixins and its defaults are written here once.

Names follow one grammar: ``<base>[_<method>...][_<N>epochs]``, e.g. ``nnUNetTrainer_Finetune_HeadFirst_PGPS_
Performance`` (fine-tuning with the heads first, patches growing as PGPS Performance). ``_<N>epochs`` variants
(nnU-Net's naming) take their N from :data:`EPOCH_VARIANTS`, one list for every method that has them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from nnunet_progressive.architectures.recipes import PRIMUS_RECIPE, SWIN_UNETR_RECIPE, UNETR_RECIPE, Recipe
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import (
    CASE_SUBSET,
    FINETUNE_SCHEDULE,
    FROZEN_PHASE,
    HEAD_PHASE,
    PATCH_CURRICULUM,
    PATCH_SIZES,
    PERFORMANCE_BATCH,
    RANDOM_SUBSET,
    RUN_LENGTH,
    SIMILARITY_RANKING,
    STOP_AT_DICE,
    ProgressiveSettings,
)

METHODS: dict[str, str] = {  # method -> the trainer module (trainers/) nnU-Net imports it from
    "pgps": "nnprog_pgps",
    "stopping": "nnprog_stop_at_dice",
    "pdl": "nnprog_pdl",
    "transfer": "nnprog_transfer",
    "architectures": "nnprog_architectures",
}
EPOCH_VARIANTS: tuple[int, ...] = (50, 100, 250, 500, 1000)
FINETUNE_EPOCHS = 150  # nnssl's 150-epoch fine-tuning preset; nnU-Net trains 1000 from scratch
FINETUNE_RECIPES: dict[str, tuple[str, str]] = {  # name suffix -> (recipe, what it changes)
    "Finetune": ("finetune", "fine-tuning of all layers: linear warmup, then poly decay"),
    "Finetune_HeadFirst": ("head_first", "fine-tuning, the new segmentation heads alone first (MultiTalent), then "
                                         "warmup of all layers, then poly"),
    "Finetune_FrozenEncoder": ("frozen_encoder", "fine-tuning with the pre-trained encoder frozen while decoder and "
                                                 "heads train (nnssl), then warmup of all layers, then poly"),
}
OPTIMISERS = {"adamw": "AdamW", "sgd": "SGD"}
PGPS_MODES: dict[str, str] = {"PGPS_Efficiency": "efficiency", "PGPS_Performance": "performance"}
PDL_ORDERS: dict[str, tuple[str, str]] = {
    "PDL": ("dissimilar_first", "PDL: the most dissimilar training cases (Set 1) alone first, then all; stops at a "
                                "target Dice"),
    "PDL_SimilarFirst": ("similar_first", "PDL control: the most similar cases as Set 1; stops at a target Dice"),
    "PDL_Random": ("random", "PDL control: a random Set 1 of the same size (NNPROG_PDL_SEED); stops at a target "
                             "Dice"),
}


@dataclass(frozen=True)
class Network:
    """A network other than the plan's U-Net: a MONAI transformer (``spec``: its name in architectures.specs) or a
    Primus (``base``: the nnU-Net trainer that builds it), with the recipe it trains with."""

    key: str
    what: str
    recipe: Recipe
    spec: str | None = None  # MONAI transformers: the spec's name in architectures.specs
    base: str | None = None  # Primus: nnU-Net's trainer (or the package's nnUNetTrainer_TinyPrimus)
    requires: str | None = None  # what must be installed for the base to exist


TRANSFORMERS: tuple[Network, ...] = (
    Network("UNETR", "MONAI UNETR-B", UNETR_RECIPE, spec="UNETR_B"),
    Network("SwinUNETR", "MONAI SwinUNETR (feature size 48)", SWIN_UNETR_RECIPE, spec="SWIN_UNETR_48"),
    Network("TinyUNETR", "a tiny UNETR (CPU tests and benchmarks)", UNETR_RECIPE, spec="TINY_UNETR"),
    Network("TinySwinUNETR", "a tiny SwinUNETR (CPU tests and benchmarks)", SWIN_UNETR_RECIPE,
            spec="TINY_SWIN_UNETR"),
)
PRIMUS_BASES: tuple[Network, ...] = (
    *(Network(f"nnUNet_Primus{v}{sep}{size}_Trainer", f"nnU-Net's Primus{v}-{size}", PRIMUS_RECIPE,
              base=f"nnUNet_Primus{v}{sep}{size}_Trainer",
              requires="PrimusV3 in dynamic_network_architectures" if v == "V3" else None)
      for v, sep in (("", "_"), ("V2", ""), ("V3", "")) for size in "SBML"),
    Network("nnUNetTrainer_TinyPrimus", "a tiny Primus (CPU tests and benchmarks)", PRIMUS_RECIPE,
            base="nnUNetTrainer_TinyPrimus"),
)
TINY_PRIMUS_TRAINER = "nnUNetTrainer_TinyPrimus"  # itself a trainer of the package: nnU-Net's Primus, shrunk


@dataclass(frozen=True)
class TrainerEntry:
    """One trainer: what the factory builds and what `nnprog trainers` shows."""

    name: str
    method: str  # a key of METHODS
    base: str  # the nnU-Net trainer it extends ("nnUNetTrainer", a Primus trainer, or one of this catalogue)
    mixins: tuple[str, ...]  # the package's mixins (names in nnunet/run_state.MIXIN_ORDER); the factory orders them
    changes: str  # what it changes against nnU-Net, one line
    attributes: tuple[tuple[str, str], ...] = ()  # pgps_mode, pdl_order, finetune_recipe
    network: Network | None = None
    settings: tuple[tuple[str, Any], ...] = ()  # default settings that differ from ProgressiveSettings()
    requires: str | None = None

    @property
    def module(self) -> str:
        """The trainer module (in ``nnunet_progressive_trainers``) that defines it."""
        return METHODS[self.method]

    @property
    def reads_knobs(self) -> bool:
        """False for nnUNetTrainer_TinyPrimus: nnU-Net's Primus trainer shrunk, without the package's mixins."""
        return bool(self.mixins)

    def attribute(self, key: str, default: str | None = None) -> str | None:
        return dict(self.attributes).get(key, default)

    def default_settings(self) -> ProgressiveSettings:
        """The settings a run starts from before its ``NNPROG_*`` knobs (``_Xepochs``: its epochs; fine-tuning:
        150 epochs and, on an architecture's recipe, its learning rate)."""
        return ProgressiveSettings(**dict(self.settings))

    @property
    def epochs(self) -> int | None:
        """Its default number of epochs; None: nnU-Net's (1000)."""
        return dict(self.settings).get("epochs")

    def knob_features(self) -> frozenset[str]:
        """The knob features it reads (core/knobs.py), as its class's ``knob_features()`` says (a test holds the
        two together)."""
        if not self.reads_knobs:
            return frozenset()
        features = {RUN_LENGTH}
        mixins = set(self.mixins)
        if "StopAtDiceMixin" in mixins:
            features.add(STOP_AT_DICE)
        if "ProgressiveDataMixin" in mixins:
            features |= {CASE_SUBSET, RANDOM_SUBSET if self.attribute("pdl_order") == "random" else SIMILARITY_RANKING}
        if mixins & {"ProgressivePatchMixin", "PrimusGridMixin", "RandomPatchSizeMixin"}:
            features.add(PATCH_SIZES)
        if mixins & {"ProgressivePatchMixin", "PrimusGridMixin"}:
            features.add(PATCH_CURRICULUM)
            if self.attribute("pgps_mode") == "performance":
                features.add(PERFORMANCE_BATCH)
        if "FineTuningMixin" in mixins:
            features.add(FINETUNE_SCHEDULE)
            features |= {"head_first": {HEAD_PHASE}, "frozen_encoder": {FROZEN_PHASE}}.get(
                self.attribute("finetune_recipe"), set())
        return frozenset(features)

    @property
    def patch_stages(self) -> bool:
        """True for trainers with PGPS stages or RPSS patch pools (`nnprog schedule` prints them)."""
        return bool(set(self.mixins) & {"ProgressivePatchMixin", "RandomPatchSizeMixin", "PrimusGridMixin"})


# ------------------------------------------------------------------------------------------- the catalogue

def _epoch_variants(entry: TrainerEntry) -> Iterator[TrainerEntry]:
    for epochs in EPOCH_VARIANTS:
        yield TrainerEntry(f"{entry.name}_{epochs}epochs", entry.method, entry.base, entry.mixins,
                           f"{entry.changes}; {epochs} epochs", entry.attributes,
                           entry.network, (*[s for s in entry.settings if s[0] != "epochs"], ("epochs", epochs)),
                           entry.requires)


def _pgps_entries() -> Iterator[TrainerEntry]:
    plain = (
        TrainerEntry("nnUNetTrainer_ConstantPatch", "pgps", "nnUNetTrainer", ("RunLengthMixin",),
                     "nnU-Net's constant planned patch and batch, with the NNPROG_* run-length knobs (the control)"),
        TrainerEntry("nnUNetTrainer_PGPS_Efficiency", "pgps", "nnUNetTrainer", ("ProgressivePatchMixin",),
                     "PGPS Efficiency: patches grow to the planned size at the planned batch size",
                     (("pgps_mode", "efficiency"),)),
        TrainerEntry("nnUNetTrainer_PGPS_Performance", "pgps", "nnUNetTrainer", ("ProgressivePatchMixin",),
                     "PGPS Performance: patches grow, with larger batches while they are small (within the planned "
                     "footprint)", (("pgps_mode", "performance"),)),
        TrainerEntry("nnUNetTrainer_RPSS", "pgps", "nnUNetTrainer", ("RandomPatchSizeMixin",),
                     "random patch size sampling (ablation): one of the PGPS stage sizes drawn per batch"),
    )
    for entry in plain:
        yield entry
        yield from _epoch_variants(entry)


def _stopping_entries() -> Iterator[TrainerEntry]:
    yield TrainerEntry("nnUNetTrainer_StopAtDice", "stopping", "nnUNetTrainer", ("StopAtDiceMixin",),
                       "nnU-Net's constant patch; stops at NNPROG_TARGET_DICE (writes time_to_dice.json)")
    for name, mixin, attributes, what in (
        ("PGPS_Efficiency", "ProgressivePatchMixin", (("pgps_mode", "efficiency"),), "PGPS Efficiency"),
        ("PGPS_Performance", "ProgressivePatchMixin", (("pgps_mode", "performance"),), "PGPS Performance"),
        ("RPSS", "RandomPatchSizeMixin", (), "RPSS"),
    ):
        yield TrainerEntry(f"nnUNetTrainer_{name}_StopAtDice", "stopping", "nnUNetTrainer",
                           ("StopAtDiceMixin", mixin), f"{what}; stops at NNPROG_TARGET_DICE", attributes)


def _pdl_entries() -> Iterator[TrainerEntry]:
    for name, (order, what) in PDL_ORDERS.items():
        yield TrainerEntry(f"nnUNetTrainer_{name}", "pdl", "nnUNetTrainer",
                           ("StopAtDiceMixin", "ProgressiveDataMixin"), what, (("pdl_order", order),))
    yield TrainerEntry("nnUNetTrainer_PDL_PGPS_Efficiency", "pdl", "nnUNetTrainer",
                       ("StopAtDiceMixin", "ProgressiveDataMixin", "ProgressivePatchMixin"),
                       "PDL and PGPS Efficiency together: Set 1 first while patches grow; stops at a target Dice",
                       (("pdl_order", "dissimilar_first"), ("pgps_mode", "efficiency")))


def _finetune_settings(recipe: Recipe | None, **more: Any) -> tuple[tuple[str, Any], ...]:
    """Fine-tuning's defaults: 150 epochs; on an architecture's recipe its learning rate (and half of it for the
    heads-only phase, as 5e-4 is half of 1e-3 for nnU-Net's SGD)."""
    settings: dict[str, Any] = {"epochs": FINETUNE_EPOCHS}
    if recipe is not None:
        settings |= {"finetune_lr": recipe.learning_rate, "head_lr": recipe.learning_rate / 2}
    return tuple({**settings, **more}.items())


def _transfer_entries() -> Iterator[TrainerEntry]:
    for suffix, (recipe, what) in FINETUNE_RECIPES.items():
        name = f"nnUNetTrainer_{suffix}"
        attributes = (("finetune_recipe", recipe),)
        entry = TrainerEntry(name, "transfer", "nnUNetTrainer", ("FineTuningMixin",), what, attributes,
                             settings=_finetune_settings(None))
        yield entry
        for mode_name, mode in PGPS_MODES.items():
            yield TrainerEntry(f"{name}_{mode_name}", "transfer", "nnUNetTrainer",
                               ("FineTuningMixin", "ProgressivePatchMixin"),
                               f"{what}; patches grow as in nnUNetTrainer_{mode_name}",
                               (*attributes, ("pgps_mode", mode)),
                               settings=_finetune_settings(None))
        yield TrainerEntry(f"{name}_StopAtDice", "transfer", "nnUNetTrainer", ("StopAtDiceMixin", "FineTuningMixin"),
                           f"{what}; stops at NNPROG_TARGET_DICE",
                           attributes, settings=_finetune_settings(None))
        yield from _epoch_variants(entry)


def _architecture_entries() -> Iterator[TrainerEntry]:
    for network in TRANSFORMERS:
        name = f"nnUNetTrainer_{network.key}"
        own = ("TransformerNetworkMixin", "RecipeMixin", "RecipeStepMixin")
        yield TrainerEntry(name, "architectures", "nnUNetTrainer", (*own, "RunLengthMixin"),
                           f"{network.what} with its published recipe; the planned patch adjusted to its input rule",
                           network=network)
        for mode_name, mode in PGPS_MODES.items():
            yield TrainerEntry(f"{name}_{mode_name}", "architectures", "nnUNetTrainer",
                               (*own, "ProgressivePatchMixin"),
                               f"{network.what} with PGPS {mode}: patches grow in steps of its input rule",
                               (("pgps_mode", mode),), network)
        yield from _architecture_finetuning(name, "nnUNetTrainer", own, network)
    yield TrainerEntry(TINY_PRIMUS_TRAINER, "architectures", "AbstractPrimus", (),
                       "a tiny Primus (embedding 48, depth 2) trained as nnU-Net's Primus trainers (CPU tests and "
                       "benchmarks)")
    for network in PRIMUS_BASES:
        base = network.base
        yield TrainerEntry(f"{base}_ConstantPatch", "architectures", base, ("PrimusInputMixin", "RunLengthMixin"),
                           f"{network.what}: the patch adjusted to multiples of 8, with the run-length knobs",
                           network=network, requires=network.requires)
        for mode_name, mode in PGPS_MODES.items():
            yield TrainerEntry(f"{base}_{mode_name}", "architectures", base,
                               ("PrimusGridMixin", "ProgressivePatchMixin"),
                               f"{network.what} with PGPS {mode}; position embeddings follow each stage's token grid",
                               (("pgps_mode", mode),), network, requires=network.requires)
        yield from _architecture_finetuning(base, base, ("PrimusInputMixin",), network)


def _architecture_finetuning(name: str, base: str, own: tuple[str, ...], network: Network) -> Iterator[TrainerEntry]:
    """Fine-tuning of an architecture: the recipe's phases, groups and freezing on its optimiser family and LR."""
    for suffix, (recipe, what) in FINETUNE_RECIPES.items():
        yield TrainerEntry(f"{name}_{suffix}", "architectures", base, (*own, "FineTuningMixin"),
                           f"{network.what}, {what}, on its recipe's {OPTIMISERS[network.recipe.optimizer]} at "
                           f"lr {network.recipe.learning_rate:g}",
                           (("finetune_recipe", recipe),), network, _finetune_settings(network.recipe),
                           network.requires)


def _build_catalogue() -> dict[str, TrainerEntry]:
    catalogue: dict[str, TrainerEntry] = {}
    for entry in (*_pgps_entries(), *_stopping_entries(), *_pdl_entries(), *_transfer_entries(),
                  *_architecture_entries()):
        if entry.name in catalogue:
            raise ValueError(f"{entry.name} is in the trainer catalogue twice")
        catalogue[entry.name] = entry
    return catalogue


CATALOGUE: Mapping[str, TrainerEntry] = _build_catalogue()


def trainer_entry(name: str) -> TrainerEntry | None:
    """The package's trainer named ``name``, or None (one of nnU-Net's, or another package's)."""
    return CATALOGUE.get(name)


def entries(method: str | None = None) -> list[TrainerEntry]:
    """The trainers of one method (all without ``method``), in the catalogue's order."""
    if method is not None and method not in METHODS:
        raise ProgressiveConfigError(f"unknown method {method!r}; the methods are {', '.join(METHODS)}")
    return [e for e in CATALOGUE.values() if method is None or e.method == method]


# --------------------------------------------------------------------------------------------- the listing

@dataclass(frozen=True)
class TrainerRow:
    """One line of `nnprog trainers`."""

    name: str
    method: str
    changes: str
    epochs: str
    knobs: list[str] = field(default_factory=list)


def trainer_rows(method: str | None = None) -> list[TrainerRow]:
    rows = []
    for entry in entries(method):
        changes = entry.changes + (f" (needs {entry.requires})" if entry.requires else "")
        rows.append(TrainerRow(entry.name, entry.method, changes, str(entry.epochs or 1000),
                               sorted(entry.knob_features())))
    return rows


PRIMUS_PLACEHOLDER = "<Primus>"


def compact_rows(method: str | None = None) -> list[TrainerRow]:
    """The trainers with families in one row each: ``X_<N>epochs`` for the epoch variants and ``<Primus>_...`` for
    the same trainer on each of nnU-Net's Primus trainers (every other name, e.g.
    ``nnUNetTrainer_Finetune_HeadFirst_PGPS_Performance``, is a row of its own)."""
    rows: dict[str, TrainerRow] = {}
    epochs_text = ", ".join(map(str, EPOCH_VARIANTS))
    for entry in entries(method):
        name, changes, epochs = entry.name, entry.changes, str(entry.epochs or 1000)
        network = entry.network
        if network is not None and network.base is not None and network.base != TINY_PRIMUS_TRAINER:
            name = name.replace(network.base, PRIMUS_PLACEHOLDER)
            changes = changes.replace(network.what, f"nnU-Net's {PRIMUS_PLACEHOLDER}")
        if entry.epochs in EPOCH_VARIANTS and name.endswith(f"_{entry.epochs}epochs"):
            name = name.removesuffix(f"_{entry.epochs}epochs") + "_<N>epochs"
            changes = changes.removesuffix(f"; {entry.epochs} epochs") + f"; N epochs (N: {epochs_text})"
            epochs = "N"
        if name not in rows:
            rows[name] = TrainerRow(name, entry.method, changes, epochs)
    return list(rows.values())


def primus_trainer_names() -> list[str]:
    return [n.base for n in PRIMUS_BASES if n.base != TINY_PRIMUS_TRAINER]


def trainers_markdown(method: str | None = None) -> str:
    """The trainers as markdown, one table per method, families compacted (:func:`compact_rows`); the README's
    trainer table (a test holds the two together)."""
    parts = []
    for name in METHODS if method is None else (method,):
        rows = compact_rows(name)
        count = len(entries(name))
        parts.append(f"**{name}** ({count} trainers, `trainers/{METHODS[name]}.py`)\n")
        if any(PRIMUS_PLACEHOLDER in r.name for r in rows):
            parts.append(f"`{PRIMUS_PLACEHOLDER}`: each of nnU-Net's Primus trainers, "
                         + ", ".join(f"`{n}`" for n in primus_trainer_names())
                         + " (V3: where dynamic_network_architectures ships PrimusV3).\n")
        parts.append("| trainer | what it changes | epochs |\n|---|---|---|")
        parts += [f"| `{r.name}` | {r.changes} | {r.epochs} |" for r in rows]
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def trainers_text(method: str | None = None, width: int = 100) -> str:
    """The trainers as plain text for a terminal (``width`` columns): name, epochs, what it changes."""
    import textwrap

    rows = trainer_rows(method)
    name_width = max(len(r.name) for r in rows)
    indent = " " * (name_width + 10)
    lines = [f"{'trainer':<{name_width}}  epochs  what it changes"]
    for r in rows:
        first = f"{r.name:<{name_width}}  {r.epochs:>6}  "
        wrapped = textwrap.wrap(r.changes, max(30, width - len(first))) or [""]
        lines.append(first + wrapped[0])
        lines += [indent + more for more in wrapped[1:]]
    lines.append(f"{len(rows)} trainers; train one with nnUNetv2_train D C F -tr NAME (after eval \"$(nnprog env)\")")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ settings of a new run

def new_run_settings(name: str, defaults: ProgressiveSettings, features: frozenset[str],
                     environ: Mapping[str, str] | None = None,
                     refusal: Callable[[str], str | None] | None = None) -> ProgressiveSettings:
    """The settings a new run of trainer ``name`` starts with: ``defaults`` plus the ``NNPROG_*`` environment.

    Strict: unknown ``NNPROG_*`` names (with the closest knob), invalid values, knobs the trainer does not read
    (``features``) and what ``refusal(augment_on)`` refuses are all reported in one :class:`ProgressiveConfigError`.
    Pure (no torch): ``nnprog schedule`` calls it with a catalogue entry, the trainers through
    ``run_state.settings_for_new_run``.
    """
    from nnunet_progressive.core.settings import resolve_new_run

    return resolve_new_run(name, defaults, features, environ,
                           None if refusal is None else (lambda settings: refusal(settings.augment_on)))


def entry_settings_for_new_run(entry: TrainerEntry, environ: Mapping[str, str] | None = None) -> ProgressiveSettings:
    """:func:`new_run_settings` of a catalogue trainer whose training transforms are nnU-Net's (its base is
    ``nnUNetTrainer``), without building its class."""
    if entry.base != "nnUNetTrainer":
        raise ValueError(f"{entry.name} builds on {entry.base}: resolve its settings from its class")
    return new_run_settings(entry.name, entry.default_settings(), entry.knob_features(), environ)
