"""Progressive DL trainers and their controls (rank first: `nnprog rank -d D -c C`).

Knobs: NNPROG_SET1_SHARE, NNPROG_SET1_EPOCHS, NNPROG_TARGET_DICE, NNPROG_CHECK_EVERY, NNPROG_DICE_METHOD,
NNPROG_PDL_SEED (random Set 1 only), NNPROG_RANKING (ranked Set 1 only), plus the run-length knobs (NNPROG_EPOCHS,
...). Bases in the package's order (nnunet_progressive/nnunet/run_state.py): PDL runs until a target Dice, so every
PDL trainer lists StopAtDiceMixin.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_progressive.nnunet.pdl import ProgressiveDataMixin
from nnunet_progressive.nnunet.pgps import ProgressivePatchMixin
from nnunet_progressive.nnunet.stopping import StopAtDiceMixin


class nnUNetTrainer_PDL(StopAtDiceMixin, ProgressiveDataMixin, nnUNetTrainer):
    """PDL: the most dissimilar training cases (Set 1) alone first, then all; stops at a target Dice."""

    pdl_order = "dissimilar_first"


class nnUNetTrainer_PDL_SimilarFirst(StopAtDiceMixin, ProgressiveDataMixin, nnUNetTrainer):
    """Control: the same schedule with the most similar cases as Set 1."""

    pdl_order = "similar_first"


class nnUNetTrainer_PDL_Random(StopAtDiceMixin, ProgressiveDataMixin, nnUNetTrainer):
    """Control: the same schedule with a random Set 1 of the same size (NNPROG_PDL_SEED)."""

    pdl_order = "random"


class nnUNetTrainer_PDL_PGPS_Efficiency(StopAtDiceMixin, ProgressiveDataMixin, ProgressivePatchMixin, nnUNetTrainer):
    """PDL and PGPS Efficiency together: Set 1 first while patches grow."""

    pdl_order = "dissimilar_first"
    pgps_mode = "efficiency"
