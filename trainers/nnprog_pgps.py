"""PGPS trainers: `nnUNetv2_train D C F -tr nnUNetTrainer_PGPS_Efficiency` (after `eval "$(nnprog env)"`).

Knobs (NNPROG_EPOCHS, NNPROG_ITERATIONS, NNPROG_GROWTH_SHARE, NNPROG_MIN_PATCH, NNPROG_MAX_BATCH, ...)
are read from the environment; `nnprog schedule` prints the resulting stages before training.
Generated from the trainer catalogue (nnunet_progressive/nnunet/catalogue.py; `nnprog trainers --method pgps`).
"""
from nnunet_progressive.nnunet.variants import build_trainers

globals().update(build_trainers("pgps"))
