"""Transformer trainers with a constant patch, with PGPS (Efficiency, Performance) and fine-tuned.

- `nnUNetTrainer_UNETR`, `nnUNetTrainer_SwinUNETR` (MONAI: `pip install "nnunet-progressive[transformers]"`; this
  module imports without MONAI and the trainers say so when used) and their `_PGPS_Efficiency` /
  `_PGPS_Performance` / `_Finetune*` variants; `nnUNetTrainer_TinyUNETR` and `nnUNetTrainer_TinySwinUNETR` (and
  variants) are the same architectures shrunk for CPU tests and the offline CPU benchmark.
- nnU-Net's own Primus trainers (`nnUNet_Primus_S_Trainer`, ..., `nnUNet_PrimusV3L_Trainer`) and
  `nnUNetTrainer_TinyPrimus` (a shrunk Primus trained like them) as `<name>_ConstantPatch`, `<name>_PGPS_Efficiency`,
  `<name>_PGPS_Performance`, `<name>_Finetune`, `<name>_Finetune_HeadFirst`, `<name>_Finetune_FrozenEncoder`.
- nnU-Net's ResEnc presets need no trainer of their own: `nnUNetTrainer_PGPS_Efficiency -p nnUNetResEncUNetMPlans`.

Every trainer here adjusts the planned patch to its network's input rule. Generated from the trainer catalogue
(nnunet_progressive/nnunet/catalogue.py; `nnprog trainers --method architectures`).
"""
from nnunet_progressive.nnunet.catalogue import primus_trainer_names
from nnunet_progressive.nnunet.variants import build_trainers

_trainers = build_trainers("architectures")
globals().update(_trainers)
# nnU-Net's own Primus trainers the variants above build on (those this nnU-Net ships)
PRIMUS_TRAINERS = tuple(_trainers[f"{name}_ConstantPatch"].__bases__[-1] for name in primus_trainer_names()
                        if f"{name}_ConstantPatch" in _trainers)
del _trainers
