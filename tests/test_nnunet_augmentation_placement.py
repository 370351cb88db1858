"""NNPROG_AUGMENT_ON without training: the knob, the refusal of trainers with their own transforms, the hook."""
from __future__ import annotations

import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoDA import nnUNetTrainerNoDA
from package_trainers import TRAINERS

import nnunet_progressive_trainers.nnprog_pgps as pgps_trainers
from nnunet_progressive.core.errors import NnprogError, ProgressiveConfigError
from nnunet_progressive.core.knobs import ProgressiveSettings, settings_from_env
from nnunet_progressive.core.records import AugmentationCost, RunIdentity
from nnunet_progressive.nnunet.hooks.augmentation_placement import (
    AugmentationPlacementMixin,
    augmentation_cost,
    own_transform_classes,
    transforms_refusal,
)
from nnunet_progressive.nnunet.hooks.loaders import PATCH_SIZE_KEY
from nnunet_progressive.nnunet.hooks.run_state import RunLengthMixin, settings_for_new_run

DEVICE = {"NNPROG_AUGMENT_ON": "device"}


class OwnTransformsPGPS(pgps_trainers.nnUNetTrainer_PGPS_Efficiency):
    """A user's trainer with its own augmentation."""

    @staticmethod
    def get_training_transforms(*args, **kwargs):
        return None


class PackageNoDA(RunLengthMixin, nnUNetTrainerNoDA):
    """nnU-Net's no-augmentation trainer with the package's run state."""


# --- the knob -----------------------------------------------------------------------------------------------

def test_knob_defaults_to_workers_and_takes_device():
    assert ProgressiveSettings().augment_on == "workers"
    assert settings_from_env(environ={"NNPROG_AUGMENT_ON": " Device "}).augment_on == "device"
    with pytest.raises(ProgressiveConfigError, match="NNPROG_AUGMENT_ON: must be one of"):
        settings_from_env(environ={"NNPROG_AUGMENT_ON": "gpu"})


def test_every_trainer_reads_the_knob_and_it_is_part_of_the_run_identity():
    for name, trainer in TRAINERS.items():
        assert "NNPROG_AUGMENT_ON" in ProgressiveSettings().knobs_read_by(trainer.knob_features()), name
        assert settings_for_new_run(trainer, DEVICE).augment_on == "device", name
    settings = ProgressiveSettings(augment_on="device")
    assert ProgressiveSettings.from_dict(settings.to_dict()) == settings
    identity = RunIdentity(run_id="a", trainer="T", package_version="0", settings=settings.to_dict(), plans="p",
                           configuration="3d_fullres", fold="0", plans_fingerprint="f", created="now")
    other = identity.model_copy(update={"settings": ProgressiveSettings().to_dict()})
    assert identity.differences(other) == {"NNPROG_AUGMENT_ON": ("device", "workers")}


# --- the refusal --------------------------------------------------------------------------------------------

def test_package_trainers_have_nnunets_own_transforms():
    from nnunet_progressive.nnunet.compat import install_in_this_process

    install_in_this_process()  # before timm (Primus) imports torchvision on a CPU-only machine
    import nnunet_progressive_trainers.nnprog_architectures as architecture_trainers
    import nnunet_progressive_trainers.nnprog_transfer as transfer_trainers

    more = {name: getattr(module, name) for module in (architecture_trainers, transfer_trainers)
            for name in dir(module) if isinstance(getattr(module, name), type)
            and issubclass(getattr(module, name), RunLengthMixin)}
    assert any("Primus" in name for name in more) and any("Finetune" in name for name in more)
    for name, trainer in {**TRAINERS, **more}.items():
        assert own_transform_classes(trainer) == [], name
        assert transforms_refusal(trainer, "device") is None, name


def test_own_transforms_are_refused_on_the_device_only():
    assert own_transform_classes(OwnTransformsPGPS) == [OwnTransformsPGPS]
    assert own_transform_classes(PackageNoDA) == [nnUNetTrainerNoDA]
    assert transforms_refusal(OwnTransformsPGPS, "workers") is None
    message = transforms_refusal(PackageNoDA, "device")
    assert "NNPROG_AUGMENT_ON=device cannot run PackageNoDA" in message and "nnUNetTrainerNoDA" in message
    assert "Fix: NNPROG_AUGMENT_ON=workers" in message


def test_a_new_run_with_own_transforms_on_the_device_cannot_start():
    with pytest.raises(ProgressiveConfigError) as failure:
        settings_for_new_run(OwnTransformsPGPS, DEVICE)
    message = str(failure.value)
    assert message.startswith("OwnTransformsPGPS cannot start") and "not nnU-Net's default pipeline" in message
    assert settings_for_new_run(OwnTransformsPGPS, {}).augment_on == "workers"


# --- the cost record ----------------------------------------------------------------------------------------

def test_augmentation_cost_per_batch():
    device = augmentation_cost("device", "cuda:0", {0: 0.2, 1: 0.4}, {0: 2, 1: 4})
    assert device.on == "device" and device.device == "cuda:0" and device.batches == 6
    assert device.seconds_per_batch == pytest.approx(0.1) and "training process" in device.measured
    workers = augmentation_cost("workers", "cpu", {}, {}, loader_seconds=1.5, loader_batches=3)
    assert workers.on == "workers" and workers.device is None and workers.seconds_per_batch == pytest.approx(0.5)
    assert augmentation_cost("workers", "cpu", {}, {}).seconds_per_batch is None
    assert AugmentationCost.model_validate(device.to_json()) == device


# --- the hook, on a stand-in for nnU-Net's trainer (the real pipeline) ----------------------------------------

class _NnunetLike:
    """What the hook uses of nnUNetTrainer: its transforms, its step, its log."""

    def __init__(self, plans, configuration, fold, dataset_json, device):
        self.device = device
        self.current_epoch = 0
        self.steps: list[dict] = []
        self.log: list[str] = []

    get_training_transforms = staticmethod(nnUNetTrainer.get_training_transforms)

    def train_step(self, batch: dict) -> dict:
        self.steps.append(batch)
        return {"loss": 0.0}

    def on_train_epoch_end(self, train_outputs):
        pass

    def print_to_log_file(self, *args):
        self.log.append(" ".join(str(a) for a in args))


class _Hooked(AugmentationPlacementMixin, _NnunetLike):
    pass


DS_SCALES = [[1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]


def _hooked(augment_on: str) -> _Hooked:
    trainer = _Hooked({}, "3d_fullres", 0, {}, torch.device("cpu"))
    trainer.progressive_settings = ProgressiveSettings(augment_on=augment_on)
    return trainer


def _transforms(trainer: _Hooked, patch):
    return trainer.get_training_transforms(list(patch), (-0.5, 0.5), DS_SCALES, (0, 1, 2), False,
                                           use_mask_for_norm=[False], foreground_labels=[1])


def _batch(initial, patch=None, batch_size: int = 2) -> dict:
    torch.manual_seed(0)
    batch = {"data": torch.randn(batch_size, 1, *initial),
             "target": (torch.rand(batch_size, 1, *initial) > 0.7).to(torch.int16), "keys": ["a", "b"]}
    if patch is not None:
        batch[PATCH_SIZE_KEY] = tuple(patch)
    return batch


def test_workers_keep_nnunets_per_sample_pipeline():
    trainer = _hooked("workers")
    transforms = _transforms(trainer, (16, 16, 16))
    assert type(transforms).__name__ == "ComposeTransforms"  # batchgeneratorsv2's, as nnU-Net builds it
    batch = _batch((16, 16, 16), patch=(16, 16, 16))
    trainer.train_step(batch)
    assert PATCH_SIZE_KEY not in trainer.steps[0] and trainer.steps[0]["data"] is batch["data"]
    assert trainer.last_augment_seconds is None and trainer.augmentation_record().on == "workers"


def test_device_gives_the_loader_no_transforms_and_augments_in_the_step():
    trainer = _hooked("device")
    assert _transforms(trainer, (16, 16, 16)) is None
    trainer.train_step(_batch((24, 24, 24)))  # untagged: the pipeline of the loader built last
    step = trainer.steps[-1]
    assert tuple(step["data"].shape) == (2, 1, 16, 16, 16) and step["keys"] == ["a", "b"]
    assert [tuple(t.shape) for t in step["target"]] == [(2, 1, 16, 16, 16), (2, 1, 8, 8, 8), (2, 1, 4, 4, 4)]
    assert trainer.last_augment_seconds > 0
    trainer.on_train_epoch_end([])
    assert "Augmentation on device cpu" in trainer.log[-1] and "(1 batches" in trainer.log[-1]
    record = trainer.augmentation_record()
    assert record.on == "device" and record.batches == 1 and record.seconds_per_batch > 0


def test_device_follows_each_batchs_own_patch():
    trainer = _hooked("device")
    for patch in ((16, 16, 16), (8, 16, 16)):  # RPSS: several loaders, one augmenter
        _transforms(trainer, patch)
    trainer.train_step(_batch((24, 24, 24), patch=(16, 16, 16)))
    trainer.train_step(_batch((12, 24, 24), patch=(8, 16, 16)))
    assert [tuple(s["data"].shape[2:]) for s in trainer.steps] == [(16, 16, 16), (8, 16, 16)]
    with pytest.raises(NnprogError, match=r"no batched augmentation pipeline for a batch of patch \(4, 4, 4\)"):
        trainer.train_step(_batch((8, 8, 8), patch=(4, 4, 4)))


def test_device_refuses_a_batch_that_was_augmented_already():
    trainer = _hooked("device")
    _transforms(trainer, (16, 16, 16))
    batch = _batch((16, 16, 16))
    batch["target"] = [batch["target"]]
    with pytest.raises(NnprogError, match="already augmented"):
        trainer.train_step(batch)


def test_augmentation_cost_survives_a_resume():
    trainer = _hooked("device")
    _transforms(trainer, (16, 16, 16))
    for epoch in (0, 1):
        trainer.current_epoch = epoch
        trainer.train_step(_batch((24, 24, 24)))
    state = trainer.augmentation_state()
    resumed = _hooked("device")
    resumed.restore_augmentation_state(state, current_epoch=1)  # epoch 1 is trained again
    assert resumed.augmentation_record().batches == 1
