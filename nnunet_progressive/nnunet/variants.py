"""The one factory of trainer classes: a catalogue entry (:mod:`.catalogue`) in, the class nnU-Net trains out.

It orders the entry's mixins by :data:`~.hooks.run_state.MIXIN_ORDER` itself (a catalogue entry lists them in any
order), and refuses a composition in which a mixin that REPLACES an nnU-Net hook (``replaces_hooks``: it builds the
network or the optimiser, or it is the training step, without calling ``super()``) stands before another class of the
package that overrides the same hook: that class's hook would silently never run. Two mixins that replace the same
hook are refused for the same reason.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from nnunet_progressive.nnunet.catalogue import TINY_PRIMUS_TRAINER, TrainerEntry, entries
from nnunet_progressive.nnunet.hooks.run_state import MIXIN_ORDER


def mixin_classes() -> dict[str, type]:
    """The package's mixins by name (those a catalogue entry may list)."""
    from nnunet_progressive.nnunet.hooks.architectures import (
        PrimusGridMixin,
        PrimusInputMixin,
        RecipeMixin,
        RecipeStepMixin,
        TransformerNetworkMixin,
    )
    from nnunet_progressive.nnunet.hooks.pdl import ProgressiveDataMixin
    from nnunet_progressive.nnunet.hooks.pgps import ProgressivePatchMixin, RandomPatchSizeMixin
    from nnunet_progressive.nnunet.hooks.run_state import RunLengthMixin
    from nnunet_progressive.nnunet.hooks.stopping import StopAtDiceMixin
    from nnunet_progressive.nnunet.hooks.transfer import FineTuningMixin

    return {cls.__name__: cls for cls in (
        TransformerNetworkMixin, PrimusGridMixin, PrimusInputMixin, RecipeMixin, StopAtDiceMixin, FineTuningMixin,
        ProgressiveDataMixin, ProgressivePatchMixin, RandomPatchSizeMixin, RunLengthMixin, RecipeStepMixin)}


def ordered_mixins(names: Iterable[str]) -> list[str]:
    """``names`` in the stated hook order (MIXIN_ORDER); an unknown name is an error."""
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in MIXIN_ORDER]
    if unknown:
        raise TypeError(f"{unknown} are not in MIXIN_ORDER (nnunet/hooks/run_state.py); state their place there first")
    return sorted(names, key=MIXIN_ORDER.index)


def replacement_conflicts(mro: Iterable[type]) -> list[str]:
    """Why the package's classes in ``mro`` would skip one another's hooks (empty: they would not).

    A class that replaces a hook (``replaces_hooks`` in its own body) must be the last of the package's classes
    that override it; two classes that both replace it are a conflict in any order.
    """
    ours = [c for c in mro if c.__module__.startswith("nnunet_progressive")]
    problems = []
    for position, cls in enumerate(ours):
        for hook in vars(cls).get("replaces_hooks", ()):
            for later in ours[position + 1:]:
                if hook in vars(later):
                    kind = "also replaces it" if hook in vars(later).get("replaces_hooks", ()) else "would never run"
                    problems.append(f"{cls.__name__} replaces {hook} (no super() call), and "
                                    f"{later.__name__}.{hook} after it {kind}")
    return problems


def compose(name: str, mixins: Iterable[str], base: type, attributes: dict, module: str, doc: str,
            classes: dict[str, type] | None = None) -> type:
    """The trainer class ``name``: the mixins in MIXIN_ORDER, then ``base``; refused if a hook would be skipped."""
    classes = mixin_classes() if classes is None else classes
    bases = tuple(classes[m] for m in ordered_mixins(mixins)) + (base,)
    trainer = type(name, bases, {**attributes, "__module__": module, "__qualname__": name, "__doc__": doc})
    problems = replacement_conflicts(trainer.__mro__)
    if problems:
        raise TypeError(f"{name}: " + "; ".join(problems))
    return trainer


def network_attributes(entry: TrainerEntry) -> dict:
    """Class attributes of the entry's network: input rule, specs and recipe (MONAI transformers), Primus' memory."""
    network = entry.network
    if network is None:
        return {}
    from nnunet_progressive.architectures import specs
    from nnunet_progressive.architectures.input_rules import RULES

    if network.spec is not None:  # a MONAI transformer
        spec = getattr(specs, network.spec)
        rule = RULES[network.recipe.architecture]
        return {"input_rule": rule, "network_spec": spec, "memory_spec": spec, "recipe": network.recipe}
    if "PrimusGridMixin" in entry.mixins:  # PGPS Performance needs the size's memory per sample
        from nnunet_progressive.nnunet.hooks.architectures import primus_memory_spec

        memory = specs.TINY_PRIMUS if network.base == TINY_PRIMUS_TRAINER else primus_memory_spec(network.base)
        return {"memory_spec": memory}
    return {}


def base_trainer(name: str, built: dict[str, type]) -> type | None:
    """The nnU-Net trainer named ``name`` (or one built before); None where this nnU-Net does not ship it."""
    if name in built:
        return built[name]
    if name == "nnUNetTrainer":
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

        return nnUNetTrainer
    from nnunetv2.training.nnUNetTrainer.primus import primus_trainers

    if name.startswith("nnUNet_PrimusV3") and getattr(primus_trainers, "PrimusV3S", None) is None:
        return None  # nnU-Net 2.8.1 defines the V3 trainers, but they need PrimusV3 in dynamic_network_architectures
    return getattr(primus_trainers, name, None)


def build_trainer(entry: TrainerEntry, built: dict[str, type], classes: dict[str, type]) -> type | None:
    """The class of one catalogue entry (None: its nnU-Net base is not installed)."""
    base = base_trainer(entry.base, built)
    if base is None:
        return None
    module = f"nnunet_progressive_trainers.{entry.module}"
    attributes: dict = {**dict(entry.attributes), **network_attributes(entry)}
    if entry.reads_knobs:
        attributes["default_settings"] = entry.default_settings()
    if entry.name == TINY_PRIMUS_TRAINER:
        from nnunet_progressive.architectures.specs import TINY_PRIMUS
        from nnunet_progressive.nnunet.hooks.architectures import primus_builder

        attributes["build_network_architecture"] = primus_builder(TINY_PRIMUS)
    return compose(entry.name, entry.mixins, base, attributes, module, entry.changes + ".", classes)


def build_trainers(method: str, built: dict[str, type] | None = None,
                   on_missing: Callable[[TrainerEntry], None] | None = None) -> dict[str, type]:
    """Every trainer of ``method`` by name (for a trainer module's ``globals()``)."""
    built = {} if built is None else built
    classes = mixin_classes()
    trainers = {}
    for entry in entries(method):
        trainer = build_trainer(entry, built, classes)
        if trainer is None:
            if on_missing is not None:
                on_missing(entry)
            continue
        built[entry.name] = trainers[entry.name] = trainer
    return trainers


__all__ = ("build_trainers", "compose", "ordered_mixins", "replacement_conflicts")
