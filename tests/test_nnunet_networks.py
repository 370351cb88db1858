"""The transformer networks in torch (tiny sizes, CPU): grid-following embeddings, checkpoint compatibility with the
published fixed-shape networks, the memory estimates against torch's own accounting, MONAI as an optional extra."""
from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from nnunet_progressive.nnunet.compat import install_in_this_process

install_in_this_process()  # before timm (Primus) imports torchvision on a CPU-only machine

from nnunet_progressive.architectures.specs import TINY_PRIMUS, TINY_SWIN_UNETR, TINY_UNETR  # noqa: E402
from nnunet_progressive.architectures.transformer_memory import (  # noqa: E402
    activations,
    primus_decoder_channels,
    sample_cost,
)
from nnunet_progressive.core.errors import ProgressiveConfigError  # noqa: E402
from nnunet_progressive.nnunet.hooks.architectures import primus_memory_spec, token_grid_in_use  # noqa: E402
from nnunet_progressive.nnunet.networks.builders import build_network  # noqa: E402
from nnunet_progressive.nnunet.networks.memory_probe import saved_activation_bytes  # noqa: E402
from nnunet_progressive.nnunet.networks.position_embeddings import (  # noqa: E402
    resize_position_table,
    rotary_embedding_for_grid,
)
from nnunet_progressive.pgps.schedule import build_schedule  # noqa: E402


def _train_steps(model, shapes, steps_per_shape=1, channels=1):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for shape in shapes:
        for _ in range(steps_per_shape):
            optimizer.zero_grad()
            model(torch.randn(2, channels, *shape)).square().mean().backward()
            optimizer.step()


# --- position tables -----------------------------------------------------------------------------------------
def test_resize_position_table_interpolates_and_keeps_the_stored_grid():
    grid = (4, 6, 2)
    z, y, x = torch.meshgrid(*(torch.arange(g, dtype=torch.float32) for g in grid), indexing="ij")
    table = torch.stack([z, y, x], -1).reshape(1, -1, 3).requires_grad_(True)
    assert resize_position_table(table, grid, grid) is table
    resized = resize_position_table(table, grid, (2, 3, 2))
    assert resized.shape == (1, 12, 3)
    ramp = resized.reshape(2, 3, 2, 3)
    assert torch.allclose(ramp[:, 0, 0, 0], torch.tensor([0.5, 2.5]))  # linear ramps stay linear (cell centres)
    resized.sum().backward()
    assert table.grad is not None and table.grad.abs().sum() > 0, "the stored table learns at every stage"
    with_prefix = torch.cat([torch.full((1, 2, 3), 7.0), table.detach()], 1)
    out = resize_position_table(with_prefix, grid, (2, 3, 2), prefix_tokens=2)
    assert out.shape == (1, 14, 3) and torch.equal(out[:, :2], with_prefix[:, :2])
    with pytest.raises(ValueError, match="does not hold"):
        resize_position_table(table, (4, 6, 3), (2, 2, 2))


def test_rotary_embedding_keeps_one_step_per_token():
    model = build_network(TINY_PRIMUS, 1, 3, (32, 32, 32))
    rope = model.eva.rope
    stored = rotary_embedding_for_grid(rope, (4, 4, 4))
    assert torch.allclose(stored, rope.pos_embed, atol=1e-6), "at the planned grid: nnU-Net's own embedding"
    crop = rotary_embedding_for_grid(rope, (2, 3, 4))
    full = stored.reshape(4, 4, 4, -1)[:2, :3, :4].reshape(24, -1)
    assert torch.allclose(crop, full, atol=1e-6), "a stage's grid is a crop of the planned one (same spacing)"


# --- UNETR -------------------------------------------------------------------------------------------------
def test_tiny_unetr_follows_the_grid_and_its_checkpoint_is_monais_unetr():
    from monai.networks.nets import UNETR

    planned = (32, 32, 32)
    model = build_network(TINY_UNETR, 1, 3, planned)
    stock = UNETR(1, 3, planned, feature_size=4, hidden_size=48, mlp_dim=96, num_heads=4)
    assert set(model.state_dict()) == set(stock.state_dict()), "MONAI's parameter names"
    stages = [(32, 16, 16), (32, 32, 16), (32, 32, 32)]
    for shape in stages:
        assert model(torch.randn(1, 1, *shape)).shape == (1, 3, *shape)
        assert token_grid_in_use(model) == tuple(s // 16 for s in shape)
    _train_steps(model, stages[:2])  # the stored table learns through its resized copies
    stock.load_state_dict(model.state_dict())
    model.eval(), stock.eval()
    x = torch.randn(2, 1, *planned)
    with torch.no_grad():
        assert torch.allclose(model(x), stock(x), atol=1e-5), "predicts at the planned patch as MONAI's UNETR"
    with pytest.raises(ValueError, match="not a multiple of the token size"):
        model(torch.randn(1, 1, 24, 32, 32))


def test_tiny_unetr_2d():
    model = build_network(TINY_UNETR, 2, 2, (64, 48))
    for shape in [(32, 16), (64, 48), (16, 64)]:
        assert model(torch.randn(2, 2, *shape)).shape == (2, 2, *shape)


# --- Primus ------------------------------------------------------------------------------------------------
def test_primus_follows_the_grid_and_its_checkpoint_is_nnuneds_primus():
    planned = (32, 32, 32)
    model = build_network(TINY_PRIMUS, 1, 3, planned)
    stock = build_network(TINY_PRIMUS, 1, 3, planned, follow_grid=False)
    assert set(model.state_dict()) == set(stock.state_dict())
    stages = [(16, 8, 8), (24, 16, 8), (32, 32, 32)]
    for shape in stages:
        assert model(torch.randn(1, 1, *shape)).shape == (1, 3, *shape)
        assert token_grid_in_use(model) == tuple(s // 8 for s in shape)
    with pytest.raises(RuntimeError):
        stock(torch.randn(1, 1, 16, 8, 8))  # the published network is tied to its input shape
    _train_steps(model, stages[:2])
    stock.load_state_dict(model.state_dict())
    model.eval(), stock.eval()
    x = torch.randn(2, 1, *planned)
    with torch.no_grad():
        assert torch.allclose(model(x), stock(x), atol=1e-5), "predicts at the planned patch as the stock Primus"
    twin = copy.deepcopy(model)  # nnU-Net deep-copies plans, not networks, but DDP/compile wrappers may
    with torch.no_grad():
        assert torch.allclose(twin(x), model(x))


@pytest.mark.parametrize("trainer", ["nnUNet_Primus_S_Trainer", "nnUNet_PrimusV2S_Trainer", "nnUNet_PrimusV3S_Trainer"])
def test_primus_of_nnunets_own_trainer_is_adapted_in_place(trainer):
    """Every Primus generation (V2/V3: another patch embedding and stem) keeps its parameters and runs on a
    smaller grid."""
    import nnunetv2.training.nnUNetTrainer.primus.primus_trainers as primus_trainers

    from nnunet_progressive.nnunet.networks.primus import follow_token_grid

    if not hasattr(primus_trainers, trainer) or (trainer.startswith("nnUNet_PrimusV3")
                                                 and primus_trainers.PrimusV3S is None):
        pytest.skip(f"{trainer} needs a newer dynamic_network_architectures")

    class Configuration:
        patch_size = (32, 32, 32)

    network = getattr(primus_trainers, trainer).build_network_architecture(None, Configuration(), 1, 2)
    keys = set(network.state_dict())
    follow_token_grid(network, (32, 32, 32))
    assert set(network.state_dict()) == keys
    with torch.no_grad():
        assert network(torch.randn(1, 1, 16, 16, 8)).shape == (1, 2, 16, 16, 8)


# --- SwinUNETR ----------------------------------------------------------------------------------------------
def test_swin_unetr_runs_on_any_multiple_of_32():
    model = build_network(TINY_SWIN_UNETR, 1, 2, (64, 64, 64))
    assert model(torch.randn(1, 1, 64, 32, 32)).shape == (1, 2, 64, 32, 32)
    model2d = build_network(TINY_SWIN_UNETR, 1, 2, (64, 64))
    assert model2d(torch.randn(2, 1, 32, 96)).shape == (2, 2, 32, 96)


# --- memory estimates against torch's accounting --------------------------------------------------------------
MEMORY_CASES = [
    (TINY_UNETR, [(32, 32, 32), (16, 16, 16), (48, 32, 16)]),
    (replace(TINY_UNETR, feature_size=8, hidden_size=96, mlp_dim=64, num_heads=2), [(64, 32, 32)]),
    (TINY_UNETR, [(64, 64), (32, 16)]),
    (TINY_PRIMUS, [(32, 32, 32), (16, 8, 8), (32, 16, 24)]),
    (replace(TINY_PRIMUS, init_values=None, scale_attn_inner=False, embed_dim=96, num_heads=4), [(32, 32, 32)]),
    (TINY_SWIN_UNETR, [(64, 32, 32), (64, 64, 32)]),
    (replace(TINY_SWIN_UNETR, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 4)), [(64, 32, 32)]),
    (TINY_SWIN_UNETR, [(64, 64), (128, 96)]),
]


@pytest.mark.parametrize(("spec", "patches"), MEMORY_CASES, ids=lambda v: getattr(v, "name", str(v)))
def test_memory_estimate_matches_torchs_saved_tensors(spec, patches):
    torch.manual_seed(0)
    model = build_network(spec, 1, 3, patches[0]).train()
    for patch in patches:
        measured = saved_activation_bytes(model, torch.randn(1, 1, *patch))
        estimated = activations(spec, patch, 1, 3).bytes(mixed_precision=False)
        assert estimated == pytest.approx(measured, rel=0.05), patch
    doubled = saved_activation_bytes(model, torch.randn(2, 1, *patches[-1]))
    assert doubled == pytest.approx(2 * measured, rel=0.02), "memory is per sample (up to small shared terms)"


def test_primus_decoder_channels_match_the_network():
    model = build_network(TINY_PRIMUS, 1, 3, (32, 32, 32))
    transposed = [m for m in model.up_projection.modules() if isinstance(m, torch.nn.ConvTranspose3d)]
    channels = [transposed[0].in_channels] + [m.out_channels for m in transposed]
    assert channels == primus_decoder_channels(48, 3, 3)


def test_performance_batches_from_the_estimate_keep_measured_memory_within_the_budget():
    """Tiny SwinUNETR, planned 64^3 batch 2: each stage's batch x measured memory stays within the planned one."""
    planned, batch = (64, 64, 64), 2
    model = build_network(TINY_SWIN_UNETR, 1, 3, planned).train()
    schedule = build_schedule(planned, None, batch, 10, "performance", max_batch=64, input_multiple=(32,) * 3,
                              sample_cost=sample_cost(TINY_SWIN_UNETR, 1, 3, mixed_precision=False))
    budget = saved_activation_bytes(model, torch.randn(batch, 1, *planned))
    for stage in schedule.stages[:-1]:
        used = stage.batch_size * saved_activation_bytes(model, torch.randn(1, 1, *stage.patch_size))
        assert used <= budget * 1.03, (stage.patch_size, stage.batch_size)
        assert (stage.batch_size + 1) * used / stage.batch_size > budget * 0.97, "and uses most of it"


# --- MONAI is optional ------------------------------------------------------------------------------------
def test_monai_missing_is_one_clear_message(monkeypatch):
    from nnunet_progressive.nnunet.networks.optional import require_monai

    monkeypatch.setitem(sys.modules, "monai", None)  # import monai -> ImportError
    hint = r"nnUNetTrainer_UNETR needs MONAI.*nnunet-progressive\[transformers\]"
    with pytest.raises(ProgressiveConfigError, match=hint):
        require_monai("nnUNetTrainer_UNETR")
    with pytest.raises(ProgressiveConfigError, match="needs MONAI"):
        build_network(TINY_UNETR, 1, 2, (32, 32, 32))


def test_trainer_module_imports_without_monai():
    code = ("import sys; sys.modules['monai'] = None\n"
            "from nnunet_progressive.nnunet.compat import install_in_this_process; install_in_this_process()\n"
            "import nnunet_progressive_trainers.nnprog_architectures as m\n"
            "print(m.nnUNetTrainer_UNETR_PGPS_Efficiency.__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "nnUNetTrainer_UNETR_PGPS_Efficiency" in result.stdout


def test_architecture_trainers_resolve_hooks_in_the_stated_order():
    import nnunet_progressive_trainers.nnprog_architectures as trainers
    from nnunet_progressive.nnunet.hooks.architectures import NetworkInputMixin, RecipeMixin
    from nnunet_progressive.nnunet.hooks.pgps import ProgressivePatchMixin
    from nnunet_progressive.nnunet.hooks.transfer import FineTuningMixin

    names = [n for n in dir(trainers) if n.startswith("nnUNet") and isinstance(getattr(trainers, n), type)
             and issubclass(getattr(trainers, n), NetworkInputMixin)]
    assert len(names) >= 3 * 16
    for name in names:
        trainer = getattr(trainers, name)
        assert trainer.network_patch_rule.__func__ is NetworkInputMixin.network_patch_rule.__func__, name
        mro = trainer.__mro__
        assert mro.index(NetworkInputMixin) < min(i for i, c in enumerate(mro) if c.__module__.startswith("nnunetv2"))
        # PGPS's optimiser hook hands on to the next class unless NNPROG_OPTIMIZER=lamb: the first other owner decides
        owners = [c for c in mro if "configure_optimizers" in vars(c) and c is not ProgressivePatchMixin]
        if issubclass(trainer, RecipeMixin) and not issubclass(trainer, FineTuningMixin):
            assert owners[0] is RecipeMixin, name
        elif issubclass(trainer, RecipeMixin):  # fine-tuning's groups and phases on the recipe's optimiser
            assert owners[0] is FineTuningMixin, name
            assert mro.index(FineTuningMixin) < mro.index(RecipeMixin), name


@pytest.mark.parametrize(("trainer", "planned", "stage"), [
    ("nnUNetTrainer_UNETR_PGPS_Efficiency", (96, 96, 96), (32, 16, 16)),
    ("nnUNetTrainer_SwinUNETR_PGPS_Performance", (128, 128, 128), (64, 32, 32)),
])
def test_published_size_networks_build_from_the_trainer_and_run_a_stage(trainer, planned, stage):
    """UNETR-B and SwinUNETR-48 as the trainers build them (the end-to-end tests train the tiny versions)."""
    import nnunet_progressive_trainers.nnprog_architectures as trainers

    class Configuration:
        patch_size = planned

    network = getattr(trainers, trainer).build_network_architecture(None, Configuration(), 1, 3, False)
    assert sum(p.numel() for p in network.parameters()) > 50e6
    with torch.no_grad():
        assert network(torch.randn(1, 1, *stage)).shape == (1, 3, *stage)


def test_every_primus_trainer_budgets_by_its_own_size():
    import nnunet_progressive_trainers.nnprog_architectures as trainers
    from nnunet_progressive.architectures.specs import PRIMUS_B, PRIMUS_L, PRIMUS_M, PRIMUS_S

    assert primus_memory_spec("nnUNet_Primus_S_Trainer") is PRIMUS_S
    assert primus_memory_spec("nnUNet_PrimusV2B_Trainer") is PRIMUS_B
    assert primus_memory_spec("nnUNet_PrimusV3M_Trainer") is PRIMUS_M
    assert primus_memory_spec("nnUNet_Primus_L_Trainer") is PRIMUS_L
    with pytest.raises(ValueError, match="not one of nnU-Net's Primus trainers"):
        primus_memory_spec("nnUNet_Primus_XL_Trainer")
    assert trainers.nnUNetTrainer_TinyPrimus_PGPS_Performance.memory_spec is TINY_PRIMUS
    for base in trainers.PRIMUS_TRAINERS:
        assert getattr(trainers, f"{base.__name__}_PGPS_Performance").memory_spec is primus_memory_spec(base.__name__)
