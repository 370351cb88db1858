"""`nnprog transfer sources|prepare|adapt`: pick a source, run nnU-Net's pretraining workflow, map the weights."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from nnunet_progressive.cli.arguments import fraction, int_at_least, positive_int, random_seed
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.transfer.scores import COMPONENTS as COMPONENT_NAMES
from nnunet_progressive.transfer.scores import DEFAULT_WEIGHTS, DOMAIN_COMPONENTS, TASK_COMPONENTS


def default_weights_text() -> str:
    """``modality 3, intensity 2, ...``: the default weights, largest first, as the help and the docs state them."""
    ordered = sorted(DEFAULT_WEIGHTS.items(), key=lambda item: (-item[1], COMPONENT_NAMES.index(item[0])))
    return ", ".join(f"{name} {weight:g}" for name, weight in ordered)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transfer", help="transfer learning: choose a source, prepare pre-training, adapt weights (docs/finetuning.md)",
        description="Transfer learning inside nnU-Net (docs/finetuning.md): `sources` scores candidate source "
        "datasets or trained models against a target, `prepare` runs nnU-Net's pretraining workflow in the right "
        "direction, `adapt` maps a checkpoint onto the target network for `nnUNetv2_train -pretrained_weights`.")
    commands = parser.add_subparsers(dest="transfer_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 0)

    sources = commands.add_parser(
        "sources", help="score candidate sources against a target dataset",
        description="Scores each candidate (dataset ids/names with --candidates, trained model folders as "
        "positional arguments) against the target, one column per component (0-1, 1 = the same), and recommends "
        "the closest. Domain: " + ", ".join(DOMAIN_COMPONENTS) + "; task: " + ", ".join(TASK_COMPONENTS)
        + ". The combined score is the weighted mean of the known components (defaults: " + default_weights_text()
        + "); an image component without signal (same-modality pair SSIMs near 0) is left out and said. Label "
        "matches count the label's anatomy (a brain tumour is not a lung tumour). Missing fingerprints are "
        "computed with nnUNetv2_extract_fingerprint. See docs/finetuning.md.")
    sources.add_argument("--target", "-t", required=True, help="the dataset to fine-tune on (id or DatasetXXX_Name)")
    sources.add_argument("--candidates", "-s", nargs="*", default=[], metavar="DATASET",
                         help="candidate datasets (ids or names); paths of model folders may be listed here too")
    sources.add_argument("model_folders", nargs="*", metavar="MODEL_FOLDER",
                         help="trained nnU-Net model folders (nnUNet_results/DatasetX/Trainer__Plans__Config, a fold "
                         "folder or a checkpoint in one)")
    sources.add_argument("--weights", default=None, metavar="NAME=W,...",
                         help=f"component weights, e.g. labels=2,image=0 (components: {', '.join(COMPONENT_NAMES)})")
    sources.add_argument("--off", default="", metavar="NAME,...", help="components to switch off, e.g. image,cases")
    sources.add_argument("-p", "--plans", default="nnUNetPlans", help="plans read for normalisation schemes")
    sources.add_argument("--image-cases", type=positive_int, default=2,
                         help="raw scans read per dataset for the image similarity (pairs = cases squared) and the "
                         "scan intensity distributions (default 2)")
    sources.add_argument("--label-cases", type=positive_int, default=3, help="label maps read per dataset (default 3)")
    sources.add_argument("--grid", type=int_at_least(16), default=48,
                         help="voxels per axis of the image-similarity grid (default 48, at least 16)")
    sources.add_argument("--no-fingerprint", action="store_true",
                         help="do not run nnUNetv2_extract_fingerprint for datasets without one")
    sources.add_argument("-np", "--num-processes", type=positive_int, default=2,
                         help="processes of fingerprint extraction")
    sources.add_argument("-o", "--output", default=None, help="write the scores as JSON")
    sources.add_argument("--plot", default=None, help="write a bar chart of the scores (PNG)")
    sources.set_defaults(func=run_sources)

    prepare = commands.add_parser(
        "prepare", help="nnU-Net's pretraining workflow: target planned, source fingerprint, plans moved, preprocess",
        description="Runs nnU-Net's documented pretraining workflow in the right direction: checks that the target "
        "is planned, extracts the source's fingerprint, moves the TARGET's plans onto the SOURCE "
        "(nnUNetv2_move_plans_between_datasets -s TARGET -t SOURCE), preprocesses the source with them, and prints "
        "the next commands. Safe to re-run: done steps are skipped. When the channels differ, each source channel "
        "keeps the target's normalisation of the same modality/sequence, else the source's own.")
    prepare.add_argument("--source", "-s", required=True, help="the dataset to pre-train on")
    prepare.add_argument("--target", "-t", required=True, help="the dataset to fine-tune on (planned first)")
    prepare.add_argument("-p", "--plans", default="nnUNetPlans", help="the target's plans identifier")
    prepare.add_argument("-c", "--configurations", nargs="+", default=None,
                         help="configurations to preprocess the source for (default 3d_fullres, else the first)")
    prepare.add_argument("--source-plans", default=None,
                         help="identifier of the plans written for the source (default <PLANS>_from<TARGET ID>)")
    prepare.add_argument("-np", "--num-processes", type=positive_int, default=2, help="processes of nnU-Net's steps")
    prepare.set_defaults(func=run_prepare)

    adapt = commands.add_parser(
        "adapt", help="map a checkpoint onto the target network for nnUNetv2_train -pretrained_weights",
        description="Writes OUT.pth holding the target network's complete state dict (what nnU-Net's "
        "load_pretrained_weights requires): tensors of the same name and shape are loaded; the input convolution "
        "is adapted to the target's channels (each target channel starts from the source filter of the same "
        "modality/sequence, else the mean of the source filters, scaled by C_source/C_target); odd kernels are "
        "adapted (k->1 sums, smaller keeps the centre, larger zero-pads); the rest keeps the target network's "
        "fresh initialisation; the segmentation heads keep the source's rows for target labels whose names match "
        "a source label's (background to background; the source's labels from the dataset.json of its model "
        "folder) and fresh rows for the others, loaded by the nnUNetTrainer_Finetune* trainers. Prints a report "
        "counting tensors (not state-dict names), also OUT.pth.transfer.json. Less than --min-share mapped is an "
        "error naming the mismatch.")
    adapt.add_argument("checkpoint", help="source checkpoint (nnU-Net's, or a state dict)")
    adapt.add_argument("-d", "--dataset", required=True, help="target dataset")
    adapt.add_argument("-c", "--configuration", required=True, help="target configuration, e.g. 3d_fullres")
    adapt.add_argument("-p", "--plans", default="nnUNetPlans", help="target plans identifier")
    adapt.add_argument("-tr", "--trainer", default="nnUNetTrainer",
                       help="trainer whose network is built (its build_network_architecture; default nnUNetTrainer)")
    adapt.add_argument("-o", "--output", required=True, help="the checkpoint to write (OUT.pth)")
    adapt.add_argument("--channel-rule", choices=("match", "mean"), default="match",
                       help="match (default): start from the source channel of the same modality/sequence; mean: "
                       "always the mean of the source filters")
    adapt.add_argument("--source-channels", default=None, metavar="NAME,...",
                       help="the source's channel names (default: the dataset.json of the checkpoint's model folder)")
    adapt.add_argument("--min-share", type=fraction, default=0.5,
                       help="least share of the target's weights that must map (default 0.5)")
    adapt.add_argument("--no-kernel-adapt", action="store_true", help="leave tensors with other kernel sizes fresh")
    adapt.add_argument("--seed", type=random_seed, default=0, help="seed of the target network's fresh initialisation")
    adapt.set_defaults(func=run_adapt)


def _check_writable(path: str | None, what: str) -> None:
    """Before any work: the output can be written (core.io.check_writable; a folder or a file in the way is an
    error)."""
    from nnunet_progressive.core.io import check_writable

    if path is not None:
        check_writable(path, what)


def run_sources(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nnunet_progressive import __version__
    from nnunet_progressive.core.records import SourceScores, write_record
    from nnunet_progressive.nnunet.offline.transfer.sources import dataset_candidate, image_similarity, model_candidate
    from nnunet_progressive.transfer.report import plot_scores
    from nnunet_progressive.transfer.scores import parse_weights, recommendation, score_candidates, scores_table

    off = [name.strip() for name in args.off.split(",") if name.strip()]
    datasets = [c for c in args.candidates if not Path(c).exists()]
    folders = [*args.model_folders, *(c for c in args.candidates if Path(c).exists())]
    weights = parse_weights(args.weights, off)
    if not datasets and not folders:
        raise ProgressiveConfigError("no candidates: pass datasets with --candidates and/or model folders")
    _check_writable(args.output, "--output")
    _check_writable(args.plot, "--plot")
    label_cases = args.label_cases if weights["foreground"] or weights["structure_size"] else 0
    fingerprint = not args.no_fingerprint
    scan_cases = args.image_cases if weights["intensity"] else 0
    target = dataset_candidate(args.target, args.plans, fingerprint, label_cases, args.num_processes, scan_cases)
    candidates = []
    for name in tqdm(datasets, desc="candidate datasets", unit="dataset", disable=len(datasets) < 2):
        candidates.append(dataset_candidate(name, args.plans, fingerprint, label_cases, args.num_processes,
                                            scan_cases))
    candidates += [model_candidate(folder) for folder in folders]
    names = [c.profile.name for c in candidates]
    duplicates = sorted({n for n in names if names.count(n) > 1} | ({target.profile.name} & set(names)))
    if duplicates:
        raise ProgressiveConfigError(f"{duplicates} listed twice (or as target and candidate); list each once")
    similarity, image_details = {}, {}
    if weights["image"] > 0:
        for candidate in tqdm(candidates, desc="image similarity", unit="candidate"):
            measured = image_similarity(target, candidate, args.image_cases, args.grid)
            similarity[candidate.profile.name] = None if measured is None else measured.score
            if measured is not None:
                image_details[candidate.profile.name] = {
                    "mean_ssim": measured.mean_ssim, "registration_failures": measured.registration_failures,
                    "pairs": list(measured.pairs)}
    scores = score_candidates(target.profile, [c.profile for c in candidates], weights, similarity, image_details)
    advice = recommendation(scores)
    notes = list(dict.fromkeys(note for score in scores for note in score.details.get("notes", [])))
    print(f"target: {target.profile.name} (channels {list(target.profile.channel_names)}, labels "
          f"{list(target.profile.labels)}, anatomy {sorted(target.profile.organs()) or 'unknown'})")
    print(scores_table(scores, weights))
    for note in notes:
        print(f"note: {note}")
    print(f"recommendation: {advice}")
    if args.output:
        write_record(args.output, SourceScores(
            package_version=__version__, target=target.profile.to_dict(), weights=weights,
            candidates=[s.to_dict() for s in scores], profiles=[c.profile.to_dict() for c in candidates],
            recommendation=advice, notes=notes))
        print(f"scores written to {args.output}")
    if args.plot:
        plot_scores(scores, weights, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from nnunet_progressive.nnunet.offline.transfer.workflow import prepare_transfer

    record, commands = prepare_transfer(args.source, args.target, args.plans, args.configurations,
                                        args.source_plans, args.num_processes)
    for step in record.steps:
        print(f"- {step['step']}: {step['status']}")
    print(f"\n{record.source_dataset} is preprocessed with the plans of {record.target_dataset} as "
          f"{record.source_plans}. Next:")
    for command in commands:
        print(f"    {command}")
    return 0


def run_adapt(args: argparse.Namespace) -> int:
    from nnunet_progressive.nnunet.offline.transfer.weights import adapt_checkpoint
    from nnunet_progressive.transfer.report import mapping_report

    _check_writable(args.output, "--output")
    channels = [c.strip() for c in args.source_channels.split(",")] if args.source_channels else None
    record = adapt_checkpoint(args.checkpoint, args.dataset, args.configuration, args.output, args.plans, args.trainer,
                              args.channel_rule, channels, args.min_share, not args.no_kernel_adapt, args.seed)
    print(mapping_report(json.loads(record.model_dump_json())))
    print(f"\nwritten: {args.output} (report: {args.output}.transfer.json). Fine-tune with:\n    nnUNetv2_train "
          f"{args.dataset} {args.configuration} FOLD -p {args.plans} -tr nnUNetTrainer_Finetune -pretrained_weights "
          f"{args.output}")
    return 0
