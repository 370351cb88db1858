"""Transformer trainers with a constant patch and with PGPS (Efficiency, Performance).

- `nnUNetTrainer_UNETR`, `nnUNetTrainer_SwinUNETR` (MONAI: `pip install "nnunet-progressive[transformers]"`; this
  module imports without MONAI and the trainers say so when used) and their `_PGPS_Efficiency` /
  `_PGPS_Performance` variants; `nnUNetTrainer_TinyUNETR` and `nnUNetTrainer_TinySwinUNETR` (and variants) are the
  same architectures shrunk for CPU tests and the offline CPU benchmark.
- nnU-Net's own Primus trainers (`nnUNet_Primus_S_Trainer`, ..., `nnUNet_PrimusV3L_Trainer`) and
  `nnUNetTrainer_TinyPrimus` (a shrunk Primus trained like them) as `<name>_ConstantPatch`, `<name>_PGPS_Efficiency`,
  `<name>_PGPS_Performance`.
- nnU-Net's ResEnc presets need no trainer of their own: `nnUNetTrainer_PGPS_Efficiency -p nnUNetResEncUNetMPlans`.

Every trainer here adjusts the planned patch to its network's input rule; the variants are generated, not copied.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.primus import primus_trainers

from nnunet_progressive.architectures.input_rules import SWIN_UNETR, UNETR
from nnunet_progressive.architectures.recipes import SWIN_UNETR_RECIPE, UNETR_RECIPE
from nnunet_progressive.architectures.specs import (
    SWIN_UNETR_48,
    TINY_PRIMUS,
    TINY_SWIN_UNETR,
    TINY_UNETR,
    UNETR_B,
    PrimusSpec,
)
from nnunet_progressive.nnunet.architectures import (
    PrimusGridMixin,
    PrimusInputMixin,
    RecipeStepMixin,
    TransformerNetworkMixin,
    primus_builder,
    primus_memory_spec,
)
from nnunet_progressive.nnunet.pgps import ProgressivePatchMixin
from nnunet_progressive.nnunet.run_state import RunLengthMixin

PGPS_MODES = {"PGPS_Efficiency": "efficiency", "PGPS_Performance": "performance"}


def _define(name: str, bases: tuple, attributes: dict, doc: str) -> type:
    trainer = type(name, bases, {**attributes, "__module__": __name__, "__doc__": doc})
    globals()[name] = trainer
    return trainer


def _transformer_trainers(name: str, spec, rule, recipe, what: str) -> None:
    """``name`` (constant patch) and its two PGPS variants for a MONAI transformer."""
    network = type(f"{name}Network", (TransformerNetworkMixin,), {
        "input_rule": rule, "network_spec": spec, "memory_spec": spec, "recipe": recipe, "__module__": __name__})
    _define(f"nnUNetTrainer_{name}", (network, RunLengthMixin, RecipeStepMixin, nnUNetTrainer), {},
            f"{what}: the planned patch (adjusted to multiples of {rule.multiple}) throughout, its published recipe.")
    for suffix, mode in PGPS_MODES.items():
        _define(f"nnUNetTrainer_{name}_{suffix}", (network, ProgressivePatchMixin, RecipeStepMixin, nnUNetTrainer),
                {"pgps_mode": mode},
                f"{what} with PGPS ({mode}): patches grow in steps of {rule.multiple} to the adjusted planned patch.")


def _primus_trainers(base: type, what: str, spec: PrimusSpec) -> None:
    """``<base>_ConstantPatch`` and its two PGPS variants for one of nnU-Net's Primus trainers (``spec``: its size,
    for the Performance batch)."""
    name = base.__name__
    _define(f"{name}_ConstantPatch", (PrimusInputMixin, RunLengthMixin, base), {},
            f"{what}: nnU-Net's trainer with the patch adjusted to multiples of 8 and the NNPROG run-length knobs.")
    for suffix, mode in PGPS_MODES.items():
        _define(f"{name}_{suffix}", (PrimusGridMixin, ProgressivePatchMixin, base),
                {"pgps_mode": mode, "memory_spec": spec},
                f"{what} with PGPS ({mode}); position embeddings follow each stage's token grid.")


_transformer_trainers("UNETR", UNETR_B, UNETR, UNETR_RECIPE, "MONAI UNETR-B")
_transformer_trainers("SwinUNETR", SWIN_UNETR_48, SWIN_UNETR, SWIN_UNETR_RECIPE, "MONAI SwinUNETR (feature size 48)")
_transformer_trainers("TinyUNETR", TINY_UNETR, UNETR, UNETR_RECIPE, "A tiny UNETR (CPU tests and benchmarks)")
_transformer_trainers("TinySwinUNETR", TINY_SWIN_UNETR, SWIN_UNETR, SWIN_UNETR_RECIPE,
                      "A tiny SwinUNETR (CPU tests and benchmarks)")

PRIMUS_TRAINERS = tuple(
    getattr(primus_trainers, name) for name in (
        "nnUNet_Primus_S_Trainer", "nnUNet_Primus_B_Trainer", "nnUNet_Primus_M_Trainer", "nnUNet_Primus_L_Trainer",
        "nnUNet_PrimusV2S_Trainer", "nnUNet_PrimusV2B_Trainer", "nnUNet_PrimusV2M_Trainer", "nnUNet_PrimusV2L_Trainer",
        "nnUNet_PrimusV3S_Trainer", "nnUNet_PrimusV3B_Trainer", "nnUNet_PrimusV3M_Trainer", "nnUNet_PrimusV3L_Trainer",
    )
    # V3 trainers exist in nnU-Net 2.8.1 only where dynamic_network_architectures ships PrimusV3
    if hasattr(primus_trainers, name) and not (name.startswith("nnUNet_PrimusV3") and primus_trainers.PrimusV3S is None)
)
_define("nnUNetTrainer_TinyPrimus", (primus_trainers.AbstractPrimus,),
        {"build_network_architecture": primus_builder(TINY_PRIMUS)},
        "A tiny Primus (embedding 48, depth 2) trained as nnU-Net's Primus trainers (CPU tests and benchmarks).")
for _base in PRIMUS_TRAINERS:
    _primus_trainers(_base, _base.__name__, primus_memory_spec(_base.__name__))
_primus_trainers(globals()["nnUNetTrainer_TinyPrimus"], "nnUNetTrainer_TinyPrimus", TINY_PRIMUS)
del _base
