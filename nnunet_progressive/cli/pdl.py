"""`nnprog rank`: rank each fold's training cases of a preprocessed dataset by image dissimilarity (Progressive DL)."""

from __future__ import annotations

import argparse

from nnunet_progressive.cli.arguments import positive_int

# Only light constants here: the heavy imports (nnU-Net, SimpleITK) happen when the command runs.
MODES = ("auto", "pairwise", "reference")
REGISTRATIONS = ("rigid_affine", "rigid", "affine", "none")
REGIONS = ("body", "image")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``rank`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "rank",
        help="rank training cases by image dissimilarity (MSE, PSNR, SSIM, UQI after registration)",
        description=(
            "Rank the training cases of each nnU-Net fold of a preprocessed dataset by image dissimilarity for "
            "Progressive DL. A fold's ranking uses that fold's training cases only (from splits_final.json, or "
            "nnU-Net's default 5-fold split where nnUNetv2_train has not written it yet): the grid, the data ranges, "
            "the reference and every mean dissimilarity depend on no validation image. Each case is resampled onto "
            "one grid for the fold (written as grid_shape and grid_spacing: per axis at most 64 voxels, fewer where "
            "the fold's largest case has fewer, spanning the largest extent in mm of any of its cases, centres "
            "aligned), "
            "registered to the cases it is compared with (rigid, then affine, from the better of the centred and the "
            "centre-of-mass start), and scored with MSE, PSNR, SSIM and UQI; the combined rank (0 = most dissimilar) "
            "is the mean of the per-metric ranks, and the file also holds the order by MSE, PSNR and SSIM alone (the "
            "PDL trainers read the one NNPROG_RANKING_METRIC names). Every pair's record says the registration stage "
            "kept, any stage discarded and why, and its metric values; the summary counts them. Writes "
            "similarity_ranking_<DATA_IDENTIFIER>_fold<F>.json per fold into $nnUNet_preprocessed/DatasetXXX_Name/ "
            "(the configuration's data identifier, e.g. similarity_ranking_nnUNetPlans_3d_fullres_fold0.json: the "
            "file the PDL trainers of fold F read); a re-run reuses the pair cache next to it "
            "(similarity_ranking_<DATA_IDENTIFIER>_fold<F>.pairs.json)."
        ),
    )
    parser.add_argument("-d", "--dataset", required=True, help="dataset name or id, e.g. 4 or Dataset004_Hippocampus")
    parser.add_argument(
        "-c", "--configuration", default="3d_fullres", help="nnU-Net configuration (default: 3d_fullres)"
    )
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument(
        "-f",
        "--fold",
        dest="folds",
        nargs="+",
        default=None,
        metavar="F",
        help="nnU-Net fold(s) to rank: integers or 'all' (default: every fold of the split)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="auto",
        help="pairwise: every pair of cases (N(N-1)/2 registrations); reference: every case against one "
        "reference (N-1); auto (default): pairwise up to 64 cases, else reference",
    )
    parser.add_argument(
        "--reference",
        default=None,
        metavar="CASE_ID",
        help="reference case for reference mode (default: the case closest to the mean image); implies "
        "reference mode under --mode auto",
    )
    parser.add_argument(
        "--registration",
        choices=REGISTRATIONS,
        default="rigid_affine",
        help="registration before comparing (default: rigid_affine = rigid, then affine)",
    )
    parser.add_argument(
        "--region",
        choices=REGIONS,
        default="body",
        help="body (default): compare inside the union of both cases' body masks; image: all voxels",
    )
    parser.add_argument(
        "-np",
        "--num-processes",
        dest="num_processes",
        type=positive_int,
        default=1,
        help="worker processes (default: 1)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        help="output JSON of one fold (with --fold F; default: "
        "$nnUNet_preprocessed/DatasetXXX_Name/similarity_ranking_<DATA_IDENTIFIER>_fold<F>.json)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``nnprog rank`` with parsed ``args``; returns the exit code."""
    from nnunet_progressive.nnunet.resolve import planned_plans_file

    planned_plans_file(args.dataset, args.configuration, args.plans)  # said before nnU-Net is imported
    from nnunet_progressive.nnunet.offline.pdl_ranking import rank_dataset

    rank_dataset(
        args.dataset,
        configuration=args.configuration,
        plans=args.plans,
        mode=args.mode,
        reference=args.reference,
        registration=args.registration,
        region=args.region,
        num_processes=args.num_processes,
        output=args.output,
        folds=args.folds,
    )
    return 0
