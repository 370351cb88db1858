"""The package's plain trainers (PGPS, PDL, stop at Dice and their generated variants), by name, for tests."""
from __future__ import annotations

import nnunet_progressive_trainers.nnprog_pdl as pdl_trainers
import nnunet_progressive_trainers.nnprog_pgps as pgps_trainers
import nnunet_progressive_trainers.nnprog_stop_at_dice as stop_trainers

TRAINERS = {name: getattr(module, name) for module in (pgps_trainers, pdl_trainers, stop_trainers)
            for name in dir(module) if name.startswith("nnUNetTrainer_")}
