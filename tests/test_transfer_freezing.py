"""Freezing as the fine-tuning trainers do it (zero gradients, rate 0): nothing frozen moves, with nnU-Net's SGD,
with AdamW, under torch.compile and under DDP (two CPU processes, gloo), and DDP's reducer never complains."""
from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
from dynamic_network_architectures.architectures.unet import PlainConvUNet

from nnunet_progressive.nnunet.hooks.transfer import register_freezing_hooks, split_by_role
from nnunet_progressive.transfer.finetune import ENCODER, ROLES
from nnunet_progressive.transfer.mapping import frozen_roles


def _network() -> torch.nn.Module:
    torch.manual_seed(0)
    return PlainConvUNet(2, 3, (4, 8, 16), torch.nn.Conv3d, 3, (1, 2, 2), (1, 1, 1), 3, (1, 1), True,
                         torch.nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, None, None, torch.nn.LeakyReLU,
                         {"inplace": True}, deep_supervision=True)


def _train(network: torch.nn.Module, optimizer_class=torch.optim.SGD, steps: int = 3, frozen=(ENCODER,),
           wrapped: torch.nn.Module | None = None) -> tuple[dict, dict, torch.optim.Optimizer]:
    """A few nnU-Net-like steps (clip at 12) with ``frozen`` roles; returns parameters before and after."""
    model = wrapped if wrapped is not None else network
    options = {"lr": 1e-2, "weight_decay": 3e-5}
    if optimizer_class is torch.optim.SGD:
        options.update(momentum=0.99, nesterov=True)
    optimizer = optimizer_class(model.parameters(), **options)
    roles = frozen_roles([n for n, _ in model.named_parameters()], None)
    split_by_role(optimizer, model, roles)
    assert [g["nnprog_role"] for g in optimizer.param_groups] == [r for r in ROLES if r in set(roles.values())]
    frozen = frozenset(frozen)
    for group in optimizer.param_groups:
        group["lr"] = 0.0 if group["nnprog_role"] in frozen else 1e-2
    register_freezing_hooks(model, roles, lambda: frozen)
    before = {n: p.detach().clone() for n, p in network.named_parameters()}
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        data = torch.randn(2, 2, 8, 16, 16, generator=generator)
        target = torch.randint(0, 3, (2, 8, 16, 16), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        outputs = model(data)  # deep supervision, as nnU-Net trains: every head is used
        loss = torch.nn.functional.cross_entropy(outputs[0], target) + sum(o.square().mean() for o in outputs[1:])
        loss.backward()
        for name, parameter in model.named_parameters():
            if roles[name] in frozen:
                assert parameter.grad is not None and not parameter.grad.any(), name
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12)
        optimizer.step()
    after = {n: p.detach().clone() for n, p in network.named_parameters()}
    return before, after, optimizer


def _assert_only_unfrozen_moved(before: dict, after: dict) -> None:
    roles = frozen_roles(list(before), None)
    for name in before:
        moved = not torch.equal(before[name], after[name])
        assert moved == (roles[name] != ENCODER), f"{name} ({roles[name]}) moved={moved}"


@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, torch.optim.AdamW])
def test_frozen_encoder_does_not_move(optimizer_class):
    before, after, _ = _train(_network(), optimizer_class)
    _assert_only_unfrozen_moved(before, after)


def test_frozen_encoder_does_not_move_under_torch_compile():
    network = _network()
    compiled = torch.compile(network, backend="aot_eager")
    before, after, _ = _train(network, wrapped=compiled)
    _assert_only_unfrozen_moved(before, after)


def test_unfreezing_trains_everything():
    network = _network()
    before, after, _ = _train(network, frozen=())
    assert all(not torch.equal(before[n], after[n]) for n in before)


def _ddp_worker(rank: int, world: int, store: str, results) -> None:
    # a file store, not a TCP port: a port probed free can be taken before rank 0 binds it (parallel tests)
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        network = _network()
        ddp = torch.nn.parallel.DistributedDataParallel(network)  # as nnU-Net: no find_unused_parameters
        torch.manual_seed(rank)  # every rank sees other data
        before, after, _ = _train(network, wrapped=ddp, steps=4)
        _assert_only_unfrozen_moved({k.removeprefix("module."): v for k, v in before.items()},
                                    {k.removeprefix("module."): v for k, v in after.items()})
        results[rank] = {n: float(p.sum()) for n, p in network.named_parameters()}
    finally:
        torch.distributed.destroy_process_group()


def test_frozen_encoder_under_ddp_keeps_ranks_in_step(tmp_path):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_ddp_worker, args=(2, str(tmp_path / "ddp_store"), results), nprocs=2, join=True)
        assert results[0] == pytest.approx(results[1])
