"""`_StopAtDice` variants: stop at NNPROG_TARGET_DICE (real sliding-window validation Dice by default).

Every variant writes time_to_dice.json in its fold folder (for `nnprog compare`).
Generated from the trainer catalogue (nnunet_progressive/nnunet/catalogue.py; `nnprog trainers --method stopping`).
"""
from nnunet_progressive.nnunet.variants import build_trainers

globals().update(build_trainers("stopping"))
