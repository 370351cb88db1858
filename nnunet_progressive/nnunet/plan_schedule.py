"""The PGPS schedule from a plans file alone (no torch, no nnU-Net): what ``nnprog schedule`` prints for the
package's trainers that train the plan's own U-Net, and what the trainers themselves build
(``nnunet/pgps.schedule_for_configuration`` calls :func:`schedule_of_plan`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from nnunet_progressive.core.knobs import ProgressiveSettings
from nnunet_progressive.nnunet.catalogue import TrainerEntry, entry_settings_for_new_run
from nnunet_progressive.nnunet.resolve import configuration_value
from nnunet_progressive.pgps.schedule import Schedule, build_schedule

NNUNET_DEFAULT_EPOCHS = 1000


def schedule_of_plan(planned_patch: Sequence[int], pool_op_kernel_sizes: Sequence[Sequence[int]] | None,
                     planned_batch: int, mode: str, settings: ProgressiveSettings, num_epochs: int,
                     input_multiple: tuple[int, ...] | None = None,
                     sample_cost: Callable[[tuple[int, ...]], float] | None = None) -> Schedule:
    """The PGPS schedule of a planned patch, pooling and batch under ``settings`` (the knobs' part of it)."""
    return build_schedule(
        planned_patch=tuple(planned_patch),
        pool_op_kernel_sizes=pool_op_kernel_sizes,
        input_multiple=input_multiple,
        sample_cost=sample_cost,
        planned_batch=planned_batch,
        num_epochs=num_epochs,
        mode=mode,
        min_patch=settings.min_patch,
        growth_share=settings.growth_share,
        max_batch=settings.max_batch,
        batch_budget_factor=settings.batch_budget,
        growth_order=settings.growth_order,
    )


def plan_pooling(plans: Mapping, configuration: str) -> list[list[int]]:
    """The U-Net's pooling strides of a configuration, as nnU-Net's ConfigurationManager reads them."""
    architecture = configuration_value(dict(plans), configuration, "architecture", None)
    if architecture is not None:
        return architecture["arch_kwargs"]["strides"]
    return configuration_value(dict(plans), configuration, "pool_op_kernel_sizes")


def reads_plan_alone(entry: TrainerEntry | None) -> bool:
    """True where the plans file alone gives the trainer's schedule: a catalogue trainer with patch stages that
    trains the plan's U-Net on nnU-Net's own trainer (the architectures' trainers need their network's rule)."""
    return entry is not None and entry.patch_stages and entry.network is None and entry.base == "nnUNetTrainer"


def schedule_of_new_run_from_plans(entry: TrainerEntry, plans: Mapping, configuration: str,
                                   environ: Mapping[str, str] | None = None
                                   ) -> tuple[Schedule, ProgressiveSettings]:
    """The schedule (and settings) a new run of ``entry`` would train, as the trainer's own resolution gives it."""
    if not reads_plan_alone(entry):
        raise ValueError(f"{entry.name}: its schedule needs its class (network rule), not the plans alone")
    settings = entry_settings_for_new_run(entry, environ)
    if settings.memory_target is not None and entry.attribute("pgps_mode", "efficiency") == "performance":
        raise ValueError(f"{entry.name}: NNPROG_MEMORY_TARGET needs the network's memory estimate (its class)")
    schedule = schedule_of_plan(configuration_value(dict(plans), configuration, "patch_size"),
                                plan_pooling(plans, configuration),
                                configuration_value(dict(plans), configuration, "batch_size"),
                                entry.attribute("pgps_mode", "efficiency"), settings,
                                settings.epochs or NNUNET_DEFAULT_EPOCHS)
    return schedule, settings
