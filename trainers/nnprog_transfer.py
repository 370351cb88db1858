"""Fine-tuning trainers: `nnUNetv2_train D C F -tr nnUNetTrainer_Finetune -pretrained_weights FILE`.

FILE: a checkpoint of the same network (nnU-Net's pretraining workflow, `nnprog transfer prepare`) or the output of
`nnprog transfer adapt` (other input channels, classes, depth). Knobs: NNPROG_FINETUNE_LR, NNPROG_WARMUP_EPOCHS,
NNPROG_HEAD_EPOCHS, NNPROG_HEAD_LR, NNPROG_FROZEN_EPOCHS and the run-length knobs (NNPROG_EPOCHS, ...).
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_progressive.core.knobs import ProgressiveSettings
from nnunet_progressive.nnunet.pgps import ProgressivePatchMixin
from nnunet_progressive.nnunet.stopping import StopAtDiceMixin
from nnunet_progressive.nnunet.transfer import FineTuningMixin


class nnUNetTrainer_Finetune(FineTuningMixin, nnUNetTrainer):
    """All layers: linear warmup to lr 1e-3, then nnU-Net's poly decay; 150 epochs."""

    finetune_recipe = "finetune"


class nnUNetTrainer_Finetune_HeadFirst(FineTuningMixin, nnUNetTrainer):
    """The new segmentation heads alone first (MultiTalent), then warmup of all layers, then poly."""

    finetune_recipe = "head_first"


class nnUNetTrainer_Finetune_FrozenEncoder(FineTuningMixin, nnUNetTrainer):
    """The pre-trained encoder frozen while decoder and heads train (nnssl), then warmup of all layers, then poly."""

    finetune_recipe = "frozen_encoder"


RECIPES = (nnUNetTrainer_Finetune, nnUNetTrainer_Finetune_HeadFirst, nnUNetTrainer_Finetune_FrozenEncoder)


def _variant(name: str, bases: tuple[type, ...], attributes: dict, doc: str) -> type:
    return type(name, bases, {**attributes, "__module__": __name__, "__doc__": doc})


for _recipe in RECIPES:
    _attributes = {"finetune_recipe": _recipe.finetune_recipe}
    for _mode in ("Efficiency", "Performance"):
        _name = f"{_recipe.__name__}_PGPS_{_mode}"
        globals()[_name] = _variant(_name, (FineTuningMixin, ProgressivePatchMixin, nnUNetTrainer),
                                    {**_attributes, "pgps_mode": _mode.lower()},
                                    f"{_recipe.__doc__} Patches grow as in nnUNetTrainer_PGPS_{_mode}.")
    _name = f"{_recipe.__name__}_StopAtDice"
    globals()[_name] = _variant(_name, (StopAtDiceMixin, FineTuningMixin, nnUNetTrainer), _attributes,
                                f"{_recipe.__doc__} Stops at NNPROG_TARGET_DICE; writes time_to_dice.json.")
    for _epochs in (50, 100, 250, 500, 1000):
        _name = f"{_recipe.__name__}_{_epochs}epochs"
        globals()[_name] = _variant(_name, (_recipe,), {"default_settings": ProgressiveSettings(epochs=_epochs)},
                                    f"{_recipe.__doc__} {_epochs} epochs.")
del _recipe, _attributes, _mode, _name, _epochs
