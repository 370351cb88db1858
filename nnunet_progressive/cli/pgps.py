"""`nnprog schedule`: the PGPS stage table of a planned dataset, before anyone trains."""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
from pathlib import Path

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import env_variable_help, settings_from_env


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "schedule",
        help="print the PGPS stages (patch, batch, epochs, voxels per iteration) and predicted compute",
        description="Prints the stage table a PGPS trainer would use on a planned dataset, and the compute "
        "relative to constant-patch training. Knobs are read from the environment:\n" + env_variable_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-d", "--dataset", required=True, help="dataset name or id (e.g. 4 or Dataset004_Hippocampus)")
    parser.add_argument("-c", "--configuration", required=True, help="e.g. 3d_fullres or 2d")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-tr", "--trainer", default="nnUNetTrainer_PGPS_Efficiency", help="trainer class name")
    parser.add_argument("--plot", default=None, help="also draw the schedule to this PNG file")
    parser.set_defaults(func=run)


def load_plans_and_trainer(dataset: str, configuration: str, plans: str, trainer_name: str):
    """The configuration manager of a planned dataset and the trainer class (found as nnU-Net does)."""
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_progressive.nnunet.compat import install_in_this_process
    from nnunet_progressive.nnunet.discovery import environment_with_trainers

    if not nnUNet_preprocessed.is_set():
        raise ProgressiveConfigError("nnUNet_preprocessed is not set; export it as for nnUNetv2_train")
    try:
        dataset_name = maybe_convert_to_dataset_name(int(dataset) if dataset.isdigit() else dataset)
    except RuntimeError as error:
        raise ProgressiveConfigError(f"unknown dataset {dataset!r}: {error}") from None
    plans_file = Path(nnUNet_preprocessed.get()) / dataset_name / f"{plans}.json"
    if not plans_file.is_file():
        raise ProgressiveConfigError(
            f"{plans_file} does not exist; plan the dataset first: nnUNetv2_plan_and_preprocess -d {dataset}"
        )
    plans_manager = PlansManager(str(plans_file))
    if configuration not in plans_manager.available_configurations:
        raise ProgressiveConfigError(
            f"configuration {configuration!r} is not in {plans_file.name}; available: "
            f"{plans_manager.available_configurations}"
        )
    os.environ["nnUNet_extTrainer"] = environment_with_trainers()["nnUNet_extTrainer"]
    install_in_this_process()
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            trainer_class = recursive_find_trainer_class_by_name(trainer_name)
        except RuntimeError:
            raise ProgressiveConfigError(f"no trainer named {trainer_name!r} was found") from None
    return plans_manager.get_configuration(configuration), trainer_class


def run(args: argparse.Namespace) -> int:
    from nnunet_progressive.nnunet.pgps import (
        NNUNET_DEFAULT_EPOCHS,
        ProgressivePatchMixin,
        RandomPatchSizeMixin,
        schedule_for_configuration,
    )
    from nnunet_progressive.pgps.report import plot_schedule, schedule_table

    try:
        configuration_manager, trainer_class = load_plans_and_trainer(
            args.dataset, args.configuration, args.plans, args.trainer
        )
        if not issubclass(trainer_class, ProgressivePatchMixin):
            raise ProgressiveConfigError(
                f"{args.trainer} keeps the planned patch size; pick a PGPS trainer, e.g. "
                f"nnUNetTrainer_PGPS_Efficiency or nnUNetTrainer_PGPS_Performance"
            )
        settings = settings_from_env(trainer_class.default_settings)
        epochs = settings.epochs or NNUNET_DEFAULT_EPOCHS
        schedule = schedule_for_configuration(configuration_manager, trainer_class.pgps_mode, settings, epochs)
    except ProgressiveConfigError as error:
        print(f"nnprog schedule: error: {error}")
        return 2
    print(f"{args.trainer} on {args.dataset} {args.configuration} ({args.plans}), knobs: "
          f"{ {k: v for k, v in settings.to_dict().items() if v is not None} }")
    if issubclass(trainer_class, RandomPatchSizeMixin):
        pool = [stage.patch_size for stage in schedule.stages]
        print(f"RPSS draws one of {len(pool)} patch sizes per batch: {pool}")
        mean_voxels = sum(math.prod(p) for p in pool) / len(pool)
        relative = mean_voxels / math.prod(schedule.planned_patch_size)
        print(f"predicted compute relative to constant patch: {relative:.3f}")
        return 0
    print(schedule_table(schedule))
    if args.plot:
        plot_schedule(schedule, args.plot)
        print(f"plot written to {args.plot}")
    return 0
