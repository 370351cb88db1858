"""`nnprog benchmark run SPEC` and `nnprog benchmark report RESULTS_DIR` (see docs/benchmark.md)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="run a benchmark spec (train, resume, record) and build its report",
        description="Benchmarks of nnU-Net trainers: `run` trains every (dataset, configuration, plans, trainer, "
        "fold, seed) of a YAML/JSON spec with nnU-Net's own commands and records each run; `report` builds the "
        "tables, statistics and plots. See docs/benchmark.md for the spec format.",
    )
    actions = parser.add_subparsers(dest="benchmark_action", metavar="ACTION")
    run_parser = actions.add_parser(
        "run", help="prepare, train and record every run of a spec (finished runs are skipped)",
        description="Checks every trainer name and knob, plans and preprocesses where needed, then trains every "
        "run not yet done: new runs from scratch, interrupted runs with --c, trained but unvalidated runs with "
        "--val. A run's knobs are part of its id: a run whose knobs changed in the spec is a new run. Records go "
        "to <results_dir>/runs/<run_id>.json.",
    )
    run_parser.add_argument("spec", help="the spec file (.yaml, .yml or .json)")
    run_parser.add_argument("--dry-run", action="store_true",
                            help="check the spec and trainers, list the runs and their status; change nothing")
    run_parser.add_argument("--prepare-only", action="store_true", help="only generate/plan/preprocess the datasets")
    run_parser.add_argument("--wait", action="store_true", help="slurm executor: wait until the submitted jobs end")
    run_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    run_parser.add_argument("--seeds", default=None, help="repeat indices instead of the spec's, e.g. 0,1 adds "
                            "repeat 1 to a results folder where repeat 0 is done (done runs are skipped)")
    run_parser.set_defaults(func=run_action)
    report_parser = actions.add_parser(
        "report", help="tables (markdown, CSV), Wilcoxon test, time to Dice and plots of a results folder",
        description="Reads <RESULTS_DIR>/runs/*.json and writes report.md, report.csv (one row per run), "
        "tasks.csv, summary.csv, time_to_dice.csv (where runs logged Dice checks) and PNG plots.",
    )
    report_parser.add_argument("results_dir", help="the results_dir of a benchmark spec")
    report_parser.add_argument("-o", "--out", default=None, help="output folder (default: RESULTS_DIR/report)")
    report_parser.add_argument("--reference", default=None, help="reference trainer (default: the spec's "
                               "reference_trainer, else the first nnUNetTrainer_ConstantPatch*, else nnUNetTrainer, "
                               "else the first trainer)")
    report_parser.add_argument("--thresholds", default=None, help="Dice thresholds of the time-to-Dice tables, "
                               "e.g. 0.7,0.8,0.9 (default: every 0.05 in the range the runs reached)")
    report_parser.add_argument("--trainers", default=None,
                               help="comma-separated trainer labels to report (default: all), e.g. one "
                                    "architecture's constant patch and PGPS trainers")
    report_parser.set_defaults(func=report_action)
    parser.set_defaults(func=lambda args: parser.print_help() or 0)


def run_action(args: argparse.Namespace) -> int:
    from nnunet_progressive.benchmark.execution import MODE_FOR_STATUS
    from nnunet_progressive.benchmark.run import run_benchmark
    from nnunet_progressive.benchmark.spec import load_spec, parse_seeds, with_seeds
    from nnunet_progressive.core.tables import markdown_table

    spec = load_spec(args.spec)
    if args.seeds is not None:
        spec = with_seeds(spec, parse_seeds(args.seeds))
    outcome = run_benchmark(spec, dry_run=args.dry_run, prepare_only=args.prepare_only, wait=args.wait,
                            progress=not args.no_progress)
    if args.dry_run or args.prepare_only:
        rows = [[run.run_id, run.label, outcome.statuses[run.run_id],
                 "skip" if outcome.statuses[run.run_id] == "done" else MODE_FOR_STATUS[outcome.statuses[run.run_id]][0]]
                for run in outcome.runs]
        print(markdown_table(["Run", "Trainer (label)", "Status", "Next"], rows), end="")
        if outcome.stale_records:
            print(f"{len(outcome.stale_records)} record(s) in {spec.results_dir / 'runs'} are of runs this spec no "
                  f"longer has (other knobs or trainers): kept, left out of the report")
        return 0
    if outcome.jobs and not outcome.records:
        print(f"submitted; rerun `nnprog benchmark run {args.spec}` later to record finished runs and resubmit "
              f"failed ones, then `nnprog benchmark report {spec.results_dir}`")
        return 0
    done = sum(1 for r in outcome.records if r is not None and r.status == "done")
    print(f"{done} of {len(outcome.runs)} runs done; records in {spec.results_dir / 'runs'}")
    for record in outcome.records:
        reason = getattr(record, "skipped_because", None)
        if reason:
            print(f"skipped {record.run_id}: {reason}")
    for run_id in outcome.failed:
        print(f"not done: {run_id} (log: {spec.results_dir / 'logs' / (run_id + '.log')})")
    return 1 if outcome.failed else 0


def report_action(args: argparse.Namespace) -> int:
    from nnunet_progressive.benchmark.report import write_report
    from nnunet_progressive.core.io import check_writable_folder
    from nnunet_progressive.stopping.time_to_dice import parse_thresholds

    if args.out is not None:
        check_writable_folder(args.out, "-o")
    thresholds = parse_thresholds(args.thresholds) if args.thresholds else None
    only = [t.strip() for t in args.trainers.split(",") if t.strip()] if args.trainers else None
    written = write_report(args.results_dir, args.out, args.reference, thresholds, only)
    for path in written:
        print(path)
    return 0
