"""NNPROG_SEED: the seed's derivation, and repeats with one seed through the real nnUNetv2_train on CPU."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from training_logs import seeded_knobs

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import settings_from_env
from nnunet_progressive.nnunet.hooks.seeding import epoch_seed, seed_generators
from nnunet_progressive.nnunet.orchestration.runner import TrainingRun, train


def test_epoch_seed_is_fixed_per_seed_and_epoch_and_32_bit():
    assert epoch_seed(3, 0) == epoch_seed(3, 0)
    assert len({epoch_seed(3, 0), epoch_seed(3, 1), epoch_seed(4, 0), epoch_seed(0, 3)}) == 4
    assert all(0 <= epoch_seed(s, e) < 2**32 for s in (0, 7, 10**9) for e in (0, 999))
    with pytest.raises(ValueError):
        epoch_seed(-1, 0)


def test_seed_generators_seeds_python_numpy_and_torch():
    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    seed_generators(5, epoch=2)
    first = draws()
    seed_generators(5, epoch=2)
    assert draws() == first
    seed_generators(5, epoch=3)
    assert draws() != first


def test_seed_knob_is_a_non_negative_integer():
    assert settings_from_env(environ={"NNPROG_SEED": "3"}).seed == 3
    assert settings_from_env(environ={}).seed is None
    with pytest.raises(ProgressiveConfigError, match="NNPROG_SEED"):
        settings_from_env(environ={"NNPROG_SEED": "-1"})


@pytest.mark.e2e
def test_two_runs_with_one_seed_train_the_same_network_on_cpu(tiny3d, tmp_path):
    """With NNPROG_SEED and nnUNet_n_proc_DA=0 (sampling and augmentation in the seeded process) two runs of the
    same fold end with the same weights on CPU; the seed is recorded in the run's identity (nnprog_run.json).

    The same up to float rounding: beside another training on the same cores the CPU's threaded reductions can sum
    in another order (a largest difference of 1.5e-08 was seen, bit-identical otherwise); another initialisation
    differs by orders of magnitude more (docs/benchmark.md, seeding)."""
    knobs = {"NNPROG_EPOCHS": "1", "NNPROG_ITERATIONS": "2", "NNPROG_VAL_ITERATIONS": "1",
             "NNPROG_FINAL_VALIDATION": "off", **seeded_knobs(3)}
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, "nnUNetTrainer_ConstantPatch", tiny3d.plans,
                      knobs=knobs)
    weights = []
    for repeat in ("a", "b"):
        folders = tiny3d.with_results(tmp_path / repeat).folders
        train(run, folders, tmp_path / f"{repeat}.log")
        fold = run.output_folder(folders, tiny3d.dataset_name)
        assert json.loads((fold / "nnprog_run.json").read_text())["settings"]["seed"] == 3
        assert json.loads((fold / "run_summary.json").read_text())["settings"]["seed"] == 3
        weights.append(torch.load(fold / "checkpoint_final.pth", map_location="cpu",
                                  weights_only=False)["network_weights"])
    assert weights[0].keys() == weights[1].keys()
    largest = max(float((weights[0][k].float() - weights[1][k].float()).abs().max()) for k in weights[0])
    assert largest <= 1e-6, f"largest difference {largest:.3g}: more than the rounding of threaded reductions"


def test_a_continued_run_keeps_its_seed_and_says_when_the_environment_differs():
    """--c takes the seed stored with the run; another NNPROG_SEED in the environment is reported, not used."""
    from package_trainers import TRAINERS

    from nnunet_progressive.core.knobs import ProgressiveSettings
    from nnunet_progressive.nnunet.hooks.run_state import environment_notes_for_continued_run

    trainer_class = TRAINERS["nnUNetTrainer_ConstantPatch"]
    stored = ProgressiveSettings().replace(seed=3)
    (note,) = environment_notes_for_continued_run(stored, trainer_class, {"NNPROG_SEED": "4"})
    assert "NNPROG_SEED: now 4, run 3" in note
    assert environment_notes_for_continued_run(stored, trainer_class, {"NNPROG_SEED": "3"}) == []
