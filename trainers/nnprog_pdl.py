"""Progressive DL trainers and their controls (rank first: `nnprog rank -d D -c C`).

Knobs: NNPROG_SET1_SHARE, NNPROG_SET1_EPOCHS, NNPROG_TARGET_DICE, NNPROG_CHECK_EVERY, NNPROG_DICE_METHOD,
NNPROG_PDL_SEED (random Set 1 only), NNPROG_RANKING (ranked Set 1 only), plus the run-length knobs (NNPROG_EPOCHS,
...). PDL runs until a target Dice, so every PDL trainer has StopAtDiceMixin.
Generated from the trainer catalogue (nnunet_progressive/nnunet/catalogue.py; `nnprog trainers --method pdl`).
"""
from nnunet_progressive.nnunet.variants import build_trainers

globals().update(build_trainers("pdl"))
