"""`nnprog rank`'s nnU-Net side: read a preprocessed dataset, run the comparison of
:mod:`nnunet_progressive.pdl.similarity.compare` over its case pairs (in a spawn pool), write the ranking JSON.

See :mod:`nnunet_progressive.pdl.similarity.compare` for the method, the output format and the pair cache.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from nnunet_progressive import __version__
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.io import check_writable
from nnunet_progressive.core.records import SimilarityRanking, ranking_file_name, write_record
from nnunet_progressive.pdl.similarity import ranking
from nnunet_progressive.pdl.similarity.compare import (
    CACHE_FORMAT,
    DEFAULT_GRID_SIZE,
    MODE_CHOICES,
    OUTPUT_FORMAT,
    REGIONS,
    SEED,
    PairCache,
    PairResult,
    Thumbnail,
    cache_path_for,
    case_list_fingerprint,
    channel_data_ranges,
    common_grid,
    compare_pair,
    make_thumbnail,
    summarise,
)
from nnunet_progressive.pdl.similarity.metrics import METRIC_NAMES, PSNR_CAP_DB
from nnunet_progressive.pdl.similarity.registration import REGISTRATION_METHODS

REGISTRATION_START = "moments"  # the registration's start (registration.REGISTRATION_STARTS), part of the cache key

__all__ = ["rank_dataset", "rank_preprocessed_folder", "default_output_path", "case_list_fingerprint",
           "cache_path_for", "compare_pair", "REGIONS", "DEFAULT_GRID_SIZE"]

def _case_spacing(
    configuration_spacing: Sequence[float],
    ndim: int,
    properties: Mapping[str, Any],
    transpose_forward: Sequence[int],
    case_id: str,
) -> tuple[float, ...]:
    """Spacing (mm, array axis order) of a preprocessed case: the configuration's, or for 2d
    configurations (two spacings for 3D arrays) the case's own slice spacing plus the in-plane ones."""
    spacing = [float(s) for s in configuration_spacing]
    if len(spacing) == ndim:
        return tuple(spacing)
    if len(spacing) == ndim - 1 and "spacing" in properties:
        original = [float(properties["spacing"][i]) for i in transpose_forward]
        return (original[0], *spacing)
    raise ProgressiveConfigError(
        f"Case {case_id}: cannot tell its spacing: the configuration has {len(spacing)} spacings "
        f"{spacing} for {ndim}D data and the case properties hold no 'spacing'."
    )


def _open_dataset(data_folder: Path) -> tuple[type, Any]:
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    try:
        dataset_class = infer_dataset_class(str(data_folder))
    except (AssertionError, KeyError, FileNotFoundError) as error:
        raise ProgressiveConfigError(
            f"Cannot read preprocessed cases in {data_folder}: expected nnU-Net's .b2nd (or .npz) case files "
            f"and .pkl properties ({error}). Re-run nnUNetv2_preprocess for this configuration."
        ) from error
    return dataset_class, dataset_class(str(data_folder))


def damaged_case_error(data_folder: str | Path, case_id: str, error: BaseException) -> ProgressiveConfigError:
    """One clear error for a preprocessed case that cannot be read (truncated or overwritten files)."""
    files = ", ".join(p.name for p in sorted(Path(data_folder).glob(f"{case_id}[._]*"))) or f"{case_id}.*"
    reason = " ".join(str(error).split())[:200]
    return ProgressiveConfigError(
        f"preprocessed case {case_id} in {data_folder} cannot be read ({type(error).__name__}: {reason}); its files "
        f"({files}) are damaged or incomplete. Re-run nnU-Net's preprocessing for this configuration "
        f"(nnUNetv2_preprocess -d DATASET -c CONFIGURATION, or nnUNetv2_plan_and_preprocess), then rank again."
    )


def _read_case(dataset: Any, case_id: str, voxels: bool) -> tuple[Any, Any, dict]:
    """``(data, seg, properties)`` of a case; with ``voxels`` the arrays are read in full (a truncated file shows
    only then). Any read failure is one :func:`damaged_case_error`."""
    try:
        data, seg, _, properties = dataset.load_case(case_id)
        if voxels:
            data = np.asarray(data[:], dtype=np.float32)
            seg = None if seg is None else np.asarray(seg[:])
    except Exception as error:  # blosc2's RuntimeError, pickle's EOFError/UnpicklingError, OSError, ValueError
        raise damaged_case_error(dataset.source_folder, case_id, error) from None
    return data, seg, properties


def _load_case(dataset: Any, case_id: str) -> tuple[np.ndarray, np.ndarray | None, dict]:
    data, seg, properties = _read_case(dataset, case_id, voxels=True)
    nonzero = None if seg is None else seg[0] >= 0
    return data, nonzero, properties


# Worker-side state (set by _init_worker in spawned processes, or used in-process).
_WORKER_DATASET: dict[str, Any] = {}


def _init_worker(sitk_threads: int, parent: int | None = None) -> None:
    """A pool worker ends quietly with ``nnprog rank``: SIGKILL from the kernel when the parent dies (else each
    worker printed a BrokenPipeError or ConnectionResetError traceback after a kill), and Ctrl-C is left to the
    parent, which stops the pool."""
    import signal

    import SimpleITK as sitk

    from nnunet_progressive.nnunet.hooks.training_process import set_parent_death_signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if set_parent_death_signal(signal.SIGKILL) and parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)  # the parent died before the request took effect
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(sitk_threads)))


def _thumbnail_task(task: tuple) -> tuple[str, Thumbnail]:
    data_folder, case_id, spacing, grid_shape, grid_spacing = task
    dataset = _WORKER_DATASET.get(data_folder)
    if dataset is None:
        _, dataset = _open_dataset(Path(data_folder))
        _WORKER_DATASET.clear()
        _WORKER_DATASET[data_folder] = dataset
    data, nonzero, _ = _load_case(dataset, case_id)
    return case_id, make_thumbnail(data, spacing, grid_shape, grid_spacing, nonzero, name=case_id)


def _compare_task(task: tuple) -> tuple[ranking.Pair, PairResult, float]:
    fixed_id, moving_id, fixed, moving, grid_spacing, data_ranges, registration, region = task
    start = time.perf_counter()
    # Looked up as a module global on every call so tests can monkeypatch it (in-process runs).
    result = compare_pair(
        fixed, moving, grid_spacing, data_ranges, registration, region, name=f"{fixed_id} vs {moving_id}",
        start=REGISTRATION_START,
    )
    return (fixed_id, moving_id), result, time.perf_counter() - start


def _run_tasks(
    function: Callable[[tuple], Any],
    tasks: Sequence[tuple],
    num_processes: int,
    description: str,
    progress: bool,
) -> Iterable[Any]:
    """Yield ``function(task)`` for all tasks, in-process or in a spawn pool (order not guaranteed)."""
    bar = tqdm(total=len(tasks), desc=description, disable=not progress or not tasks, unit="item")
    try:
        if num_processes <= 1 or len(tasks) <= 1:
            for task in tasks:
                yield function(task)
                bar.update()
            return
        threads = max(1, (os.cpu_count() or 1) // num_processes)
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(num_processes, len(tasks)), initializer=_init_worker,
                          initargs=(threads, os.getpid())) as pool:
            for output in pool.imap_unordered(function, tasks, chunksize=1):
                yield output
                bar.update()
    finally:
        bar.close()


def _format_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def rank_preprocessed_folder(
    data_folder: str | os.PathLike,
    configuration_spacing: Sequence[float],
    output: str | os.PathLike,
    *,
    transpose_forward: Sequence[int] = (0, 1, 2),
    mode: str = "auto",
    reference: str | None = None,
    registration: str = "rigid_affine",
    region: str = "body",
    num_processes: int = 1,
    grid_size: int = DEFAULT_GRID_SIZE,
    pairwise_limit: int = ranking.PAIRWISE_LIMIT,
    extra_settings: Mapping[str, Any] | None = None,
    progress: bool = True,
    case_ids: Sequence[str] | None = None,
) -> Path:
    """Rank the cases in one preprocessed data folder (``<nnUNet_preprocessed>/DatasetX/<data_identifier>``).

    ``configuration_spacing``: the configuration's spacing (mm, array axis order). ``output``: the JSON
    file to write; the pair cache goes next to it. ``extra_settings`` (e.g. configuration, plans, fold) are
    stored in the output and the cache key. ``case_ids``: the cases to rank (a fold's training cases; default:
    every case in the folder); nothing else is read, so the grid, data ranges and reference depend on them only.
    Returns the output path.
    """
    if mode not in MODE_CHOICES:
        raise ProgressiveConfigError(f"Unknown mode {mode!r}; expected one of {', '.join(MODE_CHOICES)}.")
    if registration not in REGISTRATION_METHODS:
        raise ProgressiveConfigError(
            f"Unknown registration {registration!r}; expected one of {', '.join(REGISTRATION_METHODS)}."
        )
    if region not in REGIONS:
        raise ProgressiveConfigError(f"Unknown region {region!r}; expected one of {', '.join(REGIONS)}.")
    if num_processes < 1:
        raise ProgressiveConfigError(f"num_processes must be >= 1; received {num_processes}.")
    if mode == "pairwise" and reference is not None:
        raise ProgressiveConfigError(
            f"A reference ({reference}) is only used in reference mode; pass mode='reference' or 'auto', "
            "or drop the reference."
        )
    started = time.perf_counter()
    fold = (extra_settings or {}).get("fold")
    data_folder = Path(data_folder)
    output = check_writable(output, "ranking output (-o)")  # before the work, not after it
    if not data_folder.is_dir():
        raise ProgressiveConfigError(
            f"Preprocessed data folder {data_folder} does not exist. Run nnUNetv2_preprocess (or "
            "nnUNetv2_plan_and_preprocess) for this dataset and configuration first."
        )
    _, dataset = _open_dataset(data_folder)
    if case_ids is None:
        case_ids = sorted(dataset.identifiers)
    else:
        case_ids = sorted(str(c) for c in case_ids)
        absent = sorted(set(case_ids) - set(dataset.identifiers))
        if absent:
            raise ProgressiveConfigError(
                f"{len(absent)} case(s) to rank are not preprocessed in {data_folder} (e.g. {absent[:3]}); the split "
                "file names cases this preprocessing does not have. Fix splits_final.json or preprocess again."
            )
    if len(case_ids) < 2:
        raise ProgressiveConfigError(
            f"Ranking needs at least 2 cases; found {len(case_ids)} in {data_folder} "
            f"({case_ids}). Check that preprocessing finished (and the fold has 2 training cases or more)."
        )

    # Header pass: shapes, channels, spacings (blosc2 opens lazily, so this reads no voxel data).
    shapes, spacings, channels = {}, {}, {}
    for case_id in case_ids:
        data, _, properties = _read_case(dataset, case_id, voxels=False)
        channels[case_id] = int(data.shape[0])
        shapes[case_id] = tuple(int(n) for n in data.shape[1:])
        spacings[case_id] = _case_spacing(
            configuration_spacing, len(shapes[case_id]), properties, transpose_forward, case_id
        )
    if len(set(channels.values())) > 1:
        counts: dict[int, list[str]] = {}
        for case_id, count in channels.items():
            counts.setdefault(count, []).append(case_id)
        detail = "; ".join(f"{n} channel(s): {ids[:5]}{' ...' if len(ids) > 5 else ''}" for n, ids in counts.items())
        raise ProgressiveConfigError(
            f"All cases must have the same number of channels; found {detail}. Fix the raw dataset "
            "(one image per channel_names entry for every case) and preprocess again."
        )
    grid_shape, grid_spacing = common_grid([shapes[c] for c in case_ids], [spacings[c] for c in case_ids], grid_size)

    chosen_mode = (
        ("reference" if reference is not None else ranking.choose_mode(len(case_ids), pairwise_limit))
        if mode == "auto"
        else mode
    )
    if reference is not None and reference not in case_ids:
        raise ProgressiveConfigError(
            f"Reference case {reference!r} is not among the {len(case_ids)} preprocessed cases "
            f"(e.g. {case_ids[:5]}). Pass one of them or leave it out to pick one automatically."
        )

    print(
        f"Ranking {len(case_ids)} {'cases' if fold is None else f'training cases of fold {fold}'} of {data_folder}: "
        f"mode {chosen_mode}, registration {registration}, "
        f"region {region}, grid {grid_shape} at {tuple(round(s, 3) for s in grid_spacing)} mm.",
        flush=True,
    )
    thumbnail_tasks = [(str(data_folder), c, spacings[c], grid_shape, grid_spacing) for c in case_ids]
    thumbnails: dict[str, Thumbnail] = dict(
        _run_tasks(_thumbnail_task, thumbnail_tasks, num_processes, "Loading cases", progress)
    )
    data_ranges = channel_data_ranges([thumbnails[c].image for c in case_ids])
    if chosen_mode == "reference" and reference is None:
        reference = ranking.medoid_reference({c: thumbnails[c].image for c in case_ids})
        print(f"Reference case (closest to the mean image): {reference}", flush=True)

    settings = {
        "format": CACHE_FORMAT,
        "registration": registration,
        "region": region,
        "seed": SEED,
        "registration_start": REGISTRATION_START,
        "grid_shape": list(grid_shape),
        "grid_spacing": [round(s, 6) for s in grid_spacing],
        "data_ranges": [round(r, 6) for r in data_ranges],
        **dict(extra_settings or {}),
    }
    cache = PairCache(cache_path_for(output), settings)
    if cache.discarded:
        print(f"Pair cache {cache.path} holds {cache.discarded} pairs of other settings; starting afresh.")
    pairs = ranking.planned_pairs(case_ids, chosen_mode, reference)
    pending = [pair for pair in pairs if pair not in cache.results]

    def task(pair: ranking.Pair) -> tuple:
        fixed_id, moving_id = pair
        return (
            fixed_id,
            moving_id,
            thumbnails[fixed_id],
            thumbnails[moving_id],
            grid_spacing,
            data_ranges,
            registration,
            region,
        )

    if pending:
        print(f"{len(pairs)} pairs, {len(pairs) - len(pending)} cached, {len(pending)} to compute.", flush=True)
        pair, result, seconds = _compare_task(task(pending[0]))
        cache.add(pair, result, seconds)
        _report_pair(pair, result)
        full_run = ranking.estimate_seconds(len(case_ids), chosen_mode, seconds, num_processes)
        remaining = (len(pending) - 1) * seconds / num_processes
        print(
            f"First pair took {seconds:.2f} s. Estimated time with {num_processes} process(es): about "
            f"{_format_seconds(remaining)} for the remaining {len(pending) - 1} pairs "
            f"(a full run of {len(pairs)} pairs: {_format_seconds(full_run)}).",
            flush=True,
        )
        try:
            outputs = _run_tasks(
                _compare_task, [task(p) for p in pending[1:]], num_processes, "Comparing pairs", progress
            )
            for pair, result, seconds in outputs:
                cache.add(pair, result, seconds)
                _report_pair(pair, result)
        finally:
            cache.flush()
    else:
        print(f"All {len(pairs)} pairs found in the cache {cache.path}.", flush=True)

    summary = summarise(case_ids, {pair: cache.results[pair] for pair in pairs}, chosen_mode, reference)
    content = SimilarityRanking.model_validate({
        "format": OUTPUT_FORMAT,
        "package_version": __version__,
        "case_ids": case_ids,
        "case_list_fingerprint": case_list_fingerprint(case_ids),
        "mode": chosen_mode,
        "reference": reference,
        "registration": registration,
        "region": region,
        "metrics": list(METRIC_NAMES),
        "score_definition": "per case and metric: dissimilarity, higher = more dissimilar (mse; -psnr in dB, "
        f"capped at {PSNR_CAP_DB:g} dB; 1 - ssim; 1 - uqi), mean over pairs (pairwise) or to the reference",
        "rank_definition": "combined_rank: mean of per-metric ranks (0 = most dissimilar), ties by case id; "
        "order lists the cases most dissimilar first",
        **summary,
        "num_pairs": len(pairs),
        "grid_shape": list(grid_shape),
        "grid_spacing": list(grid_spacing),
        "data_ranges": data_ranges,
        "data_folder": str(data_folder),
        "pair_cache": cache.path.name,
        "settings": {k: v for k, v in settings.items() if k not in ("format",)},
        "seconds": round(time.perf_counter() - started, 2),
    })
    write_record(output, content)
    print(f"Wrote {output} ({len(case_ids)} cases{'' if fold is None else f' of fold {fold}'}; registration: "
          f"{registration_line(summary['registration_summary'])}). Most dissimilar: {summary['order'][:5]}",
          flush=True)
    return output


def registration_line(counts: Mapping[str, Any]) -> str:
    """One line of a ranking's registration counts (compare.registration_counts)."""
    by_status = ", ".join(f"{n} {status}" for status, n in counts["by_status"].items() if n)
    discarded = [f"{counts[f'{stage}_discarded']} with the {stage} stage discarded" for stage in ("affine", "rigid")
                 if counts[f"{stage}_discarded"]]
    return f"{counts['pairs']} pairs: {by_status}" + (f" ({'; '.join(discarded)})" if discarded else "")


def _report_pair(pair: ranking.Pair, result: PairResult) -> None:
    """Say, as it happens, which pair was not registered as asked (status other than registered / off)."""
    if result.status not in ("registered", "off"):
        tqdm.write(f"{pair[0]} vs {pair[1]}: registration {result.status}: {result.message}")


def default_output_path(preprocessed_dataset_folder: str | os.PathLike, data_identifier: str,
                        fold: int | str) -> Path:
    """``<preprocessed dataset folder>/similarity_ranking_<data identifier>_fold<F>.json``, e.g.
    ``similarity_ranking_nnUNetPlans_3d_fullres_fold0.json``."""
    return Path(preprocessed_dataset_folder) / ranking_file_name(data_identifier, fold)


def dataset_splits(preprocessed_dataset_folder: Path, all_case_ids: Sequence[str]) -> tuple[list[dict], str]:
    """The folds' splits as the trainers will see them: ``splits_final.json`` if present, else nnU-Net's default
    (5-fold, seed 12345, what nnUNetv2_train writes on its first run); and where they came from."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    splits_file = Path(preprocessed_dataset_folder) / "splits_final.json"
    if splits_file.is_file():
        import json

        try:
            splits = json.loads(splits_file.read_text(encoding="utf-8"))
            if not isinstance(splits, list) or not all(isinstance(s, dict) and "train" in s for s in splits):
                raise ValueError("expected a list of {train, val} folds")
        except ValueError as error:
            raise ProgressiveConfigError(
                f"{splits_file} is not nnU-Net's split file ({error}); fix or delete it (nnUNetv2_train writes a new "
                "one), then rank again."
            ) from None
        return splits, str(splits_file)
    try:
        splits = generate_crossval_split(sorted(all_case_ids), seed=12345, n_splits=5)
    except ValueError as error:  # scikit-learn's KFold: fewer cases than folds
        raise ProgressiveConfigError(
            f"nnU-Net's default 5-fold split needs at least 5 cases; {preprocessed_dataset_folder} has "
            f"{len(all_case_ids)} ({error}). Write {splits_file} yourself, or rank (and train) fold all: "
            "nnprog rank ... --fold all"
        ) from None
    return splits, "nnU-Net's default 5-fold split (splits_final.json not written yet)"


def rank_dataset(
    dataset_name_or_id: str | int,
    configuration: str = "3d_fullres",
    plans: str = "nnUNetPlans",
    mode: str = "auto",
    reference: str | None = None,
    registration: str = "rigid_affine",
    region: str = "body",
    num_processes: int = 1,
    output: str | os.PathLike | None = None,
    folds: Sequence[int | str] | None = None,
    preprocessed: str | os.PathLike | None = None,
) -> list[Path]:
    """Rank the training cases of each fold of a preprocessed nnU-Net dataset; returns the written JSON paths.

    ``folds``: nnU-Net folds (integers or "all"); default: every fold of the split (``splits_final.json``, or
    nnU-Net's default 5 folds). Each fold's ranking covers its training cases only. Reads
    ``$nnUNet_preprocessed/DatasetXXX_Name/<plans>.json`` for the configuration's data identifier and spacing, and
    the cases in ``<data_identifier>/``. ``output`` (one fold only) replaces the default file name
    (:func:`default_output_path`). ``preprocessed``: nnU-Net's preprocessed folder (default
    ``$nnUNet_preprocessed``; a caller with its own folders, such as the benchmark, passes them). See the module doc
    for the method and output.
    """
    from nnunet_progressive.nnunet.resolve import resolve_configuration

    try:
        chosen = [ranking.parse_fold(f) for f in folds] if folds else None
    except ValueError as error:
        raise ProgressiveConfigError(f"{error} (nnprog rank --fold)") from None
    if output is not None:
        check_writable(output, "ranking output (-o)")  # before the work, not after it
    planned = resolve_configuration(dataset_name_or_id, configuration, plans, preprocessed)
    data_folder = planned.require_preprocessed()
    dataset_folder = planned.preprocessed_dataset_folder
    configuration_manager = planned.configuration_manager
    _, dataset = _open_dataset(data_folder)
    all_ids = sorted(dataset.identifiers)
    if len(all_ids) < 2:
        raise ProgressiveConfigError(
            f"Ranking needs at least 2 preprocessed cases; found {len(all_ids)} in {data_folder} ({all_ids}). Check "
            "that preprocessing finished."
        )
    if chosen is not None and all(f == "all" for f in chosen):
        splits, splits_source = [], "fold all: every preprocessed case"
    else:
        splits, splits_source = dataset_splits(dataset_folder, all_ids)
    if chosen is None:
        chosen = list(range(len(splits)))
    if output is not None and len(chosen) != 1:
        raise ProgressiveConfigError(
            f"-o names one file but {len(chosen)} folds would be ranked ({chosen}); add --fold F to rank one fold "
            "into that file, or leave -o out (one file per fold next to the plans)."
        )
    written = []
    for fold in chosen:
        try:
            training_ids = ranking.fold_training_cases(all_ids, splits, fold)
        except ValueError as error:
            raise ProgressiveConfigError(f"{splits_source}: {error} Fix the split file or preprocess again.") from None
        output_path = (Path(output) if output is not None
                       else default_output_path(dataset_folder, configuration_manager.data_identifier, fold))
        written.append(rank_preprocessed_folder(
            data_folder,
            configuration_manager.spacing,
            output_path,
            transpose_forward=planned.plans_manager.transpose_forward,
            mode=mode,
            reference=reference,
            registration=registration,
            region=region,
            num_processes=num_processes,
            case_ids=training_ids,
            extra_settings={
                "dataset": planned.dataset_name,
                "configuration": configuration,
                "plans": plans,
                "data_identifier": configuration_manager.data_identifier,
                "spacing": [float(x) for x in configuration_manager.spacing],
                "fold": fold,
                "splits": splits_source,
            },
        ))
    return written
