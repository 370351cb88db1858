"""Helpers around nnU-Net's data augmenters: shutting them down and mixing patch sizes."""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np


def shutdown_augmenter(augmenter) -> None:
    """Stop the worker processes of an nnU-Net/batchgenerators augmenter (no-op for single-threaded)."""
    finish = getattr(augmenter, "_finish", None)
    if finish is None:
        return
    with contextlib.redirect_stdout(io.StringIO()):
        finish()


def inner_data_loader(augmenter):
    """The data loader an augmenter draws from (``generator`` for multi-process, ``data_loader`` else)."""
    for attribute in ("generator", "data_loader"):
        loader = getattr(augmenter, attribute, None)
        if loader is not None:
            return loader
    raise TypeError(f"cannot find the data loader inside {type(augmenter).__name__}")


def replace_data_loader(augmenter, loader) -> None:
    """Point an augmenter at ``loader``; multi-process augmenters fork fresh workers that hold it."""
    if hasattr(augmenter, "generator"):
        shutdown_augmenter(augmenter)
        augmenter.generator = loader
        augmenter.restart()
    else:
        augmenter.data_loader = loader


class RandomPatchSizeLoader:
    """Yields each batch from one of several nnU-Net data loaders drawn uniformly (RPSS ablation).

    Every inner loader has its own patch size, initial (rotation) patch size, batch size and
    transforms, as nnU-Net built them. Draws use numpy's global RNG, which the augmenter seeds per worker.
    """

    def __init__(self, loaders: Sequence):
        if len(loaders) == 0:
            raise ValueError("RandomPatchSizeLoader needs at least one data loader")
        self.loaders = list(loaders)

    def set_thread_id(self, thread_id: int) -> None:
        for loader in self.loaders:
            loader.set_thread_id(thread_id)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.loaders[np.random.randint(len(self.loaders))])
