"""LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes"), for PGPS
Performance's large batches of small patches (``NNPROG_OPTIMIZER=lamb``; the published 2025 code's ``_Lamb1e3``
uses the ``pytorch_optimizer`` package's LAMB). torch and MONAI ship none, hence this small one.

Per parameter tensor ``w`` with gradient ``g`` at step ``t``:

    m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
    r = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + weight_decay * w
    w = w - lr * phi(||w||) / ||r|| * r,   phi(x) = min(x, clamp); trust ratio 1 where ||w|| or ||r|| is 0
"""
from __future__ import annotations

from collections.abc import Iterable

import torch


class Lamb(torch.optim.Optimizer):
    """Layer-wise adaptive moments (LAMB): Adam's bias-corrected step with decoupled weight decay, scaled per
    tensor by the trust ratio ``||w|| / ||r||`` (``||w||`` clamped at ``clamp``, the paper's phi)."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, clamp: float = 10.0):
        if lr <= 0 or eps <= 0 or weight_decay < 0 or clamp <= 0:
            raise ValueError(f"LAMB needs lr > 0, eps > 0, weight_decay >= 0, clamp > 0; got {lr}, {eps}, "
                             f"{weight_decay}, {clamp}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"LAMB's betas must lie in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "clamp": clamp})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for weight in group["params"]:
                if weight.grad is None:
                    continue
                grad = weight.grad
                if grad.is_sparse:
                    raise RuntimeError("LAMB does not support sparse gradients")
                state = self.state[weight]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(weight, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(weight, memory_format=torch.preserve_format)
                state["step"] += 1
                step = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                update = (exp_avg / (1 - beta1 ** step)) / ((exp_avg_sq / (1 - beta2 ** step)).sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(weight, alpha=group["weight_decay"])
                weight_norm = weight.norm().clamp(max=group["clamp"])
                update_norm = update.norm()
                trust = torch.where((weight_norm > 0) & (update_norm > 0), weight_norm / update_norm,
                                    torch.ones_like(weight_norm))
                weight.sub_(update * (group["lr"] * trust))
        return loss
