"""`nnprog profile`: time a PGPS trainer's training step at every stage of its schedule on this device."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from nnunet_progressive.cli.arguments import add_planned_trainer_arguments, positive_seconds
from nnunet_progressive.core.errors import ProgressiveConfigError

MEASURED_SCHEDULE_KNOB = "NNPROG_MEASURED_SCHEDULE"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="time the training step of every PGPS stage on this device; what the schedule saves here",
        description="Times the training step of every stage of a PGPS trainer's schedule on this device, with the "
        "network, precision and torch.compile setting the trainer uses: with the stage's loader running and with "
        "the network alone (one batch used again). Prints per stage the measured against the voxel-predicted step "
        "time, the run's time relative to constant patch (network only, with the loader) next to the voxel ideal, "
        "and the stages NNPROG_MEASURED_SCHEDULE=on would train. Writes the profile record (JSON) that runs with "
        "NNPROG_MEASURED_SCHEDULE=on on this device read. The NNPROG_* knobs are taken from the environment, as "
        "nnUNetv2_train would take them (NNPROG_MEASURED_SCHEDULE itself is ignored: every stage is timed).",
    )
    add_planned_trainer_arguments(parser)
    parser.add_argument("-device", "--device", default=None, choices=("cuda", "cpu", "mps"),
                        help="training device (default: cuda if there is one, else cpu)")
    parser.add_argument("--seconds-per-stage", type=positive_seconds, default=30.0,
                        help="at most this many seconds of timed steps per stage (default 30; each stage still gets "
                             "one untimed and three timed steps of each kind)")
    parser.add_argument("--total-seconds", type=positive_seconds, default=600.0,
                        help="the profile's total allowance; stages share what is left of it (default 600)")
    parser.add_argument("--no-loader", action="store_true", help="time the network alone (no loader workers)")
    parser.add_argument("-o", "--output", default=None,
                        help="profile record (default: nnUNet_preprocessed/<dataset>/"
                             "nnprog_profile__<trainer>__<plans>__<configuration>.json, where runs look for it)")
    parser.add_argument("--plot", default=None, help="also draw measured and predicted step times to this PNG file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import tempfile

    from nnunet_progressive.core.io import check_writable

    if args.plot:
        check_writable(args.plot, "--plot")
    if args.output:
        check_writable(args.output, "--output")
    os.environ.pop(MEASURED_SCHEDULE_KNOB, None)  # the profile is of the voxel schedule: every stage
    with tempfile.TemporaryDirectory(prefix="nnprog_profile_") as scratch:
        # the trainer writes its fold folder (logs, run file) here, not into the user's nnUNet_results; set before
        # nnU-Net reads its paths
        os.environ["nnUNet_results"] = scratch
        return _profile(args, Path(scratch))


def _profile(args: argparse.Namespace, scratch: Path) -> int:
    from nnunet_progressive.nnunet.resolve import planned_plans_file

    planned_plans_file(args.dataset, args.configuration, args.plans)  # said before torch and nnU-Net are imported

    import contextlib
    import json
    from time import perf_counter

    import torch

    from nnunet_progressive.core.records import profile_file_name, write_record
    from nnunet_progressive.nnunet.hooks.loaders import shutdown_augmenter
    from nnunet_progressive.nnunet.hooks.pgps import ProgressivePatchMixin
    from nnunet_progressive.nnunet.hooks.step_profile import profile_record, profile_stages
    from nnunet_progressive.nnunet.orchestration.discovery import find_trainer_class
    from nnunet_progressive.nnunet.resolve import resolve_configuration
    from nnunet_progressive.pgps.profile import measured_choice, plot_profile, profile_table

    planned = resolve_configuration(args.dataset, args.configuration, args.plans)
    planned.require_preprocessed()
    trainer_class = find_trainer_class(args.trainer)
    if not issubclass(trainer_class, ProgressivePatchMixin):
        raise ProgressiveConfigError(
            f"{args.trainer} has no PGPS stages to profile; pick a PGPS trainer, e.g. nnUNetTrainer_PGPS_Efficiency "
            f"or nnUNetTrainer_PGPS_Performance")
    device_type = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device_type == "cuda" and not torch.cuda.is_available():
        raise ProgressiveConfigError(f"--device cuda: no CUDA GPU found (torch {torch.__version__}); use --device cpu")
    output = Path(args.output) if args.output else planned.preprocessed_dataset_folder / profile_file_name(
        args.trainer, args.plans, args.configuration)
    plans = {**json.loads(Path(planned.plans_file).read_text()), "continue_training": False}
    dataset_json = json.loads((planned.preprocessed_dataset_folder / "dataset.json").read_text())
    setup_log = scratch / "trainer_output.txt"
    with open(setup_log, "w") as log, contextlib.redirect_stdout(log):  # nnU-Net's start-up prints
        trainer = trainer_class(plans, args.configuration, "all", dataset_json, torch.device(device_type))
        trainer.initialize()
        trainer.on_train_start()
    schedule = trainer.schedule
    print(f"{args.trainer} on {planned.dataset_name} {args.configuration} ({args.plans}), {device_type}, "
          f"torch.compile {bool(trainer._do_i_compile())}, {len(schedule.stages)} stages; timing at most "
          f"{args.seconds_per_stage:g} s per stage, {args.total_seconds:g} s in all", flush=True)
    start = perf_counter()
    try:
        with open(setup_log, "a") as log, contextlib.redirect_stdout(log):
            times = profile_stages(trainer, schedule.stages, args.seconds_per_stage, args.total_seconds,
                                   with_loader=not args.no_loader)
    finally:
        shutdown_augmenter(trainer.dataloader_train)
        shutdown_augmenter(trainer.dataloader_val)
    seconds = perf_counter() - start
    record = profile_record(trainer, times, seconds, planned.dataset_name, with_loader=not args.no_loader)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_record(output, record)
    print(profile_table(schedule, times))
    choice = measured_choice(schedule, times)
    print(choice.summary())
    print(f"profiled in {seconds:.1f} s on {record.device_name}; record written to {output}")
    if args.plot:
        plot_profile(schedule, times, args.plot, f"{args.trainer}, {planned.dataset_name} {args.configuration}, "
                     f"{record.device_name}", kept=choice.kept)
        print(f"plot written to {args.plot}")
    return 0
