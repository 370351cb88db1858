"""`nnprog schedule`: the PGPS stage table of a planned dataset, before anyone trains."""
from __future__ import annotations

import argparse
import math
import os

from nnunet_progressive.cli.arguments import add_planned_trainer_arguments
from nnunet_progressive.core.errors import ProgressiveConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "schedule",
        help="print the PGPS stages (patch, batch, epochs, voxels per iteration) and predicted compute",
        description="Prints the stage table a PGPS trainer would use on a planned dataset, and the compute "
        "relative to constant-patch training. The NNPROG_* knobs the trainer reads are taken from the environment, "
        "as nnUNetv2_train would take them (`nnprog knobs` lists them).",
    )
    add_planned_trainer_arguments(parser)
    parser.add_argument("--plot", default=None, help="also draw the schedule to this PNG file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from nnunet_progressive.core.io import check_writable
    from nnunet_progressive.nnunet.catalogue import trainer_entry
    from nnunet_progressive.nnunet.plan_schedule import reads_plan_alone, schedule_of_new_run_from_plans
    from nnunet_progressive.nnunet.resolve import planned_plans_file

    if args.plot:
        check_writable(args.plot, "--plot")  # before the table is printed, not after
    plans_file = planned_plans_file(args.dataset, args.configuration, args.plans)  # before torch and nnU-Net
    entry = trainer_entry(args.trainer)
    if entry is not None and not entry.patch_stages:
        raise ProgressiveConfigError(_constant_patch_message(args.trainer))
    memory_target = os.environ.get("NNPROG_MEMORY_TARGET", "").strip()  # its estimate counts the network's weights
    if reads_plan_alone(entry) and not memory_target:  # the package's trainers on the plan's U-Net: plans alone
        schedule, settings = schedule_of_new_run_from_plans(entry, json.loads(plans_file.read_text()),
                                                            args.configuration)
        features, random_patch = entry.knob_features(), "RandomPatchSizeMixin" in entry.mixins
    else:
        schedule, settings, features, random_patch = _schedule_from_trainer_class(args)
    print(f"{args.trainer} on {args.dataset} {args.configuration} ({args.plans}), knobs: "
          f"{settings.knobs_read_by(features)}")
    if random_patch:
        pool = [stage.patch_size for stage in schedule.stages]
        print(f"RPSS draws one of {len(pool)} patch sizes per batch: {pool}")
        mean_voxels = sum(math.prod(p) for p in pool) / len(pool)
        relative = mean_voxels / math.prod(schedule.planned_patch_size)
        print(f"predicted compute relative to constant patch: {relative:.3f}")
        return 0
    from nnunet_progressive.pgps.report import schedule_table

    print(schedule_table(schedule))
    if args.plot:
        from nnunet_progressive.pgps.report import plot_schedule

        plot_schedule(schedule, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def _constant_patch_message(trainer: str) -> str:
    return (f"{trainer} keeps the planned patch size; pick a PGPS trainer, e.g. nnUNetTrainer_PGPS_Efficiency or "
            f"nnUNetTrainer_PGPS_Performance")


def _schedule_from_trainer_class(args: argparse.Namespace):
    """Schedule, settings, knob features and RPSS of a trainer whose class is needed (a network of its own, or
    not one of the package's): imports torch and nnU-Net."""
    from nnunet_progressive.nnunet.hooks.pgps import PatchSizeMixin, RandomPatchSizeMixin, schedule_of_new_run
    from nnunet_progressive.nnunet.hooks.run_state import settings_for_new_run
    from nnunet_progressive.nnunet.orchestration.discovery import find_trainer_class
    from nnunet_progressive.nnunet.resolve import resolve_configuration

    planned = resolve_configuration(args.dataset, args.configuration, args.plans)
    trainer_class = find_trainer_class(args.trainer)
    if not issubclass(trainer_class, PatchSizeMixin):
        raise ProgressiveConfigError(_constant_patch_message(args.trainer))
    schedule = schedule_of_new_run(trainer_class, planned)
    settings = settings_for_new_run(trainer_class)
    return schedule, settings, trainer_class.knob_features(), issubclass(trainer_class, RandomPatchSizeMixin)
