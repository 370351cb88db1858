"""Pre-training step of a benchmark spec (``pretraining:``): sources trained and adapted before the trainers run.

For every pretraining entry and every spec dataset (the fine-tuning target) and configuration, with nnU-Net's
commands and this package's ``nnprog transfer`` steps called as the library functions the commands call (in this
process, on the spec's folders, which are passed to them, not read from the environment), each logged to
``<results_dir>/logs/pretraining_<label>_<dataset>.log``:

1. ``nnprog transfer prepare --source SOURCE --target DATASET -p PLANS -c CONFIGS`` (the source gets the target's
   plans, nnU-Net's documented workflow; its nnU-Net commands run as logged subprocesses);
2. ``nnUNetv2_train SOURCE CONFIG all -p PLANS_from<TARGET> -tr TRAINER`` with the entry's knobs, once for all
   seeds, recorded under ``<results_dir>/pretraining/runs`` (resumed or skipped like any benchmark run, and kept out
   of the report); nnU-Net's final validation, which on fold ``all`` predicts the training cases, is skipped
   (``NNPROG_FINAL_VALIDATION=off`` unless the spec or the entry sets it);
3. ``nnprog transfer adapt`` of its final checkpoint onto the target's network, written to
   :func:`pretrained_weights_path`; the fine-tuning runs of the entry's label start from it.

Every step is skipped when its output is there (and, for the adapted weights, newer than the source checkpoint).
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from nnunet_progressive.benchmark.execution import (
    RunContext,
    execute_run,
    pretrained_weights_path,
    resolve_dataset_name,
)
from nnunet_progressive.benchmark.spec import BenchmarkRun, BenchmarkSpec, PretrainingSpec
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.naming import dataset_id
from nnunet_progressive.nnunet.orchestration.runner import (
    NnunetFolders,
    output_to_log,
    run_environment,
    run_logged,
)

PRETRAINING_DIR = "pretraining"
# nnU-Net's validation after training on fold `all` predicts every training case of the source: no measurement, and
# on large sources much of the pre-training's time (the spec's or the entry's knobs may turn it back on)
PRETRAINING_KNOBS = {"NNPROG_FINAL_VALIDATION": "off"}




def _source_name(entry: PretrainingSpec, folders: NnunetFolders) -> str:
    name = resolve_dataset_name(entry.source, folders)
    if entry.source.synthetic_preset and not (folders.raw / name / "dataset.json").is_file():
        from nnunet_progressive.datasets.generated import write_generated

        print(f"generating {name} (generated dataset {entry.source.synthetic_preset})", file=sys.stderr)
        write_generated(entry.source.synthetic_preset, folders.raw, entry.source.id)
    if not (folders.raw / name).is_dir():
        raise ProgressiveConfigError(f"pretraining source {name} is not in {folders.raw}; convert it or set "
                                     f"prepare.synthetic_preset")
    return name


def run_pretraining(spec: BenchmarkSpec, folders: NnunetFolders, dataset_names: Sequence[str],
                    log: Callable[[str], None] = print) -> list[Path]:
    """Prepare, pre-train and adapt every pretraining entry for every spec dataset; returns the weight files."""
    from nnunet_progressive.nnunet.offline.transfer.weights import adapt_checkpoint
    from nnunet_progressive.nnunet.offline.transfer.workflow import prepare_transfer, source_plans_name
    from nnunet_progressive.transfer.report import mapping_report

    used = {t.pretrained for t in spec.trainers if t.pretrained is not None}
    context = RunContext(folders, spec.results_dir / PRETRAINING_DIR, spec.executor.device,
                         spec.executor.gpus_per_run)
    written = []
    env = run_environment(folders, device=spec.executor.device)
    for entry in spec.pretraining:
        if entry.label not in used:
            log(f"pretraining {entry.label!r}: no trainer uses it, skipped")
            continue
        source = _source_name(entry, folders)
        for dataset, target in zip(spec.datasets, dataset_names):
            plans, configurations = spec.training_plans(dataset), list(dataset.configurations)
            log_file = spec.results_dir / "logs" / f"pretraining_{entry.label}_{target}.log"
            log_file.parent.mkdir(parents=True, exist_ok=True)
            log(f"pretraining {entry.label!r}: {source} with the plans of {target} (log: {log_file})")
            with output_to_log(log_file, f"nnprog transfer prepare --source {source} --target {target} -p {plans} "
                                         f"-c {' '.join(configurations)} -np {entry.source.num_processes}"):
                prepare_transfer(source, target, plans, configurations, num_processes=entry.source.num_processes,
                                 environment=env, run_command=partial(run_logged, env=env, log_file=log_file))
            for configuration in configurations:
                knobs = {**spec.knobs, **entry.knobs}
                identity = BenchmarkRun(source, configuration, source_plans_name(plans, dataset_id(target)),
                                        entry.trainer, "all", 0, knobs)
                # the default final-validation setting changes no weight: left out of the run's id (so pre-training
                # runs of earlier versions stay done)
                run = replace(identity, knobs={**PRETRAINING_KNOBS, **knobs})
                record = execute_run(run, context)
                if record.status != "done":
                    raise ProgressiveConfigError(f"pre-training {entry.label!r} ({run.run_id}) did not finish: "
                                                 f"{record.error or record.status}; see {record.log_file}")
                checkpoint = Path(record.fold_folder) / "checkpoint_final.pth"
                weights = pretrained_weights_path(spec.results_dir, entry.label, target, configuration, plans)
                if not weights.is_file() or weights.stat().st_mtime < checkpoint.stat().st_mtime:
                    weights.parent.mkdir(parents=True, exist_ok=True)
                    with output_to_log(log_file, f"nnprog transfer adapt {checkpoint} -d {target} -c "
                                                 f"{configuration} -p {plans} -o {weights}"):
                        adapted = adapt_checkpoint(checkpoint, target, configuration, weights, plans,
                                                   preprocessed=folders.preprocessed)
                        print(mapping_report(adapted.to_json()))
                written.append(weights)
    return written



