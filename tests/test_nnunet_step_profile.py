"""The profile a run makes of itself leaves the run's start untouched (hooks/step_profile.py), without nnU-Net."""
from types import SimpleNamespace

import numpy as np
import torch

from nnunet_progressive.nnunet.hooks.step_profile import device_name, trainer_state_kept


def _trainer():
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.99, nesterov=True)
    return SimpleNamespace(network=network, optimizer=optimizer, grad_scaler=None, _iterations_done=3,
                           _cases_seen={"a"})


def _step(trainer):
    trainer.optimizer.zero_grad()
    trainer.network(torch.randn(16, 4)).pow(2).mean().backward()
    trainer.optimizer.step()
    trainer._iterations_done += 1
    trainer._cases_seen.add("b")


def test_weights_optimizer_generators_and_counters_come_back():
    trainer = _trainer()
    _step(trainer)  # momentum buffers exist before the profile
    before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    momentum = [trainer.optimizer.state[p]["momentum_buffer"].clone() for p in trainer.network.parameters()]
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    with trainer_state_kept(trainer):
        for _ in range(3):
            _step(trainer)
        np.random.rand(5)
        assert not torch.equal(trainer.network.state_dict()["0.weight"], before["0.weight"])
    after = trainer.network.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert all(torch.equal(trainer.optimizer.state[p]["momentum_buffer"], m)
               for p, m in zip(trainer.network.parameters(), momentum))
    assert torch.equal(torch.get_rng_state(), torch_state) and np.random.get_state()[1].tolist() == \
        numpy_state[1].tolist()
    assert trainer._iterations_done == 4 and trainer._cases_seen == {"a", "b"}
    assert all(p.grad is None for p in trainer.network.parameters())


def test_device_name_says_which_cpu():
    name = device_name(torch.device("cpu"))
    assert "cores" in name and len(name) > len(" cores")
