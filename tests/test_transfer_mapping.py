"""Weight-mapping plans and tensor rules (transfer/mapping.py), on nnU-Net-shaped state dicts."""
from __future__ import annotations

import numpy as np
import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.transfer.finetune import DECODER, ENCODER, HEADS, NEW
from nnunet_progressive.transfer.mapping import (
    ADAPTED,
    FRESH,
    HEAD,
    LOADED,
    adapt_input_channels,
    adapt_kernel,
    adapt_tensor,
    check_enough_maps,
    describe_network,
    first_convolution,
    frozen_roles,
    head_with_rows,
    match_head_rows,
    output_channels,
    parameter_role,
    plan_mapping,
    source_name_for,
    strip_wrappers,
)


def unet(channels=1, classes=3, features=(4, 8, 16), kernels=None, prefix=""):
    """The names and shapes nnU-Net's PlainConvUNet has (one conv per stage, aliases included)."""
    kernels = kernels or [(3, 3, 3)] * len(features)
    shapes = {}
    previous = channels
    for i, (f, k) in enumerate(zip(features, kernels)):
        for alias in ("conv", "all_modules.0"):
            shapes[f"encoder.stages.{i}.0.convs.0.{alias}.weight"] = (f, previous, *k)
            shapes[f"encoder.stages.{i}.0.convs.0.{alias}.bias"] = (f,)
        previous = f
    shapes.update({f"decoder.{k}": v for k, v in shapes.items()})
    levels = len(features) - 1
    for i in range(levels):
        deep, shallow = features[levels - i], features[levels - i - 1]
        shapes[f"decoder.stages.{i}.convs.0.conv.weight"] = (shallow, 2 * shallow, 3, 3, 3)
        shapes[f"decoder.transpconvs.{i}.weight"] = (deep, shallow, 2, 2, 2)
        shapes[f"decoder.seg_layers.{i}.weight"] = (classes, shallow, 1, 1, 1)
    return {prefix + k: v for k, v in shapes.items()}


def test_wrappers_are_stripped_in_any_order():
    assert strip_wrappers("module._orig_mod.encoder.x") == "encoder.x"
    assert strip_wrappers("_orig_mod.module.encoder.x") == "encoder.x"
    assert strip_wrappers("encoder.module.x") == "encoder.module.x"


def test_identical_networks_load_everything_but_the_heads():
    plan = plan_mapping(unet(), unet())
    assert plan.counts()[FRESH] == plan.counts()[ADAPTED] == 0
    assert {e.target for e in plan.by_status(HEAD)} == {f"decoder.seg_layers.{i}.weight" for i in range(2)}
    assert plan.mapped_share() == 1.0 and plan.unused_source == ()


def test_prefixes_on_both_sides_and_other_class_counts():
    plan = plan_mapping(unet(classes=5, prefix="module._orig_mod."), unet(classes=2, prefix="_orig_mod."))
    assert plan.mapped_share() == 1.0
    assert all(e.target == strip_wrappers(e.target) for e in plan.entries)


def test_input_channels_are_adapted_on_every_alias():
    plan = plan_mapping(unet(channels=1), unet(channels=4))
    adapted = {e.target for e in plan.by_status(ADAPTED)}
    assert adapted == set(first_convolution(unet(channels=4))) == {
        "encoder.stages.0.0.convs.0.conv.weight", "decoder.encoder.stages.0.0.convs.0.conv.weight"}
    # the all_modules.0 alias is not found by name: the nnU-Net side passes aliases found by storage
    explicit = plan_mapping(unet(channels=1), unet(channels=4),
                            source_input=[k for k in unet() if k.endswith("stages.0.0.convs.0.conv.weight")
                                          or k.endswith("stages.0.0.convs.0.all_modules.0.weight")],
                            target_input=[k for k in unet(channels=4) if ".stages.0.0.convs.0." in k
                                          and k.endswith("weight")])
    assert len(explicit.by_status(ADAPTED)) == 4 and explicit.mapped_share() == 1.0
    assert (explicit.source_input_channels, explicit.target_input_channels) == (1, 4)
    assert "input channels 1 -> 4" in explicit.by_status(ADAPTED)[0].rule


def test_other_features_stay_fresh_and_too_little_is_an_error_naming_the_mismatch():
    source, target = unet(features=(8, 16, 32)), unet(features=(4, 8, 16))
    plan = plan_mapping(source, target)
    assert plan.mapped_share() == 0.0
    with pytest.raises(ProgressiveConfigError) as error:
        check_enough_maps(plan, source, target)
    message = str(error.value)
    assert "features [8, 16, 32]" in message and "features [4, 8, 16]" in message
    assert "nnprog transfer prepare" in message and "--min-share" in message


def test_deeper_source_aligns_decoder_stages_from_the_top():
    source, target = unet(features=(4, 8, 16, 32)), unet(features=(4, 8, 16))
    assert source_name_for("decoder.stages.0.convs.0.conv.weight", 2, 3) == "decoder.stages.1.convs.0.conv.weight"
    plan = plan_mapping(source, target)
    status = plan.status_of()
    assert status["decoder.stages.1.convs.0.conv.weight"] == LOADED  # full resolution, both sides
    assert status["decoder.stages.0.convs.0.conv.weight"] == LOADED  # aligned with source stage 1
    assert "encoder.stages.3.0.convs.0.conv.weight" in plan.unused_source
    shallower = plan_mapping(target, source)  # the target is deeper: its extra level stays fresh
    assert shallower.status_of()["encoder.stages.3.0.convs.0.conv.weight"] == FRESH
    assert shallower.status_of()["decoder.stages.0.convs.0.conv.weight"] == FRESH


def test_kernel_rules():
    weight = np.arange(2 * 1 * 27, dtype=np.float32).reshape(2, 1, 3, 3, 3)
    summed = adapt_kernel(weight, (2, 1, 1, 3, 3))
    assert np.allclose(summed[:, :, 0], weight.sum(axis=2))
    centre = adapt_kernel(weight, (2, 1, 1, 1, 1))
    assert np.allclose(centre[..., 0, 0, 0], weight.sum(axis=(2, 3, 4)))
    padded = adapt_kernel(weight, (2, 1, 5, 3, 3))
    assert padded.shape == (2, 1, 5, 3, 3) and np.allclose(padded[:, :, 1:4], weight) and not padded[:, :, 0].any()
    cropped = adapt_kernel(np.ones((1, 1, 5, 5), np.float32), (1, 1, 3, 3))
    assert cropped.shape == (1, 1, 3, 3)
    plan = plan_mapping(unet(kernels=[(3, 3, 3)] * 3), unet(kernels=[(1, 3, 3)] + [(3, 3, 3)] * 2))
    entry = next(e for e in plan.by_status(ADAPTED))
    assert "kernel 3x3x3 -> 1x3x3 (summed over axis 0)" in entry.rule
    assert plan_mapping(unet(), unet(kernels=[(1, 3, 3)] + [(3, 3, 3)] * 2),
                        adapt_kernels=False).status_of()[entry.target] == FRESH


def test_channel_rule_keeps_the_response_to_identical_channels():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    image = rng.normal(size=(3, 3)).astype(np.float32)
    source_response = np.einsum("oikl,kl->o", weight, image)  # both source channels carry `image`
    for target_channels in (1, 3, 4):
        adapted = adapt_input_channels(weight, target_channels)
        assert adapted.shape == (4, target_channels, 3, 3)
        assert np.allclose(np.einsum("oikl,kl->o", adapted, image), source_response, atol=1e-5)
    matched = adapt_input_channels(weight, 2, matches=[1, None])
    assert np.allclose(matched[:, 0], weight[:, 1]) and np.allclose(matched[:, 1], weight.mean(axis=1))
    plan = plan_mapping(unet(channels=2), unet(channels=3))
    entry = plan.by_status(ADAPTED)[0]
    value = rng.normal(size=entry.source_shape).astype(np.float32)
    assert adapt_tensor(entry, value).shape == entry.target_shape


def test_roles_for_freezing():
    assert parameter_role("_orig_mod.encoder.stages.0.0.convs.0.conv.weight") == ENCODER
    assert parameter_role("module.decoder.seg_layers.1.bias") == HEADS
    assert parameter_role("decoder.stages.0.convs.0.conv.weight") == DECODER
    assert parameter_role("swinViT.layers1.0.blocks.0.attn.qkv.weight") == ENCODER
    assert parameter_role("out.conv.conv.weight") == HEADS
    names = ["encoder.stages.0.0.convs.0.conv.weight", "encoder.stages.1.0.convs.0.conv.weight",
             "decoder.seg_layers.0.weight"]
    statuses = {"encoder.stages.0.0.convs.0.conv.weight": ADAPTED, "encoder.stages.1.0.convs.0.conv.weight": LOADED,
                "decoder.seg_layers.0.weight": HEAD}
    assert list(frozen_roles(names, statuses).values()) == [NEW, ENCODER, HEADS]
    assert list(frozen_roles(names, None).values()) == [ENCODER, ENCODER, HEADS]


def test_describe_network():
    assert describe_network(unet(channels=4)) == (
        "3 encoder stages, features [4, 8, 16], kernels ['3x3x3', '3x3x3', '3x3x3'], 4 input channels")


def test_counts_are_of_tensors_not_of_their_aliases():
    """One input convolution reached by four names counts once; the share counts its elements once."""
    source, target = unet(channels=1), unet(channels=2)
    plan = plan_mapping(source, target)
    aliases = first_convolution(target)
    assert len(aliases) > 1 and plan.counts()[ADAPTED] == len(aliases)
    tensor_of = {name: (aliases[0] if name in aliases else name) for name in target}
    for name in target:  # nnU-Net's decoder.encoder.* are the encoder's tensors
        if name.startswith("decoder.encoder."):
            tensor_of[name] = tensor_of.get(name[len("decoder."):], name[len("decoder."):])
    assert plan.tensor_counts(tensor_of)[ADAPTED] == 1
    assert plan.tensor_counts(None) == plan.counts()
    assert 0 < plan.mapped_share(tensor_of) <= 1.0


def test_head_rows_keep_matching_labels_and_background():
    rows = match_head_rows({"background": 0, "Aorta": 1, "lesion": 2},
                           {"background": 0, "spleen": 1, "liver": 2, "aorta": 3})
    assert rows.target_labels == ("background", "Aorta", "lesion")
    assert rows.source_channels == (0, 3, None)
    assert rows.kept == {"background": "background", "Aorta": "aorta"} and rows.fresh == ["lesion"]
    assert "rows kept for background, Aorta <- aorta; fresh for lesion" == rows.describe()
    fresh = np.zeros((3, 2, 1, 1, 1), np.float32)
    source = np.arange(8, dtype=np.float32).reshape(4, 2, 1, 1, 1)
    value = head_with_rows(fresh, source, rows)
    assert np.array_equal(value[1], source[3]) and np.array_equal(value[0], source[0]) and not value[2].any()
    assert np.array_equal(head_with_rows(np.zeros(3), np.arange(4.0), rows), [0.0, 3.0, 0.0])  # bias
    with pytest.raises(ValueError, match="head shapes"):
        head_with_rows(np.zeros((3, 4, 1, 1, 1)), source, rows)


def test_head_rows_stay_fresh_when_nothing_matches_or_labels_are_regions():
    assert not match_head_rows({"background": 0, "tumor": 1}, {"background": 0, "liver": 1}).kept
    assert not match_head_rows({"background": 0, "liver": 1}, None).kept
    assert "regions" in match_head_rows({"background": 0, "whole": [1, 2], "core": [2]},
                                        {"background": 0, "whole": 1}).describe()
    assert output_channels({"background": 0, "b": 2, "a": 1, "ignore": 3}) == ["background", "a", "b"]
    # the side matters: a left kidney is not a right one
    assert match_head_rows({"background": 0, "kidney_left": 1}, {"background": 0, "kidney_right": 1}).kept == {}
