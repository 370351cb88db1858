"""The benchmark spec: which datasets, configurations, plans, trainers, folds and seeds to run, and where.

A spec is a YAML (``.yaml``/``.yml``, needs pyyaml) or JSON (``.json``) file. Relative paths are relative to
the spec file. Example (every key shown; only ``results_dir``, ``datasets`` and ``trainers`` are required)::

    results_dir: results/pgps_tiny          # records, logs, report; one run = results_dir/runs/<run_id>.json
    nnunet_root: nnunet                     # holds nnUNet_raw, nnUNet_preprocessed, nnUNet_results
                                            # (default: the nnUNet_raw/_preprocessed/_results variables)
    executor:
      type: local                           # local | slurm
      device: cpu                           # -device of nnUNetv2_train: cuda (default) | cpu | mps
      gpus: null                            # local only: [0, 1, 2, 3] = one run per GPU in parallel
      run_timeout_hours: null               # kill a run after this long (default: no limit)
      slurm:                                # only read when type is slurm (submitit)
        partition: gpu
        time_min: 1440                      # per job; longer runs are requeued and resume with --c
        gpus_per_node: 1
        cpus_per_task: 8
        mem_gb: 64
        array_parallelism: 16               # at most this many array tasks at once
        max_num_resubmits: 3                # requeues after a time-out (preemptions are always requeued)
        setup: ["module load cuda"]         # shell lines before each job
        extra: {account: my_account}        # any other submitit slurm_* parameter, without the prefix
        cluster: slurm                      # submitit cluster: slurm | local | debug (debug: in-process)
    datasets:
      - id: 501                             # or name: Dataset501_NNProgTiny3D
        configurations: [3d_fullres]
        plans: nnUNetPlans                  # plans identifier (default nnUNetPlans)
        prepare:
          synthetic_preset: tiny3d          # generate the raw data (nnunet_progressive.datasets.generated)
          num_processes: 2                  # -np / -npfp of nnU-Net's planning and preprocessing
    trainers:                               # order = column order of the report
      - nnUNetTrainer_ConstantPatch
      - nnUNetTrainer_PGPS_Efficiency
      - name: nnUNetTrainer_PGPS_Performance
        knobs: {NNPROG_MAX_BATCH: 8}        # per-trainer environment, on top of the global knobs
    folds: [0]                              # ints or "all"
    seeds: [0]                              # repeat indices (see below)
    knobs: {NNPROG_EPOCHS: 9, NNPROG_ITERATIONS: 2, NNPROG_VAL_ITERATIONS: 1}
    small_network: true                     # or {features_per_stage: [4, 8, 16, 32], convs_per_stage: 1}
    reference_trainer: nnUNetTrainer_ConstantPatch   # default: see report.choose_reference
    pretraining:                            # transfer learning: sources pre-trained before the trainers run
      - label: similar                      # trainers refer to it: {name: ..., pretrained: similar}
        source: {id: 641, prepare: {synthetic_preset: multiorgan}}
        trainer: nnUNetTrainer_ConstantPatch
        knobs: {NNPROG_EPOCHS: 20}

Pre-training (see :mod:`nnunet_progressive.benchmark.pretraining`): for every spec dataset and configuration the
source is prepared with the dataset's plans (``nnprog transfer prepare``), trained on fold ``all`` (once, for all
seeds) and mapped onto the dataset's network (``nnprog transfer adapt``); a trainer entry with ``pretrained: LABEL``
trains with ``-pretrained_weights`` of that file, into ``<nnUNet_results>/seed_<s>/from_<LABEL>/``, and shows up as
``<trainer> from <LABEL>`` in the report.

Seeds: ``nnUNetv2_train`` has no seed option and nnU-Net seeds nothing but its cross-validation split, so a
"seed" here is a repeat index, not a random seed. Repeat ``s`` trains into its own results folder,
``<nnUNet_results>/seed_<s>/DatasetXXX_.../<trainer>__<plans>__<configuration>/fold_<f>`` (set
``nnUNet_results`` to that ``seed_<s>`` folder to predict with it); repeats differ by nnU-Net's own
randomness (weight initialisation, patch sampling, augmentation).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.datasets.prepare import SMALL_FEATURES_PER_STAGE
from nnunet_progressive.nnunet.runner import NnunetFolders

EXECUTOR_TYPES = ("local", "slurm")
DEVICES = ("cuda", "cpu", "mps")
SUBMITIT_CLUSTERS = ("slurm", "local", "debug")

_TOP_KEYS = {"results_dir", "nnunet_root", "executor", "datasets", "trainers", "folds", "seeds", "knobs",
             "small_network", "reference_trainer", "pretraining"}
_EXECUTOR_KEYS = {"type", "device", "gpus", "run_timeout_hours", "slurm"}
_SLURM_KEYS = {"partition", "time_min", "gpus_per_node", "cpus_per_task", "mem_gb", "array_parallelism",
               "max_num_resubmits", "setup", "extra", "cluster"}
_DATASET_KEYS = {"id", "name", "configurations", "plans", "prepare"}
_PREPARE_KEYS = {"synthetic_preset", "num_processes"}
_TRAINER_KEYS = {"name", "knobs", "pretrained"}
_PRETRAINING_KEYS = {"label", "source", "trainer", "knobs"}
_SMALL_KEYS = {"features_per_stage", "convs_per_stage"}
_DATASET_NAME = re.compile(r"^Dataset(\d{3})_[A-Za-z0-9_-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class SlurmSpec:
    """submitit parameters of the SLURM executor (``time_min`` is submitit's ``timeout_min``)."""

    partition: str | None = None
    time_min: int = 1440
    gpus_per_node: int = 1
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    array_parallelism: int = 16
    max_num_resubmits: int = 3
    setup: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    cluster: str = "slurm"


@dataclass(frozen=True)
class ExecutorSpec:
    type: str = "local"
    device: str = "cuda"
    gpus: tuple[int, ...] | None = None
    run_timeout_hours: float | None = None
    slurm: SlurmSpec = field(default_factory=SlurmSpec)

    @property
    def gpus_per_run(self) -> int:
        """GPUs one run occupies (the factor of GPU hours): 0 on CPU, else 1 locally, gpus_per_node on SLURM."""
        if self.device != "cuda":
            return 0
        return self.slurm.gpus_per_node if self.type == "slurm" else 1


@dataclass(frozen=True)
class DatasetSpec:
    id: int | None
    name: str | None
    configurations: tuple[str, ...]
    plans: str = "nnUNetPlans"
    synthetic_preset: str | None = None
    num_processes: int = 2

    @property
    def label(self) -> str:
        return self.name or f"dataset {self.id}"


@dataclass(frozen=True)
class TrainerSpec:
    name: str
    knobs: Mapping[str, str] = field(default_factory=dict)
    pretrained: str | None = None  # label of a pretraining entry: trains with -pretrained_weights

    @property
    def label(self) -> str:
        """How runs of this entry are named in records and reports."""
        return self.name if self.pretrained is None else f"{self.name} from {self.pretrained}"


@dataclass(frozen=True)
class PretrainingSpec:
    """A source pre-trained on fold ``all`` with each spec dataset's plans, then adapted to its network."""

    label: str
    source: DatasetSpec
    trainer: str = "nnUNetTrainer_ConstantPatch"
    knobs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SmallNetworkSpec:
    """Train with a narrow copy of the plans (:func:`nnunet_progressive.datasets.prepare.write_small_plans`)."""

    features_per_stage: tuple[int, ...] = SMALL_FEATURES_PER_STAGE
    convs_per_stage: int = 1


@dataclass(frozen=True)
class BenchmarkRun:
    """One run: (dataset, configuration, plans, trainer, fold, seed) and the environment it trains with."""

    dataset: str  # DatasetXXX_Name
    configuration: str
    plans: str  # the plans identifier passed to nnUNetv2_train -p
    trainer: str
    fold: int | str
    seed: int
    knobs: Mapping[str, str] = field(default_factory=dict, compare=False)
    pretrained: str | None = None  # pretraining label (-pretrained_weights), part of the run's identity

    @property
    def dataset_id(self) -> int:
        return int(self.dataset[len("Dataset"):len("Dataset") + 3])

    @property
    def label(self) -> str:
        return self.trainer if self.pretrained is None else f"{self.trainer} from {self.pretrained}"

    @property
    def run_id(self) -> str:
        origin = "" if self.pretrained is None else f"__from_{self.pretrained}"
        return (f"{self.dataset}__{self.configuration}__{self.plans}__{self.trainer}{origin}__fold{self.fold}"
                f"__seed{self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dataset": self.dataset, "dataset_id": self.dataset_id,
                "configuration": self.configuration, "plans": self.plans, "trainer": self.trainer,
                "fold": self.fold, "seed": self.seed, "knobs": dict(self.knobs), "pretrained": self.pretrained,
                "label": self.label}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchmarkRun:
        return cls(data["dataset"], data["configuration"], data["plans"], data["trainer"], data["fold"],
                   int(data["seed"]), dict(data.get("knobs") or {}), data.get("pretrained"))


@dataclass(frozen=True)
class BenchmarkSpec:
    results_dir: Path
    nnunet_root: Path | None
    executor: ExecutorSpec
    datasets: tuple[DatasetSpec, ...]
    trainers: tuple[TrainerSpec, ...]
    folds: tuple[int | str, ...] = (0,)
    seeds: tuple[int, ...] = (0,)
    knobs: Mapping[str, str] = field(default_factory=dict)
    small_network: SmallNetworkSpec | None = None
    reference_trainer: str | None = None
    pretraining: tuple[PretrainingSpec, ...] = ()

    @property
    def trainer_names(self) -> list[str]:
        return [t.label for t in self.trainers]

    def training_plans(self, dataset: DatasetSpec) -> str:
        """The plans identifier runs train with: ``<plans>_small`` when ``small_network`` is on."""
        return f"{dataset.plans}_small" if self.small_network is not None else dataset.plans

    def folders(self, environ: Mapping[str, str] | None = None) -> NnunetFolders:
        """nnU-Net's folders: under ``nnunet_root``, else from the nnUNet_* environment variables."""
        if self.nnunet_root is not None:
            return NnunetFolders.under(self.nnunet_root)
        environ = os.environ if environ is None else environ
        names = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
        missing = [n for n in names if not environ.get(n)]
        if missing:
            raise ProgressiveConfigError(
                f"the spec has no nnunet_root and {', '.join(missing)} is not set; add `nnunet_root: FOLDER` to "
                f"the spec or export nnUNet_raw, nnUNet_preprocessed and nnUNet_results"
            )
        return NnunetFolders(*(Path(environ[n]).resolve() for n in names))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings); :func:`parse_spec` reads it back."""
        data = asdict(self)
        data["results_dir"] = str(self.results_dir)
        data["nnunet_root"] = None if self.nnunet_root is None else str(self.nnunet_root)
        data["datasets"] = [
            {"id": d.id, "name": d.name, "configurations": list(d.configurations), "plans": d.plans,
             "prepare": {"synthetic_preset": d.synthetic_preset, "num_processes": d.num_processes}}
            for d in self.datasets
        ]
        data["trainers"] = [{"name": t.name, "knobs": dict(t.knobs), "pretrained": t.pretrained}
                            for t in self.trainers]
        data["pretraining"] = [{"label": p.label, "source": {"id": p.source.id, "name": p.source.name,
                                                              "prepare": {"synthetic_preset": p.source.synthetic_preset,
                                                                          "num_processes": p.source.num_processes}},
                                "trainer": p.trainer, "knobs": dict(p.knobs)} for p in self.pretraining]
        data["small_network"] = False if self.small_network is None else asdict(self.small_network)
        return json.loads(json.dumps(data))


# ------------------------------------------------------------------------------------------------ parsing

def _fail(where: str, expected: str, got: Any, fix: str = "") -> None:
    message = f"{where}: expected {expected}, got {got!r}"
    raise ProgressiveConfigError(message + (f"; {fix}" if fix else ""))


def _check_keys(data: Any, allowed: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        _fail(where, "a mapping (key: value)", data)
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise ProgressiveConfigError(
            f"{where}: unknown key(s) {unknown}; valid keys are {sorted(allowed)} (see docs/benchmark.md)"
        )
    return data


def _int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(where, f"an integer >= {minimum}", value)
    return value


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1"`` -> ``(0, 1)``: repeat indices given on the command line (non-negative, duplicates dropped)."""
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise ProgressiveConfigError(f"--seeds: expected comma-separated integers >= 0 such as 0,1, got {text!r}")
        seeds.append(int(part))
    return tuple(dict.fromkeys(seeds))


def with_seeds(spec: BenchmarkSpec, seeds: Sequence[int]) -> BenchmarkSpec:
    """The spec with other repeat indices (the runs of seeds already done are skipped as usual)."""
    return replace(spec, seeds=tuple(dict.fromkeys(_int(s, f"seeds[{i}]") for i, s in enumerate(seeds))))


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        _fail(where, "a name of letters, digits, '_', '-' or '.'", value)
    return value


def _knobs(data: Any, where: str) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        _fail(where, "a mapping of environment variables, e.g. {NNPROG_EPOCHS: 100}", data)
    knobs = {}
    for key, value in data.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            _fail(f"{where}", "environment variable names", key)
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int | float):
            _fail(f"{where}.{key}", "a string or number", value)
        knobs[key] = str(value)
    return knobs


def _path(value: Any, where: str, base_dir: Path) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value):
        _fail(where, "a folder path", value)
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base_dir / path).resolve()


def _slurm(data: Any) -> SlurmSpec:
    data = _check_keys(data or {}, _SLURM_KEYS, "executor.slurm")
    defaults = SlurmSpec()
    partition = data.get("partition")
    if partition is not None and not isinstance(partition, str):
        _fail("executor.slurm.partition", "a partition name", partition)
    cluster = data.get("cluster", defaults.cluster)
    if cluster not in SUBMITIT_CLUSTERS:
        _fail("executor.slurm.cluster", f"one of {SUBMITIT_CLUSTERS}", cluster)
    mem_gb = data.get("mem_gb")
    if mem_gb is not None and (isinstance(mem_gb, bool) or not isinstance(mem_gb, int | float) or mem_gb <= 0):
        _fail("executor.slurm.mem_gb", "a positive number", mem_gb)
    cpus = data.get("cpus_per_task")
    setup = data.get("setup") or []
    if isinstance(setup, str) or not all(isinstance(line, str) for line in setup):
        _fail("executor.slurm.setup", "a list of shell lines", setup)
    extra = data.get("extra") or {}
    if not isinstance(extra, Mapping):
        _fail("executor.slurm.extra", "a mapping of submitit slurm parameters (without the slurm_ prefix)", extra)
    return SlurmSpec(
        partition=partition,
        time_min=_int(data.get("time_min", defaults.time_min), "executor.slurm.time_min", 1),
        gpus_per_node=_int(data.get("gpus_per_node", defaults.gpus_per_node), "executor.slurm.gpus_per_node"),
        cpus_per_task=None if cpus is None else _int(cpus, "executor.slurm.cpus_per_task", 1),
        mem_gb=mem_gb,
        array_parallelism=_int(data.get("array_parallelism", defaults.array_parallelism),
                               "executor.slurm.array_parallelism", 1),
        max_num_resubmits=_int(data.get("max_num_resubmits", defaults.max_num_resubmits),
                               "executor.slurm.max_num_resubmits"),
        setup=tuple(setup),
        extra=dict(extra),
        cluster=cluster,
    )


def _executor(data: Any) -> ExecutorSpec:
    data = _check_keys(data or {}, _EXECUTOR_KEYS, "executor")
    kind = data.get("type", "local")
    if kind not in EXECUTOR_TYPES:
        _fail("executor.type", f"one of {EXECUTOR_TYPES}", kind)
    device = data.get("device", "cuda")
    if device not in DEVICES:
        _fail("executor.device", f"one of {DEVICES}", device)
    gpus = data.get("gpus")
    if gpus is not None:
        if isinstance(gpus, int | str) or not gpus or not all(
                isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in gpus):
            _fail("executor.gpus", "null or a non-empty list of GPU indices, e.g. [0, 1]", gpus)
        if len(set(gpus)) != len(gpus):
            _fail("executor.gpus", "distinct GPU indices", gpus)
        if kind != "local":
            _fail("executor.gpus", "no gpus list with the slurm executor", gpus,
                  "SLURM assigns the GPUs; set executor.slurm.gpus_per_node instead")
        if device != "cuda":
            _fail("executor.gpus", f"no gpus list with device {device!r}", gpus, "set device: cuda or drop gpus")
        gpus = tuple(gpus)
    timeout = data.get("run_timeout_hours")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        _fail("executor.run_timeout_hours", "a positive number of hours or null", timeout)
    slurm = _slurm(data.get("slurm"))  # read even for local, so one spec switches by changing `type`
    return ExecutorSpec(type=kind, device=device, gpus=gpus, run_timeout_hours=timeout, slurm=slurm)


def _dataset(data: Any, index: int) -> DatasetSpec:
    where = f"datasets[{index}]"
    data = _check_keys(data, _DATASET_KEYS, where)
    dataset_id, name = data.get("id"), data.get("name")
    if dataset_id is None and name is None:
        raise ProgressiveConfigError(f"{where}: needs `id: 4` or `name: Dataset004_Hippocampus`; got neither")
    if dataset_id is not None:
        _int(dataset_id, f"{where}.id", 1)
        if dataset_id > 999:
            _fail(f"{where}.id", "an nnU-Net dataset id from 1 to 999", dataset_id)
    if name is not None:
        match = _DATASET_NAME.match(name) if isinstance(name, str) else None
        if match is None:
            _fail(f"{where}.name", "an nnU-Net dataset folder name like Dataset004_Hippocampus", name)
        if dataset_id is not None and int(match.group(1)) != dataset_id:
            _fail(f"{where}", f"id and name to agree (id {dataset_id})", name)
    configurations = data.get("configurations")
    if isinstance(configurations, str):
        configurations = [configurations]
    if not configurations or not all(isinstance(c, str) and c for c in configurations):
        _fail(f"{where}.configurations", "a non-empty list such as [3d_fullres] or [2d, 3d_fullres]", configurations)
    prepare = _check_keys(data.get("prepare") or {}, _PREPARE_KEYS, f"{where}.prepare")
    preset = prepare.get("synthetic_preset")
    if preset is not None:
        from nnunet_progressive.datasets.generated import generated_dataset_names, generated_task_name

        if preset not in generated_dataset_names():
            _fail(f"{where}.prepare.synthetic_preset", f"one of {generated_dataset_names()}", preset)
        if dataset_id is None:
            raise ProgressiveConfigError(f"{where}: a synthetic_preset needs the dataset `id` to write it under")
        expected = f"Dataset{dataset_id:03d}_{generated_task_name(preset)}"
        if name is not None and name != expected:
            _fail(f"{where}.name", f"{expected!r} (the preset's folder name)", name, "drop `name` or fix it")
    return DatasetSpec(
        id=dataset_id, name=name, configurations=tuple(dict.fromkeys(configurations)),
        plans=_name(data.get("plans", "nnUNetPlans"), f"{where}.plans"), synthetic_preset=preset,
        num_processes=_int(prepare.get("num_processes", 2), f"{where}.prepare.num_processes", 1),
    )


def _trainer(data: Any, index: int) -> TrainerSpec:
    where = f"trainers[{index}]"
    if isinstance(data, str):
        return TrainerSpec(_name(data, where))
    data = _check_keys(data, _TRAINER_KEYS, where)
    if "name" not in data:
        raise ProgressiveConfigError(f"{where}: needs `name: nnUNetTrainer_...`; got keys {sorted(data)}")
    pretrained = data.get("pretrained")
    return TrainerSpec(_name(data["name"], f"{where}.name"), _knobs(data.get("knobs"), f"{where}.knobs"),
                       None if pretrained is None else _name(pretrained, f"{where}.pretrained"))


def _pretraining(data: Any, index: int) -> PretrainingSpec:
    where = f"pretraining[{index}]"
    data = _check_keys(data, _PRETRAINING_KEYS, where)
    for key in ("label", "source"):
        if key not in data:
            raise ProgressiveConfigError(f"{where}: needs `{key}:` (e.g. label: similar, source: {{id: 641}})")
    source = dict(data["source"]) if isinstance(data["source"], Mapping) else data["source"]
    if isinstance(source, Mapping):
        source.setdefault("configurations", ["3d_fullres"])  # the configurations come from the spec's datasets
    return PretrainingSpec(_name(data["label"], f"{where}.label"), _dataset(source, index),
                           _name(data.get("trainer", "nnUNetTrainer_ConstantPatch"), f"{where}.trainer"),
                           _knobs(data.get("knobs"), f"{where}.knobs"))


def _small_network(data: Any) -> SmallNetworkSpec | None:
    if data is None or data is False:
        return None
    if data is True:
        return SmallNetworkSpec()
    data = _check_keys(data, _SMALL_KEYS, "small_network")
    features = data.get("features_per_stage", SMALL_FEATURES_PER_STAGE)
    if isinstance(features, str) or not features or not all(
            isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in features):
        _fail("small_network.features_per_stage", "a list of positive channel counts", features)
    return SmallNetworkSpec(tuple(features), _int(data.get("convs_per_stage", 1), "small_network.convs_per_stage", 1))


def _list(data: Any, where: str, default: Sequence[Any]) -> list[Any]:
    if data is None:
        return list(default)
    if isinstance(data, int | str) and not isinstance(data, bool):
        return [data]
    if not isinstance(data, Sequence) or not data:
        _fail(where, "a non-empty list", data)
    return list(data)


def parse_spec(data: Any, base_dir: str | os.PathLike = ".") -> BenchmarkSpec:
    """A validated :class:`BenchmarkSpec` from the parsed YAML/JSON mapping (paths relative to ``base_dir``).

    Raises:
        ProgressiveConfigError: unknown keys, missing required keys or values of the wrong kind.
    """
    base_dir = Path(base_dir)
    data = _check_keys(data, _TOP_KEYS, "spec")
    for key in ("results_dir", "datasets", "trainers"):
        if key not in data or data[key] in (None, [], ""):
            hint = {"results_dir": "results_dir: results/my_benchmark",
                    "datasets": "datasets: [{id: 4, configurations: [3d_fullres]}]",
                    "trainers": "trainers: [nnUNetTrainer_ConstantPatch, nnUNetTrainer_PGPS_Efficiency]"}[key]
            raise ProgressiveConfigError(f"spec: missing required key {key!r}; add e.g. `{hint}`")
    datasets = data["datasets"]
    if not isinstance(datasets, Sequence) or isinstance(datasets, str):
        _fail("datasets", "a list of datasets", datasets)
    trainers_data = data["trainers"]
    if not isinstance(trainers_data, Sequence) or isinstance(trainers_data, str):
        _fail("trainers", "a list of trainer names", trainers_data)
    trainers = tuple(_trainer(t, i) for i, t in enumerate(trainers_data))
    pretraining_data = data.get("pretraining") or []
    if not isinstance(pretraining_data, Sequence) or isinstance(pretraining_data, str):
        _fail("pretraining", "a list of pretraining entries", pretraining_data)
    pretraining = tuple(_pretraining(p, i) for i, p in enumerate(pretraining_data))
    labels = [p.label for p in pretraining]
    if len(set(labels)) != len(labels):
        raise ProgressiveConfigError(f"pretraining: labels {labels} must be unique")
    for index, trainer in enumerate(trainers):
        if trainer.pretrained is not None and trainer.pretrained not in labels:
            _fail(f"trainers[{index}].pretrained", f"one of the pretraining labels {labels}", trainer.pretrained)
    names = [t.label for t in trainers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ProgressiveConfigError(f"trainers: {duplicates} listed twice; list each trainer once")
    folds = _list(data.get("folds"), "folds", (0,))
    for i, fold in enumerate(folds):
        if fold != "all":
            _int(fold, f"folds[{i}]")
    seeds = [_int(s, f"seeds[{i}]") for i, s in enumerate(_list(data.get("seeds"), "seeds", (0,)))]
    reference = data.get("reference_trainer")
    if reference is not None and reference not in names:
        _fail("reference_trainer", f"one of the trainers {names}", reference)
    parsed_datasets = tuple(_dataset(d, i) for i, d in enumerate(datasets))
    keys = [(d.id, d.name, d.plans) for d in parsed_datasets]
    if len(set(keys)) != len(keys):
        raise ProgressiveConfigError("datasets: the same dataset and plans are listed twice; merge their "
                                     "configurations into one entry")
    nnunet_root = data.get("nnunet_root")
    return BenchmarkSpec(
        results_dir=_path(data["results_dir"], "results_dir", base_dir),
        nnunet_root=None if nnunet_root is None else _path(nnunet_root, "nnunet_root", base_dir),
        executor=_executor(data.get("executor")),
        datasets=parsed_datasets,
        trainers=trainers,
        folds=tuple(dict.fromkeys(folds)),
        seeds=tuple(dict.fromkeys(seeds)),
        knobs=_knobs(data.get("knobs"), "knobs"),
        small_network=_small_network(data.get("small_network")),
        reference_trainer=reference,
        pretraining=pretraining,
    )


def read_spec_file(path: str | os.PathLike) -> Any:
    """The parsed content of a ``.json``, ``.yaml`` or ``.yml`` file."""
    path = Path(path)
    if not path.is_file():
        raise ProgressiveConfigError(f"spec file {path} does not exist")
    text = path.read_text()
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ProgressiveConfigError(f"{path} is not valid JSON: {error}") from None
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ProgressiveConfigError(
                f"{path} is YAML but pyyaml is not installed; `pip install pyyaml` or write the spec as JSON"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ProgressiveConfigError(f"{path} is not valid YAML: {error}") from None
    raise ProgressiveConfigError(f"spec file {path}: expected a .yaml, .yml or .json file, got {suffix!r}")


def load_spec(path: str | os.PathLike) -> BenchmarkSpec:
    """Read and validate a spec file; errors name the file."""
    path = Path(path).resolve()
    try:
        return parse_spec(read_spec_file(path), base_dir=path.parent)
    except ProgressiveConfigError as error:
        message = str(error)
        raise ProgressiveConfigError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def expand_runs(spec: BenchmarkSpec, dataset_names: Sequence[str]) -> list[BenchmarkRun]:
    """Every run of the spec, ``dataset_names[i]`` being the resolved folder name of ``spec.datasets[i]``.

    Order: dataset, configuration, fold, seed, then trainer (so the runs one comparison needs finish together).
    """
    if len(dataset_names) != len(spec.datasets):
        raise ValueError(f"need one name per dataset ({len(spec.datasets)}), got {len(dataset_names)}")
    runs = []
    for dataset, name in zip(spec.datasets, dataset_names):
        for configuration in dataset.configurations:
            for fold in spec.folds:
                for seed in spec.seeds:
                    for trainer in spec.trainers:
                        knobs = {**spec.knobs, **trainer.knobs}
                        runs.append(BenchmarkRun(name, configuration, spec.training_plans(dataset), trainer.name,
                                                 fold, seed, knobs, trainer.pretrained))
    return runs
