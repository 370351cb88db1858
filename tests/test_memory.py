"""The activation estimate (architectures/memory.py) against torch's own accounting of saved tensors."""
from __future__ import annotations

import math

import pytest
import torch

from nnunet_progressive.architectures.memory import (
    BYTES_FLOAT32,
    PLAIN_UNET,
    RESIDUAL_ENCODER_UNET,
    activation_bytes,
    conv_unet_from_plan,
    stage_footprints,
)
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.pgps.schedule import build_schedule


def _architecture(kind: str, features, strides, blocks, decoder_convs) -> dict:
    """A plan's 'architecture' entry as nnU-Net's planners write it."""
    dims = len(strides[0])
    blocks_key = "n_conv_per_stage" if kind == PLAIN_UNET else "n_blocks_per_stage"
    return {
        "network_class_name": f"dynamic_network_architectures.architectures.unet.{kind}",
        "arch_kwargs": {
            "n_stages": len(features), "features_per_stage": list(features),
            "conv_op": f"torch.nn.modules.conv.Conv{dims}d", "kernel_sizes": [[3] * dims] * len(features),
            "strides": [list(s) for s in strides], blocks_key: list(blocks),
            "n_conv_per_stage_decoder": list(decoder_convs), "conv_bias": True,
            "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dims}d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def _saved_bytes(architecture: dict, input_channels: int, batch: int, patch) -> int:
    """Bytes autograd keeps for backward in a training forward pass (each storage once, weights excluded)."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    network = get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                     architecture["_kw_requires_import"], input_channels, 3, deep_supervision=True)
    network.train()
    parameters = {p.untyped_storage().data_ptr() for p in network.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        outputs = network(torch.randn(batch, input_channels, *patch))
    assert outputs[0].requires_grad
    return sum(storages.values())


CASES = [
    # default-like 3D U-Net, isotropic strides
    (PLAIN_UNET, (4, 8, 16, 16), [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], (2, 2, 2, 2), (2, 2, 2), 1),
    # anisotropic strides, three input channels, one conv per stage
    (PLAIN_UNET, (4, 8, 12, 16, 16), [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]], (1, 1, 1, 1, 1),
     (1, 1, 1, 1), 3),
    # ResEnc preset shape (1, 3, 4, ... blocks; one decoder conv); equal features in the deepest stages
    (RESIDUAL_ENCODER_UNET, (4, 8, 16, 16), [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], (1, 3, 4, 2), (1, 1, 1), 1),
    # projection without pooling (stage 1), pooling without projection (stage 2), both (stage 3)
    (RESIDUAL_ENCODER_UNET, (4, 8, 8, 16), [[1, 1], [1, 1], [1, 2], [2, 2]], (1, 2, 2, 2), (1, 1, 1), 2),
    (PLAIN_UNET, (4, 8, 16), [[1, 1], [2, 2], [2, 2]], (2, 2, 2), (2, 2), 1),
]


@pytest.mark.parametrize("kind, features, strides, blocks, decoder, channels", CASES)
def test_estimate_equals_torchs_saved_tensors(kind, features, strides, blocks, decoder, channels):
    architecture = _architecture(kind, features, strides, blocks, decoder)
    network = conv_unet_from_plan(architecture, channels)
    total = [math.prod(s[a] for s in strides) for a in range(len(strides[0]))]
    for batch, scale in ((1, 1), (2, 1), (3, 2)):
        patch = tuple(t * scale * (2 if a == 0 else 1) for a, t in enumerate(total))
        measured = _saved_bytes(architecture, channels, batch, patch)
        assert activation_bytes(network, patch, batch, BYTES_FLOAT32) == measured, (batch, patch)


def test_footprint_is_proportional_to_voxels_per_batch():
    architecture = _architecture(PLAIN_UNET, (32, 64, 128, 256, 320, 320), [[1, 1, 1]] + [[2, 2, 2]] * 5,
                                 (2,) * 6, (2,) * 5)
    network = conv_unet_from_plan(architecture, 1)
    schedule = build_schedule((128, 128, 128), architecture["arch_kwargs"]["strides"], 2, 1000, "performance")
    footprints = stage_footprints(network, [(s.patch_size, s.batch_size) for s in schedule.stages])
    assert footprints[-1]["relative_to_planned"] == 1.0
    for footprint, stage in zip(footprints, schedule.stages):
        voxel_ratio = stage.voxels_per_iteration / (2 * 128**3)
        # within the voxel budget, memory stays within the planned footprint (norm statistics: < 0.1%)
        assert footprint["relative_to_planned"] == pytest.approx(voxel_ratio, rel=1e-3)
        assert footprint["relative_to_planned"] <= 1.001
    # 2 x 128^3 and 64 x (64x32x32) keep the same activations up to the per-sample norm statistics
    same = activation_bytes(network, (64, 32, 32), 64) / activation_bytes(network, (128, 128, 128), 2)
    assert same == pytest.approx(1.0, rel=1e-3)


def test_unsupported_network_and_bad_patch_are_clear_errors():
    with pytest.raises(ProgressiveConfigError, match="no activation estimate"):
        conv_unet_from_plan({"network_class_name": "x.Primus", "arch_kwargs": {}}, 1)
    network = conv_unet_from_plan(_architecture(PLAIN_UNET, (4, 8), [[1, 1, 1], [2, 2, 2]], (2, 2), (2,)), 1)
    with pytest.raises(ProgressiveConfigError, match="not divisible"):
        activation_bytes(network, (3, 4, 4), 1)
