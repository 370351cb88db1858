"""PGPS trainers: `nnUNetv2_train D C F -tr nnUNetTrainer_PGPS_Efficiency` (after `eval "$(nnprog env)"`).

Knobs (NNPROG_EPOCHS, NNPROG_ITERATIONS, NNPROG_GROWTH_SHARE, NNPROG_MIN_PATCH, NNPROG_MAX_BATCH, ...)
are read from the environment; `nnprog schedule` prints the resulting stages before training.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_progressive.core.knobs import ProgressiveSettings
from nnunet_progressive.nnunet.pgps import ProgressivePatchMixin, RandomPatchSizeMixin
from nnunet_progressive.nnunet.run_state import RunLengthMixin


class nnUNetTrainer_ConstantPatch(RunLengthMixin, nnUNetTrainer):
    """Plain nnU-Net (constant planned patch and batch) that honours the NNPROG_* run-length knobs."""


class nnUNetTrainer_PGPS_Efficiency(ProgressivePatchMixin, nnUNetTrainer):
    """PGPS, Efficiency mode: patches grow to the planned size at the planned batch size."""

    pgps_mode = "efficiency"


class nnUNetTrainer_PGPS_Performance(ProgressivePatchMixin, nnUNetTrainer):
    """PGPS, Performance mode: larger batches while patches are small (within the planned footprint), drawn
    as the published code: the planned number of cases per batch, several crops from each."""

    pgps_mode = "performance"


class nnUNetTrainer_RPSS(RandomPatchSizeMixin, nnUNetTrainer):
    """Random patch size sampling (ablation): one of the PGPS stage sizes drawn per batch."""


def _with_epochs(base: type, epochs: int) -> type:
    """``base`` trained for ``epochs`` epochs by default, named like nnU-Net's ``_Xepochs`` variants."""
    defaults = ProgressiveSettings(**{**base.default_settings.to_dict(), "epochs": epochs})
    name = f"{base.__name__}_{epochs}epochs"
    return type(name, (base,), {"default_settings": defaults, "__doc__": f"{base.__doc__} {epochs} epochs.",
                                "__module__": __name__})


SHORT_RUN_EPOCHS = (50, 100, 250, 500)
for _base in (nnUNetTrainer_ConstantPatch, nnUNetTrainer_PGPS_Efficiency, nnUNetTrainer_PGPS_Performance,
              nnUNetTrainer_RPSS):
    for _epochs in SHORT_RUN_EPOCHS:
        _variant = _with_epochs(_base, _epochs)
        globals()[_variant.__name__] = _variant
del _base, _epochs, _variant
