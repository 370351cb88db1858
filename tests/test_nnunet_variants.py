"""The trainer catalogue and the one variant factory: every name kept, the classes as the catalogue says, mixins
ordered and hooks never skipped by construction, `nnprog trainers` and the README's table, `nnprog schedule` and
the epoch bar's defaults without torch."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_progressive.cli.main import main
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.nnunet.catalogue import CATALOGUE, EPOCH_VARIANTS, entries, trainers_markdown

README = Path(__file__).resolve().parent.parent / "README.md"
PRIMUS = [f"nnUNet_Primus_{s}_Trainer" for s in "SBML"] + [f"nnUNet_PrimusV{v}{s}_Trainer" for v in (2, 3)
                                                            for s in "SBML"]


def _names_before_the_factory() -> set[str]:
    """Every trainer name the four generators and the hand-written trainers defined (users' run folders)."""
    names = set()
    for base in ("ConstantPatch", "PGPS_Efficiency", "PGPS_Performance", "RPSS"):
        names |= {f"nnUNetTrainer_{base}"} | {f"nnUNetTrainer_{base}_{e}epochs" for e in (50, 100, 250, 500)}
    names |= {f"nnUNetTrainer_{n}_StopAtDice" for n in ("PGPS_Efficiency", "PGPS_Performance", "RPSS")}
    names |= {"nnUNetTrainer_StopAtDice", "nnUNetTrainer_PDL", "nnUNetTrainer_PDL_SimilarFirst",
              "nnUNetTrainer_PDL_Random", "nnUNetTrainer_PDL_PGPS_Efficiency"}
    for recipe in ("Finetune", "Finetune_HeadFirst", "Finetune_FrozenEncoder"):
        name = f"nnUNetTrainer_{recipe}"
        names |= {name, f"{name}_PGPS_Efficiency", f"{name}_PGPS_Performance", f"{name}_StopAtDice"}
        names |= {f"{name}_{e}epochs" for e in (50, 100, 250, 500, 1000)}
    for network in ("UNETR", "SwinUNETR", "TinyUNETR", "TinySwinUNETR"):
        names |= {f"nnUNetTrainer_{network}{s}" for s in ("", "_PGPS_Efficiency", "_PGPS_Performance")}
    names.add("nnUNetTrainer_TinyPrimus")
    for base in (*PRIMUS, "nnUNetTrainer_TinyPrimus"):
        names |= {f"{base}_{s}" for s in ("ConstantPatch", "PGPS_Efficiency", "PGPS_Performance")}
    return names


def test_every_trainer_name_of_earlier_versions_is_still_there():
    assert len(_names_before_the_factory()) == 107
    assert _names_before_the_factory() <= set(CATALOGUE)


def test_the_epoch_variants_take_one_list():
    for entry in entries():
        found = re.fullmatch(r".*_(\d+)epochs", entry.name)
        if found:
            assert int(found.group(1)) in EPOCH_VARIANTS and entry.epochs == int(found.group(1)), entry.name
    for base in ("ConstantPatch", "PGPS_Efficiency", "PGPS_Performance", "RPSS", "Finetune", "Finetune_HeadFirst",
                 "Finetune_FrozenEncoder"):
        assert all(f"nnUNetTrainer_{base}_{e}epochs" in CATALOGUE for e in EPOCH_VARIANTS), base


def test_the_catalogue_and_its_readers_import_without_torch_or_nnunet():
    code = ("import sys, nnunet_progressive.nnunet.catalogue, nnunet_progressive.nnunet.plan_schedule, "
            "nnunet_progressive.cli.trainers, nnunet_progressive.cli.pgps\n"
            "from nnunet_progressive.nnunet.orchestration.discovery import trainer_default_settings\n"
            "assert trainer_default_settings('nnUNetTrainer_Finetune').epochs == 150\n"
            "heavy = [m for m in ('torch', 'nnunetv2', 'monai', 'timm') if m in sys.modules]\n"
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def built() -> dict[str, type]:
    """Every trainer class as the trainer modules define them (what nnU-Net finds)."""
    import importlib

    from nnunet_progressive.nnunet.compat import install_in_this_process

    install_in_this_process()  # before timm (Primus) imports torchvision on a CPU-only machine
    classes = {}
    for entry in entries():
        module = importlib.import_module(f"nnunet_progressive_trainers.{entry.module}")
        classes[entry.name] = vars(module).get(entry.name)
    return classes


def test_every_class_is_what_its_catalogue_entry_says(built):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_progressive.nnunet.hooks.run_state import MIXIN_ORDER, package_mixins

    for name, entry in CATALOGUE.items():
        trainer = built[name]
        assert trainer is not None and issubclass(trainer, nnUNetTrainer), name
        assert trainer.__module__ == f"nnunet_progressive_trainers.{entry.module}" and trainer.__name__ == name
        for key, value in entry.attributes:
            assert getattr(trainer, key) == value, (name, key)
        if not entry.reads_knobs:
            assert not hasattr(trainer, "knob_features"), name
            continue
        assert trainer.default_settings == entry.default_settings(), name
        assert trainer.knob_features() == entry.knob_features(), name
        mixins = package_mixins(trainer)
        assert set(entry.mixins) <= set(mixins), name
        assert mixins == sorted(mixins, key=MIXIN_ORDER.index), f"{name}: {mixins}"


def test_fine_tuning_stands_before_the_recipe_that_replaces_the_optimiser(built):
    from nnunet_progressive.nnunet.hooks.architectures import RecipeMixin
    from nnunet_progressive.nnunet.hooks.transfer import FineTuningMixin

    for name in ("nnUNetTrainer_UNETR_Finetune", "nnUNetTrainer_TinySwinUNETR_Finetune_FrozenEncoder"):
        mro = built[name].__mro__
        assert mro.index(FineTuningMixin) < mro.index(RecipeMixin), name
    recipe = built["nnUNetTrainer_UNETR_Finetune_HeadFirst"]
    assert recipe.default_settings.finetune_lr == 1e-4 and recipe.default_settings.head_lr == 5e-5
    primus = built["nnUNet_Primus_B_Trainer_Finetune"]
    assert primus.default_settings.finetune_lr == 3e-4 and primus.default_settings.epochs == 150


def test_the_factory_orders_mixins_itself():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_progressive.nnunet.hooks.run_state import package_mixins
    from nnunet_progressive.nnunet.variants import compose

    trainer = compose("Combined", ["ProgressivePatchMixin", "ProgressiveDataMixin", "StopAtDiceMixin"],
                      nnUNetTrainer, {"pdl_order": "random"}, __name__, "a test trainer")
    assert package_mixins(trainer)[:3] == ["StopAtDiceMixin", "ProgressiveDataMixin", "ProgressivePatchMixin"]
    with pytest.raises(TypeError, match="not in MIXIN_ORDER"):
        compose("Unknown", ["NoSuchMixin"], nnUNetTrainer, {}, __name__, "")


def test_the_factory_refuses_a_mixin_that_replaces_a_hook_another_one_extends():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_progressive.nnunet.hooks.architectures import RecipeMixin
    from nnunet_progressive.nnunet.hooks.transfer import FineTuningMixin
    from nnunet_progressive.nnunet.variants import compose, mixin_classes, replacement_conflicts

    # the defect this factory prevents: the recipe's optimiser before fine-tuning's groups (the old MIXIN_ORDER)
    old_order = type("OldOrder", (RecipeMixin, FineTuningMixin, nnUNetTrainer), {"__module__": __name__})
    assert replacement_conflicts(old_order.__mro__) == [
        "RecipeMixin replaces configure_optimizers (no super() call), and FineTuningMixin.configure_optimizers "
        "after it would never run"]

    class EarlyOptimiser:  # stands where StopAtDiceMixin stands, before FineTuningMixin
        replaces_hooks = frozenset({"configure_optimizers"})

        def configure_optimizers(self):
            return None, None

    EarlyOptimiser.__module__ = "nnunet_progressive.tests"
    classes = {**mixin_classes(), "StopAtDiceMixin": EarlyOptimiser}
    with pytest.raises(TypeError, match="EarlyOptimiser replaces configure_optimizers .* FineTuningMixin"):
        compose("Bad", ["FineTuningMixin", "StopAtDiceMixin"], nnUNetTrainer, {}, __name__, "", classes)
    with pytest.raises(TypeError, match="EarlyOptimiser replaces configure_optimizers .* RecipeMixin.configure_"
                                        "optimizers after it also replaces it"):
        compose("Twice", ["RecipeMixin", "StopAtDiceMixin"], nnUNetTrainer, {}, __name__, "", classes)


def test_nnprog_trainers_lists_filters_and_writes_markdown(capsys):
    assert main(["trainers"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in CATALOGUE)
    assert f"{len(CATALOGUE)} trainers" in listing and max(map(len, listing.splitlines())) <= 100
    assert main(["trainers", "--method", "pdl"]) == 0
    pdl = capsys.readouterr().out
    assert "nnUNetTrainer_PDL_Random" in pdl and "nnUNetTrainer_PGPS_Efficiency " not in pdl
    assert main(["trainers", "--markdown", "--method", "transfer"]) == 0
    assert capsys.readouterr().out == trainers_markdown("transfer")
    with pytest.raises(SystemExit):
        main(["trainers", "--method", "nosuch"])


def test_readme_trainer_table_is_the_generated_one():
    text = README.read_text()
    match = re.search(r"<!-- trainer table:[^\n]*-->\n(.*?)<!-- end of trainer table -->", text, re.S)
    assert match, "README.md lost the trainer table markers"
    assert match.group(1) == trainers_markdown(), "README trainer table is stale: paste `nnprog trainers --markdown`"
    for name in ("nnUNetTrainer_Finetune_HeadFirst_PGPS_Performance", "nnUNetTrainer_TinyUNETR_Finetune_HeadFirst",
                 "nnUNetTrainer_PGPS_Efficiency_<N>epochs", "<Primus>_Finetune_FrozenEncoder", *PRIMUS):
        assert f"`{name}`" in match.group(1), name


def test_misspelt_trainer_names_the_closest():
    from nnunet_progressive.nnunet.orchestration.discovery import find_trainer_class

    with pytest.raises(ProgressiveConfigError, match="did you mean nnUNetTrainer_Finetune_HeadFirst"):
        find_trainer_class("nnUNetTrainer_Finetune_HeadFrist")


# --- nnprog schedule from the plans alone --------------------------------------------------------------------

@pytest.mark.parametrize("trainer", ["nnUNetTrainer_PGPS_Efficiency", "nnUNetTrainer_PGPS_Performance_250epochs",
                                     "nnUNetTrainer_RPSS", "nnUNetTrainer_Finetune_PGPS_Efficiency",
                                     "nnUNetTrainer_PDL_PGPS_Efficiency"])
def test_schedule_from_the_plans_is_the_trainers_own(tiny3d_dataset, trainer):
    from nnunet_progressive.nnunet.hooks.pgps import schedule_of_new_run
    from nnunet_progressive.nnunet.hooks.run_state import settings_for_new_run
    from nnunet_progressive.nnunet.orchestration.discovery import find_trainer_class
    from nnunet_progressive.nnunet.plan_schedule import schedule_of_new_run_from_plans
    from nnunet_progressive.nnunet.resolve import resolve_configuration

    ws = tiny3d_dataset
    planned = resolve_configuration(ws.dataset_name, ws.configuration, ws.plans, ws.folders.preprocessed)
    plans = json.loads(planned.plans_file.read_text())
    trainer_class = find_trainer_class(trainer)
    knobs = {"NNPROG_EPOCHS": "40", "NNPROG_MIN_PATCH": "16,16,16"}
    if "RPSS" not in trainer:  # the curriculum's knob (RPSS refuses it)
        knobs["NNPROG_GROWTH_SHARE"] = "0.5"
    for environ in ({}, knobs):
        schedule, settings = schedule_of_new_run_from_plans(CATALOGUE[trainer], plans, ws.configuration, environ)
        assert schedule == schedule_of_new_run(trainer_class, planned, environ), (trainer, environ)
        assert settings == settings_for_new_run(trainer_class, environ)
    for wrong in ({"NNPROG_GROWTH_SHAR": "0.5"}, {"NNPROG_TARGET_DICE": "0.5", "NNPROG_EPOCHS": "x"}):
        with pytest.raises(ProgressiveConfigError) as by_class:
            settings_for_new_run(trainer_class, wrong)
        with pytest.raises(ProgressiveConfigError) as from_plans:
            schedule_of_new_run_from_plans(CATALOGUE[trainer], plans, ws.configuration, wrong)
        assert str(from_plans.value) == str(by_class.value)
