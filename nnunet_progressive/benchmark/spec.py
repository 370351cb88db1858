"""The benchmark spec: which datasets, configurations, plans, trainers, folds and seeds to run, and where.

A spec is a YAML (``.yaml``/``.yml``) or JSON (``.json``) file, validated by the pydantic models below (errors
name the file, the key, what was expected and what came). Relative paths are relative to the spec file.
Example (every key shown; only ``results_dir``, ``datasets`` and ``trainers`` are required)::

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
          rank: false                       # true: `nnprog rank` the training cases (the PDL trainers need it)
    trainers:                               # order = column order of the report
      - nnUNetTrainer_ConstantPatch
      - nnUNetTrainer_PGPS_Efficiency
      - name: nnUNetTrainer_PGPS_Performance
        knobs: {NNPROG_MAX_BATCH: 8}        # per-trainer environment, on top of the global knobs
      - name: nnUNetTrainer_PGPS_Efficiency # the same trainer again, with other knobs: give it a label
        label: PGPS_Efficiency_share0.3     # the name the report shows (default: the trainer name)
        knobs: {NNPROG_GROWTH_SHARE: 0.3}
    folds: [0]                              # ints or "all"
    seeds: [0]                              # repeat indices (see below)
    seed_training: false                    # true: repeat s trains with NNPROG_SEED=s (see below)
    knobs: {NNPROG_EPOCHS: 9, NNPROG_ITERATIONS: 2, NNPROG_VAL_ITERATIONS: 1}
    small_network: true                     # or {features_per_stage: [4, 8, 16, 32], convs_per_stage: 1}
    reference_trainer: nnUNetTrainer_ConstantPatch   # a label; default: see report.choose_reference
    pretraining:                            # transfer learning: sources pre-trained before the trainers run
      - label: similar                      # trainer entries refer to it: {name: ..., pretrained: similar}
        source: {id: 641, prepare: {synthetic_preset: multiorgan}}
        trainer: nnUNetTrainer_ConstantPatch
        knobs: {NNPROG_EPOCHS: 20}

Pre-training (see :mod:`nnunet_progressive.benchmark.pretraining`): for every spec dataset and configuration the
source is prepared with the dataset's plans (``nnprog transfer prepare``), trained on fold ``all`` (once, for all
seeds) and mapped onto the dataset's network (``nnprog transfer adapt``); a trainer entry with ``pretrained: LABEL``
trains with ``-pretrained_weights`` of that file. The label is part of the entry's settings (so of its run id and
results folder) and of its default report label ``<trainer>_from_<LABEL>``.

Run identity: a run is (dataset, configuration, plans, trainer, settings, fold, seed). Its settings are the
effective knobs (global + the trainer entry's, ``NNPROG_*`` values normalised through the knob table) and the
small network; their hash, the settings id, is part of the run id and of the folder the run trains into,
``<nnUNet_results>/settings-<id>/seed_<s>/DatasetXXX_.../<trainer>__<plans>__<configuration>/fold_<f>``. So a
run whose knobs changed in the spec is a new run (the old one stays where it was), and one spec may hold the
same trainer with several knob sets (one ``label`` each). The label is only a name: renaming it re-runs nothing.

Seeds: ``nnUNetv2_train`` has no seed option and nnU-Net seeds nothing but its cross-validation split, so a
"seed" here is a repeat index. Repeat ``s`` trains into its own results folder (above; set ``nnUNet_results`` to
that ``seed_<s>`` folder to predict with it). Without ``seed_training`` repeats differ by nnU-Net's own randomness
(weight initialisation, patch sampling, augmentation); with ``seed_training: true`` repeat ``s`` trains with
``NNPROG_SEED=s`` (:mod:`nnunet_progressive.nnunet.hooks.seeding`: python, numpy and torch seeded at the run's start and
at each ``--c``; nnU-Net's augmentation workers still draw their own state). ``seed_training`` is part of the
runs' settings (so of their ids and folders); ``NNPROG_SEED`` itself is refused in a spec's knobs (the seeds list
sets it, one value per repeat).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import env_name
from nnunet_progressive.core.naming import DATASET_NAME
from nnunet_progressive.core.naming import dataset_id as parse_dataset_id
from nnunet_progressive.core.settings import check_spec_knobs, knob_settings
from nnunet_progressive.core.validation import Name, StrictModel, integer, number, validate
from nnunet_progressive.datasets.prepare import SMALL_FEATURES_PER_STAGE
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders

EXECUTOR_TYPES = ("local", "slurm")
DEVICES = ("cuda", "cpu", "mps")
SUBMITIT_CLUSTERS = ("slurm", "local", "debug")
SETTINGS_FOLDER_PREFIX = "settings-"
SEED_KNOB = "NNPROG_SEED"  # set per repeat by `seed_training: true`, never in a spec's knobs
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ------------------------------------------------------------------------------------------- field types

def _knobs(data: Any) -> dict[str, str]:
    """Environment variables as strings; ``NNPROG_*`` names and values checked against the knob table."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError("expected a mapping of environment variables, e.g. {NNPROG_EPOCHS: 100}")
    knobs = {}
    for key, value in data.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise ValueError(f"expected environment variable names, got {key!r}")
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int | float):
            raise ValueError(f"{key}: expected a string or number, got {value!r}")
        knobs[key] = str(value)
    check_spec_knobs(knobs)  # the knob table's reader: unknown names and bad values (a ValueError)
    return knobs


Knobs = Annotated[dict[str, str], BeforeValidator(_knobs)]


def _one_or_more(data: Any) -> Any:
    """A single value stands for a list of one; ``None`` for the default."""
    if isinstance(data, int | str) and not isinstance(data, bool):
        return [data]
    return data


def _fold(value: Any) -> int | str:
    if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise ValueError("expected an integer >= 0 or 'all'")


Fold = Annotated[int | str, BeforeValidator(_fold)]


def _unique(values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


# ------------------------------------------------------------------------------------------------ models

class SlurmSpec(StrictModel):
    """submitit parameters of the SLURM executor (``time_min`` is submitit's ``timeout_min``)."""

    partition: str | None = None
    time_min: integer(1) = 1440
    gpus_per_node: integer(0) = 1
    cpus_per_task: integer(1) | None = None
    mem_gb: number(0, exclusive=True) | None = None
    array_parallelism: integer(1) = 16
    max_num_resubmits: integer(0) = 3
    setup: tuple[str, ...] = ()
    extra: dict[str, Any] = {}
    cluster: Literal["slurm", "local", "debug"] = "slurm"

    @field_validator("setup", mode="before")
    @classmethod
    def _shell_lines(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of shell lines")
        return value

    @field_validator("extra", mode="before")
    @classmethod
    def _extra_mapping(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError("expected a mapping of submitit slurm parameters (without the slurm_ prefix)")
        return value


class ExecutorSpec(StrictModel):
    type: Literal["local", "slurm"] = "local"
    device: Literal["cuda", "cpu", "mps"] = "cuda"
    gpus: tuple[int, ...] | None = None
    run_timeout_hours: number(0, exclusive=True, what="a number of hours") | None = None
    slurm: Annotated[SlurmSpec, BeforeValidator(lambda v: {} if v is None else v)] = SlurmSpec()

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpu_indices(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, int | str) or not isinstance(value, Sequence) or not value or not all(
                isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in value):
            raise ValueError("expected null or a non-empty list of GPU indices, e.g. [0, 1]")
        if len(set(value)) != len(value):
            raise ValueError("expected distinct GPU indices")
        return tuple(value)

    @model_validator(mode="after")
    def _gpus_fit_the_executor(self) -> ExecutorSpec:
        if self.gpus is not None and self.type != "local":
            raise ValueError(f"gpus {list(self.gpus)} cannot be used with the slurm executor: SLURM assigns the "
                             f"GPUs; set executor.slurm.gpus_per_node instead")
        if self.gpus is not None and self.device != "cuda":
            raise ValueError(f"gpus {list(self.gpus)} cannot be used with device {self.device!r}; set device: cuda "
                             f"or drop gpus")
        return self

    @property
    def gpus_per_run(self) -> int:
        """GPUs one run occupies (the factor of GPU hours): 0 on CPU, else 1 locally, gpus_per_node on SLURM."""
        if self.device != "cuda":
            return 0
        return self.slurm.gpus_per_node if self.type == "slurm" else 1


class PrepareSpec(StrictModel):
    synthetic_preset: str | None = None
    num_processes: integer(1) = 2
    rank: bool = False  # `nnprog rank` after preprocessing (the PDL trainers read the ranking)

    @field_validator("synthetic_preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        from nnunet_progressive.datasets.generated import generated_dataset_names

        if value is not None and value not in generated_dataset_names():
            raise ValueError(f"expected one of {generated_dataset_names()}")
        return value


class DatasetSpec(StrictModel):
    id: integer(1, 999, what="an nnU-Net dataset id") | None = None
    name: str | None = None
    configurations: tuple[str, ...] = Field(None, validate_default=True)
    plans: Name = "nnUNetPlans"
    prepare: Annotated[PrepareSpec, BeforeValidator(lambda v: {} if v is None else v)] = PrepareSpec()

    @field_validator("name")
    @classmethod
    def _dataset_folder_name(cls, value: str | None) -> str | None:
        if value is not None and not DATASET_NAME.match(value):
            raise ValueError("expected an nnU-Net dataset folder name like Dataset004_Hippocampus")
        return value

    @field_validator("configurations", mode="before")
    @classmethod
    def _configuration_list(cls, value: Any) -> Any:
        value = [value] if isinstance(value, str) else value
        if not value or isinstance(value, Mapping) or not all(isinstance(c, str) and c for c in value):
            raise ValueError("expected a non-empty list such as [3d_fullres] or [2d, 3d_fullres]")
        return _unique(value)

    @model_validator(mode="after")
    def _id_name_and_preset_agree(self) -> DatasetSpec:
        if self.id is None and self.name is None:
            raise ValueError("needs `id: 4` or `name: Dataset004_Hippocampus`; got neither")
        if self.id is not None and self.name is not None and parse_dataset_id(self.name) != self.id:
            raise ValueError(f"expected id and name to agree (id {self.id}), got name {self.name!r}")
        preset = self.prepare.synthetic_preset
        if preset is not None:
            from nnunet_progressive.datasets.generated import generated_task_name

            if self.id is None:
                raise ValueError("a synthetic_preset needs the dataset `id` to write it under")
            expected = f"Dataset{self.id:03d}_{generated_task_name(preset)}"
            if self.name is not None and self.name != expected:
                raise ValueError(f"name: expected {expected!r} (the preset's folder name), got {self.name!r}; "
                                 f"drop `name` or fix it")
        return self

    @property
    def label(self) -> str:
        return self.name or f"dataset {self.id}"

    @property
    def synthetic_preset(self) -> str | None:
        return self.prepare.synthetic_preset

    @property
    def num_processes(self) -> int:
        return self.prepare.num_processes


class TrainerSpec(StrictModel):
    """One trainer entry: the trainer class, the label the report shows, its own knobs, and the pretraining it
    starts from (``-pretrained_weights``), if any."""

    name: Name
    label: Name
    knobs: Knobs = {}
    pretrained: Name | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_and_label(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"name": data}
        if isinstance(data, Mapping):
            if "name" not in data:
                raise ValueError(f"needs `name: nnUNetTrainer_...`; got keys {sorted(map(str, data))}")
            if data.get("label") is None:
                origin = data.get("pretrained")
                data = {**data, "label": data["name"] if origin is None else f"{data['name']}_from_{origin}"}
        return data


def _source_dataset(data: Any) -> Any:
    """A pretraining source is a dataset entry whose configurations come from the spec's datasets."""
    if isinstance(data, Mapping) and "configurations" not in data:
        return {**data, "configurations": ["3d_fullres"]}
    return data


class PretrainingSpec(StrictModel):
    """A source pre-trained on fold ``all`` with each spec dataset's plans, then adapted to its network."""

    required_hints: ClassVar[dict[str, str]] = {
        "label": "label: similar",
        "source": "source: {id: 641, prepare: {synthetic_preset: multiorgan}}",
    }

    label: Name
    source: Annotated[DatasetSpec, BeforeValidator(_source_dataset)]
    trainer: Name = "nnUNetTrainer_ConstantPatch"
    knobs: Knobs = {}


class SmallNetworkSpec(StrictModel):
    """Train with a narrow copy of the plans (:func:`nnunet_progressive.datasets.prepare.write_small_plans`)."""

    features_per_stage: tuple[integer(1, what="a positive channel count"), ...] = SMALL_FEATURES_PER_STAGE
    convs_per_stage: integer(1) = 1

    @field_validator("features_per_stage", mode="before")
    @classmethod
    def _non_empty(cls, value: Any) -> Any:
        if isinstance(value, str) or not isinstance(value, Sequence) or not value:
            raise ValueError("expected a list of positive channel counts")
        return value


def _small_network(data: Any) -> Any:
    if data is False:
        return None
    if data is True:
        return {}
    return data


@dataclass(frozen=True)
class TrainerVariant:
    """A trainer entry of a spec with its effective settings (global knobs, then the entry's own)."""

    trainer: str
    label: str
    knobs: Mapping[str, str]
    settings: Mapping[str, Any]  # what identifies the run: normalised knobs, the small network, the pretraining
    settings_id: str
    pretrained: str | None = None


class BenchmarkSpec(StrictModel):
    required_hints: ClassVar[dict[str, str]] = {
        "results_dir": "results_dir: results/my_benchmark",
        "datasets": "datasets: [{id: 4, configurations: [3d_fullres]}]",
        "trainers": "trainers: [nnUNetTrainer_ConstantPatch, nnUNetTrainer_PGPS_Efficiency]",
    }

    results_dir: Path
    nnunet_root: Path | None = None
    executor: Annotated[ExecutorSpec, BeforeValidator(lambda v: {} if v is None else v)] = ExecutorSpec()
    datasets: tuple[DatasetSpec, ...]
    trainers: tuple[TrainerSpec, ...]
    folds: Annotated[tuple[Fold, ...], BeforeValidator(_one_or_more)] = (0,)
    seeds: Annotated[tuple[integer(0), ...], BeforeValidator(_one_or_more)] = (0,)
    knobs: Knobs = {}
    small_network: Annotated[SmallNetworkSpec | None, BeforeValidator(_small_network)] = None
    reference_trainer: str | None = None
    pretraining: tuple[PretrainingSpec, ...] = ()
    seed_training: bool = False  # repeat s trains with NNPROG_SEED=s

    @field_validator("results_dir", "nnunet_root", mode="before")
    @classmethod
    def _folder(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        if not isinstance(value, str | os.PathLike) or not str(value):
            raise ValueError("expected a folder path")
        base_dir = Path((info.context or {}).get("base_dir", "."))
        path = Path(value).expanduser()
        return (path if path.is_absolute() else base_dir / path).resolve()

    @field_validator("datasets", "trainers", "pretraining", mode="before")
    @classmethod
    def _a_list(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
            raise ValueError(f"expected a list of {info.field_name}")
        return value

    @field_validator("folds", "seeds")
    @classmethod
    def _non_empty_unique(cls, value: tuple) -> tuple:
        if not value:
            raise ValueError("expected a non-empty list")
        return _unique(value)

    @field_validator("datasets")
    @classmethod
    def _datasets_once(cls, value: tuple[DatasetSpec, ...]) -> tuple[DatasetSpec, ...]:
        keys = [(d.id, d.name, d.plans) for d in value]
        if len(set(keys)) != len(keys):
            raise ValueError("the same dataset and plans are listed twice; merge their configurations into one entry")
        return value

    @field_validator("trainers")
    @classmethod
    def _labels_once(cls, value: tuple[TrainerSpec, ...]) -> tuple[TrainerSpec, ...]:
        labels = [t.label for t in value]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"{twice} listed twice; list each trainer once, or give each entry of the same trainer "
                             f"its own `label:` (and its own knobs)")
        return value

    @field_validator("reference_trainer")
    @classmethod
    def _reference_is_listed(cls, value: str | None, info: ValidationInfo) -> str | None:
        labels = [t.label for t in info.data.get("trainers", ())]
        if value is not None and labels and value not in labels:
            raise ValueError(f"expected one of the trainers' labels {labels}")
        return value

    @model_validator(mode="after")
    def _pretraining_labels(self) -> BenchmarkSpec:
        labels = [p.label for p in self.pretraining]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"pretraining: labels {twice} listed twice; give each source its own label")
        for trainer in self.trainers:
            if trainer.pretrained is not None and trainer.pretrained not in labels:
                raise ValueError(f"trainer {trainer.label!r}: pretrained: expected one of the pretraining labels "
                                 f"{labels}, got {trainer.pretrained!r}")
        return self

    @model_validator(mode="after")
    def _seed_from_the_seeds_list(self) -> BenchmarkSpec:
        where = [name for name, knobs in [("knobs", self.knobs), *((f"trainers[{i}] ({t.label}) knobs", t.knobs)
                                                                   for i, t in enumerate(self.trainers))]
                 if SEED_KNOB in knobs]
        if where:
            raise ValueError(f"{SEED_KNOB} is set in {', '.join(where)}; the spec seeds its repeats itself: remove "
                             f"it and set `seed_training: true` (repeat s of `seeds:` then trains with {SEED_KNOB}=s)")
        return self

    @model_validator(mode="after")
    def _no_run_twice(self) -> BenchmarkSpec:
        seen: dict[tuple[str, str], str] = {}
        for variant in self.variants():
            key = (variant.trainer, variant.settings_id)
            if key in seen:
                raise ValueError(f"trainers {seen[key]!r} and {variant.label!r} are the same runs ({variant.trainer} "
                                 f"with the same knobs); remove one, or give one other knobs")
            seen[key] = variant.label
        return self

    # --- derived -----------------------------------------------------------------------------------------
    @property
    def trainer_names(self) -> list[str]:
        return [t.name for t in self.trainers]

    @property
    def labels(self) -> list[str]:
        return [t.label for t in self.trainers]

    def variants(self) -> list[TrainerVariant]:
        """Each trainer entry with its effective knobs and settings id, in spec order."""
        return trainer_variants(self.trainers, self.knobs, self.small_network, self.seed_training)

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
        data = self.model_dump(mode="json")
        data["small_network"] = data["small_network"] or False
        return data


class SpecTrainers(BaseModel):
    """The part of a spec that identifies its runs (what the report reads back from ``spec.json``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    trainers: tuple[TrainerSpec, ...] = ()
    knobs: Knobs = {}
    small_network: Annotated[SmallNetworkSpec | None, BeforeValidator(_small_network)] = None
    reference_trainer: str | None = None
    seed_training: bool = False

    def variants(self) -> list[TrainerVariant]:
        return trainer_variants(self.trainers, self.knobs, self.small_network, self.seed_training)


def trainer_variants(trainers: Sequence[TrainerSpec], knobs: Mapping[str, str],
                     small_network: SmallNetworkSpec | None, seed_training: bool = False) -> list[TrainerVariant]:
    """Each trainer entry with its effective knobs (global, then its own) and the id of its settings
    (``seed_training``: the repeats are seeded, a setting of every entry)."""
    small = None if small_network is None else small_network.model_dump(mode="json")
    variants = []
    for trainer in trainers:
        effective = {**knobs, **trainer.knobs}
        settings = {"knobs": normalised_knobs(effective), "small_network": small}
        if trainer.pretrained is not None:  # only then: the ids of runs from scratch stay as they were
            settings["pretrained"] = trainer.pretrained
        if seed_training:  # only then, likewise
            settings["seed_training"] = True
        variants.append(TrainerVariant(trainer.name, trainer.label, effective, settings, settings_id(settings),
                                       trainer.pretrained))
    return variants


def normalised_knobs(knobs: Mapping[str, str]) -> dict[str, Any]:
    """Knobs as they act: ``NNPROG_*`` values parsed by the knob table (``"20"`` and ``20.0`` alike), others as set."""
    values = knob_settings(knobs).to_dict()
    fields = {env_name(f): f for f in values}
    return {key: (values[fields[key]] if key in fields else value) for key, value in sorted(knobs.items())}


def settings_id(settings: Mapping[str, Any]) -> str:
    """8 hex digits identifying a run's settings (the same settings always give the same id)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class BenchmarkRun:
    """One run: (dataset, configuration, plans, trainer, settings, fold, seed) and the environment it trains with."""

    dataset: str  # DatasetXXX_Name
    configuration: str
    plans: str  # the plans identifier passed to nnUNetv2_train -p
    trainer: str
    fold: int | str
    seed: int
    knobs: Mapping[str, str] = field(default_factory=dict)
    settings_id: str = ""
    label: str = ""  # the report's name of the trainer entry (default: the trainer); not part of the identity
    settings: Mapping[str, Any] = field(default_factory=dict, compare=False)
    pretrained: str | None = None  # the pretraining label it starts from (-pretrained_weights); in its settings id

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.trainer)
        if not self.settings_id:
            object.__setattr__(self, "settings_id", settings_id({"knobs": normalised_knobs(self.knobs),
                                                                 "small_network": None}))

    @property
    def dataset_id(self) -> int:
        return parse_dataset_id(self.dataset)

    @property
    def validates(self) -> bool:
        """False if nnU-Net's final validation is off for this run (NNPROG_FINAL_VALIDATION=off)."""
        return knob_settings(self.knobs).final_validation != "off"

    @property
    def settings_folder(self) -> str:
        return f"{SETTINGS_FOLDER_PREFIX}{self.settings_id}"

    @property
    def run_id(self) -> str:
        return (f"{self.dataset}__{self.configuration}__{self.plans}__{self.trainer}__{self.settings_folder}"
                f"__fold{self.fold}__seed{self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dataset": self.dataset, "dataset_id": self.dataset_id,
                "configuration": self.configuration, "plans": self.plans, "trainer": self.trainer,
                "label": self.label, "fold": self.fold, "seed": self.seed, "knobs": dict(self.knobs),
                "settings_id": self.settings_id, "settings": dict(self.settings), "pretrained": self.pretrained}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchmarkRun:
        return cls(data["dataset"], data["configuration"], data["plans"], data["trainer"], data["fold"],
                   int(data["seed"]), dict(data.get("knobs") or {}), data.get("settings_id") or "",
                   data.get("label") or "", dict(data.get("settings") or {}), data.get("pretrained"))


# ------------------------------------------------------------------------------------------------ parsing

def parse_spec(data: Any, base_dir: str | os.PathLike = ".") -> BenchmarkSpec:
    """A validated :class:`BenchmarkSpec` from the parsed YAML/JSON mapping (paths relative to ``base_dir``).

    Raises:
        ProgressiveConfigError: unknown keys, missing required keys or values of the wrong kind, all of them.
    """
    if not isinstance(data, Mapping):
        raise ProgressiveConfigError(f"spec: expected a mapping (key: value), got {data!r}")
    return validate(BenchmarkSpec, data, "spec", context={"base_dir": Path(base_dir)})


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1"`` -> ``(0, 1)``: repeat indices given on the command line (non-negative, duplicates dropped)."""
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise ProgressiveConfigError(f"--seeds: expected comma-separated integers >= 0 such as 0,1, got {text!r}")
        seeds.append(int(part))
    return _unique(seeds)


def with_seeds(spec: BenchmarkSpec, seeds: Sequence[int]) -> BenchmarkSpec:
    """The spec with other repeat indices (the runs of seeds already done are skipped as usual)."""
    return validate(BenchmarkSpec, {**spec.to_dict(), "seeds": list(seeds)}, "--seeds")


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
    With ``seed_training`` each run's knobs hold ``NNPROG_SEED=<its seed>`` (its repeat is in its id already).
    """
    if len(dataset_names) != len(spec.datasets):
        raise ValueError(f"need one name per dataset ({len(spec.datasets)}), got {len(dataset_names)}")
    variants = spec.variants()
    runs = []
    for dataset, name in zip(spec.datasets, dataset_names):
        for configuration in dataset.configurations:
            for fold in spec.folds:
                for seed in spec.seeds:
                    seeding = {SEED_KNOB: str(seed)} if spec.seed_training else {}
                    for variant in variants:
                        runs.append(BenchmarkRun(name, configuration, spec.training_plans(dataset), variant.trainer,
                                                 fold, seed, {**variant.knobs, **seeding}, variant.settings_id,
                                                 variant.label, dict(variant.settings), variant.pretrained))
    return runs
