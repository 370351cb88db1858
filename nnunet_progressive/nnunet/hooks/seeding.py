"""NNPROG_SEED: the seed of python's, numpy's and torch's generators in the training process.

nnU-Net seeds nothing but its cross-validation split. With NNPROG_SEED set, the run-state initialisation
(:class:`~nnunet_progressive.nnunet.hooks.run_state.RunLengthMixin`) seeds the training process before nnU-Net builds
the network (so the weight initialisation is the seed's) and again after ``--c`` has loaded a checkpoint, with a
seed derived from (seed, epoch), so a resumed run does not replay the random stream of its first epochs.

What this does NOT make deterministic: nnU-Net's augmentation workers (``NonDetMultiThreadedAugmenter`` with
``seeds=None``) call ``np.random.seed(None)`` and draw their own state, so patch sampling and augmentation differ
between repeats unless ``nnUNet_n_proc_DA=0`` (loading and augmenting in the seeded training process); on a GPU,
nnUNetv2_train sets ``cudnn.benchmark = True`` and ``cudnn.deterministic = False``, so convolution algorithms (and
their rounding) may differ from run to run.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    """The 32-bit seed of a run seeded with ``seed`` at ``epoch`` (0: its start; k: a ``--c`` at epoch k)."""
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got {seed}, {epoch}")
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def seed_generators(seed: int, epoch: int = 0) -> int:
    """Seed python's ``random``, numpy's global generator and torch (CPU and every CUDA device) with
    :func:`epoch_seed`; returns the seed used."""
    value = epoch_seed(seed, epoch)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)  # seeds every CUDA device too
    return value
