"""LAMB (NNPROG_OPTIMIZER=lamb) against steps computed by hand."""
from __future__ import annotations

import math

import pytest
import torch

from nnunet_progressive.nnunet.hooks.lamb import Lamb


def _one_step(weight: list[float], grad: list[float], **options) -> list[float]:
    parameter = torch.nn.Parameter(torch.tensor(weight, dtype=torch.float64))
    optimizer = Lamb([parameter], eps=1e-12, **options)
    parameter.grad = torch.tensor(grad, dtype=torch.float64)
    optimizer.step()
    return parameter.detach().tolist()


def test_first_step_with_weight_decay_by_hand():
    # step 1: bias-corrected m = g = (1, -1), sqrt(v) = |g| = (1, 1), so Adam's direction is (1, -1);
    # plus 0.5 x w = (1.5, 2): r = (2.5, 1.0), |r| = sqrt(7.25); |w| = 5; trust = 5 / sqrt(7.25)
    trust = 5 / math.sqrt(7.25)
    expected = [3 - 0.1 * trust * 2.5, 4 - 0.1 * trust * 1.0]  # (2.53576, 3.81430)
    assert _one_step([3.0, 4.0], [1.0, -1.0], lr=0.1, weight_decay=0.5) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx([2.535762, 3.814305], abs=1e-6)


def test_trust_ratio_clamps_the_weight_norm_and_is_one_for_zero_weights():
    # |w| = 50 is clamped at 10; r = (1, 1) without decay: trust = 10 / sqrt(2)
    step = 0.1 * 10 / math.sqrt(2)
    assert _one_step([30.0, 40.0], [2.0, 3.0], lr=0.1) == pytest.approx([30 - step, 40 - step], abs=1e-9)
    # zero weights: trust ratio 1, so the step is Adam's: lr x sign(g) at step 1
    assert _one_step([0.0, 0.0], [5.0, -0.5], lr=0.1) == pytest.approx([-0.1, 0.1], abs=1e-9)


def test_second_step_uses_bias_corrected_moments():
    parameter = torch.nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))
    optimizer = Lamb([parameter], lr=0.1, eps=1e-12, betas=(0.5, 0.5))
    for _ in range(2):
        parameter.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
        optimizer.step()
    # constant gradient 1: every bias-corrected moment is 1, r = (1, 1), trust = |w| / sqrt(2) at each step
    w = [3.0, 4.0]
    for _ in range(2):
        trust = math.hypot(*w) / math.sqrt(2)
        w = [x - 0.1 * trust for x in w]
    assert parameter.detach().tolist() == pytest.approx(w, abs=1e-9)
    assert optimizer.state[parameter]["step"] == 2


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="lr > 0"):
        Lamb([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    with pytest.raises(ValueError, match="betas"):
        Lamb([torch.nn.Parameter(torch.zeros(1))], betas=(1.0, 0.9))
