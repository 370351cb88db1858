"""Pure tests of the architectures room: input rules, recipes, the generalised PGPS step rule, memory estimates."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from nnunet_progressive.architectures.input_rules import (
    PRIMUS,
    SWIN_UNETR,
    UNETR,
    adjust_patch,
    check_dimensions,
    check_patch,
    token_grid,
)
from nnunet_progressive.architectures.recipes import (
    PRIMUS_RECIPE,
    RECIPES,
    SWIN_UNETR_RECIPE,
    UNETR_RECIPE,
    recipe_table,
)
from nnunet_progressive.architectures.specs import PRIMUS_L, PRIMUS_S, SWIN_UNETR_48, TINY_SWIN_UNETR, UNETR_B
from nnunet_progressive.architectures.transformer_memory import (
    activations,
    primus_decoder_channels,
    sample_cost,
    unmodelled_sample_bytes,
)
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.pgps.schedule import (
    build_schedule,
    network_strides,
    patch_sequence,
    performance_batch_sizes,
    random_patch_pool,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "architectures.md"


# --- input rules ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("rule", "planned", "adjusted"), [
    (UNETR, (128, 128, 128), (128, 128, 128)),  # already fits: unchanged
    (UNETR, (40, 56, 40), (48, 64, 48)),  # up to the next multiple, as nnU-Net's pad_shape
    (UNETR, (20, 320, 256), (32, 320, 256)),
    (SWIN_UNETR, (20, 320, 256), (32, 320, 256)),
    (SWIN_UNETR, (32, 32, 32), (64, 32, 32)),  # the bottleneck needs two voxels (instance norm)
    (SWIN_UNETR, (24, 40), (32, 64)),  # 2D: the longer planned axis grows
    (PRIMUS, (20, 192, 160), (24, 192, 160)),
    (PRIMUS, (3, 5, 7), (8, 8, 8)),  # at least one multiple per axis
])
def test_adjust_patch_rounds_up_and_is_idempotent(rule, planned, adjusted):
    assert adjust_patch(planned, rule) == adjusted
    assert adjust_patch(adjusted, rule) == adjusted
    check_patch(adjusted, rule)


def test_patch_rule_errors_say_what_and_the_fix():
    with pytest.raises(ProgressiveConfigError, match=r"not a multiple of 16 on axes \[0\].*use \(48, 32, 32\)"):
        check_patch((40, 32, 32), UNETR)
    with pytest.raises(ProgressiveConfigError, match="Primus is implemented for 3D patches only.*'2d'.*3d_fullres"):
        check_dimensions(PRIMUS, 2, "2d")
    check_dimensions(UNETR, 2, "2d")
    check_dimensions(SWIN_UNETR, 2, "2d")
    assert token_grid((96, 64, 32), UNETR) == (6, 4, 2)
    assert token_grid((64, 32), SWIN_UNETR) == (32, 16)


# --- the generalised step rule of the PGPS schedule ----------------------------------------------------------
def test_network_strides_combine_pooling_and_input_multiple():
    plan_strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]  # total (4, 8, 8)
    assert network_strides(plan_strides) == (4, 8, 8)
    assert network_strides(plan_strides, (16, 16, 16)) == (16, 16, 16)
    assert network_strides(plan_strides, (6, 6, 6)) == (12, 24, 24)  # least common multiple per axis
    assert network_strides(None, (32, 32)) == (32, 32)
    with pytest.raises(ProgressiveConfigError, match="one positive entry per axis"):
        network_strides(plan_strides, (16, 16))
    with pytest.raises(ProgressiveConfigError, match="both are None"):
        network_strides(None, None)


@pytest.mark.parametrize(("rule", "planned", "first", "count"), [
    (UNETR, (96, 96, 96), (32, 16, 16), 1 + 4 + 5 + 5),
    (SWIN_UNETR, (128, 128, 128), (64, 32, 32), 1 + 2 + 3 + 3),
    (PRIMUS, (64, 64, 64), (16, 8, 8), 1 + 6 + 7 + 7),
    (SWIN_UNETR, (64, 64), (64, 32), 2),
])
def test_schedule_steps_by_the_network_rule(rule, planned, first, count):
    multiple = rule.per_axis(len(planned))
    schedule = build_schedule(planned, None, 2, 100, input_multiple=multiple)
    patches = [stage.patch_size for stage in schedule.stages]
    assert patches[0] == first and patches[-1] == planned and len(patches) == count
    assert all(p % rule.multiple == 0 for patch in patches for p in patch)
    for a, b in zip(patches, patches[1:]):
        assert sum(x != y for x, y in zip(a, b)) == 1 and sum(b) - sum(a) == rule.multiple
    assert random_patch_pool(planned, None, None, input_multiple=multiple) == patches


def test_existing_api_unchanged_without_a_network_rule():
    strides = [[1, 1, 1]] + [[2, 2, 2]] * 5
    assert patch_sequence((128, 128, 128), (32, 32, 32)) == [
        stage.patch_size for stage in build_schedule((128, 128, 128), strides, 2, 50).stages]
    assert performance_batch_sizes([(64, 32, 32), (128, 128, 128)], 2) == [64, 2]


def test_user_min_patch_must_follow_the_network_rule():
    with pytest.raises(ProgressiveConfigError, match="not a positive multiple of the network's total stride"):
        build_schedule((96, 96, 96), None, 2, 100, min_patch=(24, 16, 16), input_multiple=(16, 16, 16))
    schedule = build_schedule((96, 96, 96), None, 2, 100, min_patch=(48, 48, 48), input_multiple=(16, 16, 16))
    assert schedule.stages[0].patch_size == (48, 48, 48)


# --- Performance batch with a per-sample memory estimate -----------------------------------------------------
def test_sample_cost_keeps_the_estimated_memory_within_the_budget():
    """SwinUNETR pads small stages to whole windows: voxels underestimate their memory; the estimate does not."""
    planned, batch = (128, 128, 128), 2
    cost = sample_cost(SWIN_UNETR_48, 1, 3)
    by_voxels = build_schedule(planned, None, batch, 100, "performance", max_batch=64, input_multiple=(32,) * 3)
    by_memory = build_schedule(planned, None, batch, 100, "performance", max_batch=64, input_multiple=(32,) * 3,
                               sample_cost=cost)
    budget = batch * cost(planned)
    assert by_voxels.stages[0].batch_size * cost(by_voxels.stages[0].patch_size) > 1.2 * budget
    for stage in by_memory.stages:
        assert stage.batch_size * cost(stage.patch_size) <= budget * (1 + 1e-9) or stage.batch_size == batch
        assert stage.batch_size >= batch
    assert by_memory.stages[-1].batch_size == batch


def test_performance_batches_fill_the_budget_from_the_estimate():
    cost = sample_cost(UNETR_B, 1, 3)
    patches = patch_sequence((96, 96, 96), (16, 16, 16))
    batches = performance_batch_sizes(patches, 2, 2 * math.prod((96, 96, 96)), 64, cost)
    for patch, b in zip(patches, batches):
        if b < 64:
            assert (b + 1) * cost(patch) > 2 * cost((96, 96, 96)), "the largest batch within the budget"


@pytest.mark.parametrize(("spec", "first_patch", "measured_batch", "largest_safe"),
                         [(UNETR_B, (32, 16, 16), 575, 520), (PRIMUS_S, (16, 8, 8), 4096, 3526)])
def test_the_measured_per_sample_excess_bounds_the_first_stage(spec, first_patch, measured_batch, largest_safe):
    """On an H200 the first stage of UNETR-B and Primus-S (2 tokens per sample) peaked 10% / 16% above the planned
    stage at batch 575 / 4096; with the measured excess per sample the schedule stops where that fit reaches the
    planned peak; the next two stages lose 3-8% of their batch, every later one under 3% (or one sample)."""
    planned, batch = (128, 128, 128), 2

    def schedule(cost):
        return build_schedule(planned, None, batch, 1000, "performance", input_multiple=(spec.rule.multiple,) * 3,
                              sample_cost=cost)

    saved_only = schedule(lambda patch: activations(spec, patch, 1, 3).bytes(True))
    with_excess = schedule(sample_cost(spec, 1, 3))
    assert saved_only.stages[0].patch_size == with_excess.stages[0].patch_size == first_patch
    assert saved_only.stages[0].batch_size == measured_batch, "the batch the GPU check measured"
    assert with_excess.stages[0].batch_size == largest_safe
    for old, new in zip(saved_only.stages[1:], with_excess.stages[1:], strict=True):
        assert (0.97 if old.index >= 3 else 0.9) * old.batch_size - 1 <= new.batch_size <= old.batch_size
    assert with_excess.stages[-1].batch_size == batch


def test_the_excess_scales_with_the_vit_and_is_zero_for_swin():
    assert unmodelled_sample_bytes(SWIN_UNETR_48) == 0
    scale = 1056 * 24 / (396 * 12)  # Primus-L's width x depth over Primus-S's
    assert unmodelled_sample_bytes(PRIMUS_L) == pytest.approx(unmodelled_sample_bytes(PRIMUS_S) * scale)


# --- memory estimates (properties; tests/test_transformer_networks.py checks them against torch) -------------
def test_primus_memory_is_linear_in_voxels():
    per_voxel = {p: activations(PRIMUS_S, p, 1, 3).bytes() / math.prod(p) for p in [(16, 8, 8), (64, 64, 64),
                                                                                      (128, 128, 96)]}
    assert max(per_voxel.values()) == pytest.approx(min(per_voxel.values()))
    assert activations(PRIMUS_S, (64, 64, 64), 1, 3).attention == 0


def test_unetr_attention_grows_with_the_square_of_the_tokens():
    small, large = (activations(UNETR_B, p, 1, 3) for p in [(64, 64, 64), (128, 128, 128)])
    assert large.attention == 64 * small.attention  # 8x tokens
    assert large.activations == pytest.approx(8 * small.activations, rel=0.01)


def test_swin_small_patches_cost_more_per_voxel():
    per_voxel = [activations(SWIN_UNETR_48, p, 1, 3).bytes() / math.prod(p)
                 for p in [(64, 32, 32), (64, 64, 64), (128, 128, 128)]]
    assert per_voxel[0] > per_voxel[1] > per_voxel[2]
    amp, fp32 = (activations(TINY_SWIN_UNETR, (64, 64, 64), 1, 3).bytes(m) for m in (True, False))
    assert amp < fp32


def test_primus_decoder_channels_follow_dynamic_network_architectures():
    assert primus_decoder_channels(48, 3, 3) == [48, 24, 16, 3]  # checked against PatchDecode in torch tests
    assert primus_decoder_channels(396, 2, 3)[0] == 396 and primus_decoder_channels(396, 2, 3)[-1] == 2


# --- recipes -----------------------------------------------------------------------------------------------
def test_warmup_cosine_learning_rate():
    r = UNETR_RECIPE
    assert r.warmup_epochs(1000) == 50 and r.warmup_epochs(100) == 5 and r.warmup_epochs(3) == 1
    lrs = [r.learning_rate_at(e, 1000) for e in range(1000)]
    assert lrs[0] == pytest.approx(r.learning_rate / 50) and lrs[49] == pytest.approx(r.learning_rate)
    assert lrs[50] == pytest.approx(r.learning_rate)
    assert all(a >= b for a, b in zip(lrs[50:], lrs[51:])) and lrs[-1] < 1e-3 * r.learning_rate
    assert lrs[525] == pytest.approx(r.learning_rate / 2, rel=1e-2)  # half-way down the cosine


def test_recipes_state_their_sources():
    for recipe in (UNETR_RECIPE, SWIN_UNETR_RECIPE, PRIMUS_RECIPE):
        assert {"optimizer", "learning_rate", "weight_decay", "grad_clip", "mixed_precision", "deep_supervision",
                "lr_schedule"} <= set(recipe.sources), recipe.architecture
    assert PRIMUS_RECIPE.warmup_epochs(1000) == 50, "nnU-Net's Primus: 50 of 1000 epochs"
    assert PRIMUS_RECIPE.warmup_epochs(100) == 5
    assert set(RECIPES) == {"U-Net / ResEnc U-Net (nnU-Net)", "UNETR", "SwinUNETR", "Primus"}


def test_docs_carry_the_recipe_table():
    assert recipe_table() in DOCS.read_text(), "paste `python -c 'from nnunet_progressive.architectures.recipes " \
                                               "import recipe_table; print(recipe_table())'` into docs/architectures.md"
