"""`_StopAtDice` variants: stop at NNPROG_TARGET_DICE (real sliding-window validation Dice by default).

Every variant writes time_to_dice.json in its fold folder (for `nnprog compare`).
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_progressive.nnunet.pgps import ProgressivePatchMixin, RandomPatchSizeMixin
from nnunet_progressive.nnunet.stopping import StopAtDiceMixin


class nnUNetTrainer_StopAtDice(StopAtDiceMixin, nnUNetTrainer):
    """Plain nnU-Net (constant patch) that stops at a target validation Dice."""


def _stop_at_dice_variant(name: str, progressive_mixin: type, attributes: dict) -> type:
    return type(name, (StopAtDiceMixin, progressive_mixin, nnUNetTrainer),
                {**attributes, "__module__": __name__,
                 "__doc__": f"{name.removesuffix('_StopAtDice')} that stops at a target validation Dice."})


for _name, _mixin, _attributes in (
    ("nnUNetTrainer_PGPS_Efficiency_StopAtDice", ProgressivePatchMixin, {"pgps_mode": "efficiency"}),
    ("nnUNetTrainer_PGPS_Performance_StopAtDice", ProgressivePatchMixin, {"pgps_mode": "performance"}),
    ("nnUNetTrainer_RPSS_StopAtDice", RandomPatchSizeMixin, {}),
):
    globals()[_name] = _stop_at_dice_variant(_name, _mixin, _attributes)
del _name, _mixin, _attributes
