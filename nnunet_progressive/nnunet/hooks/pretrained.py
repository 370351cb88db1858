"""``nnUNetv2_train -pretrained_weights FILE``: read once, checked before nnU-Net loads it, kept in the run identity.

nnU-Net 2.8's ``run_training`` builds the trainer, calls its ``initialize()`` and then loads the file itself
(``load_pretrained_weights(trainer.network, path)``); the path never reaches the trainer. So the trainer reads it
from this process's command line exactly once, when it is made (:func:`check_pretrained_argument`, in
``RunLengthMixin.__init__``, before any folder exists; spawned DDP workers get the same argv), and a new run
records it with its size and sha256 in ``nnprog_run.json`` (:func:`describe_pretrained`). Everything after that
reads the run identity: the network fit before nnU-Net's load, the fine-tuning trainers' parameter roles and kept
heads, ``--c`` and ``--val``. (Intercepting nnU-Net's load instead would mean replacing a module function of
``nnunetv2.run.run_training``; the trainer has no hook of its own there.)

nnU-Net's ``load_pretrained_weights`` stops with a traceback on a damaged file, a file without ``network_weights``
or a tensor of another shape; the package's trainers check the file before any folder is made and the network fit
right after ``initialize()`` (:func:`pretrained_shape_problems`), each as one clear error.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from nnunet_progressive.core.errors import ProgressiveConfigError, RunStateError
from nnunet_progressive.core.io import file_sha256
from nnunet_progressive.core.records import PretrainedWeights


def pretrained_weights_argument(argv: list[str] | None = None) -> str | None:
    """The ``-pretrained_weights`` file of this ``nnUNetv2_train`` call (spawned DDP workers get the same argv).

    Only :func:`check_pretrained_argument` calls it (see the module doc)."""
    argv = sys.argv if argv is None else argv
    for index, word in enumerate(argv):
        if word == "-pretrained_weights" and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith("-pretrained_weights="):  # argparse's other spelling, which nnU-Net accepts too
            return word.split("=", 1)[1]
    return None


def load_pretrained_file(path: str | Path) -> dict:
    """The checkpoint ``-pretrained_weights`` names, read as nnU-Net's ``load_pretrained_weights`` will read it
    (memory-mapped where the format allows), or one clear error naming the file and the fix."""
    import zipfile

    path = Path(path)
    fix = ("pass a checkpoint written by nnU-Net (e.g. .../fold_0/checkpoint_final.pth) or by `nnprog transfer "
           "adapt`")
    if not path.is_file():
        raise ProgressiveConfigError(f"-pretrained_weights {path}: no such file; {fix}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # noqa: BLE001 - pickle, zip and torch errors alike: the file is no checkpoint
        reason = " ".join(str(error).split())[:200]
        raise ProgressiveConfigError(f"-pretrained_weights {path} cannot be read as a PyTorch checkpoint "
                                     f"({type(error).__name__}: {reason}): damaged, incomplete or another kind "
                                     f"of file; {fix}") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("network_weights"), dict):
        raise ProgressiveConfigError(f"-pretrained_weights {path} is a PyTorch file without 'network_weights' (the "
                                     f"key nnU-Net loads); {fix} (`nnprog transfer adapt` also maps a bare state "
                                     f"dict)")
    return loaded


def pretrained_shape_problems(network_state: dict, pretrained: dict) -> list[str]:
    """The tensors nnU-Net's ``load_pretrained_weights`` would refuse (it asserts that every parameter but the
    segmentation heads is in the file with the same shape): one line per missing or differing tensor."""
    problems = []
    for name, tensor in network_state.items():
        if ".seg_layers." in name:
            continue
        if name not in pretrained:
            problems.append(f"{name} missing")
        elif tuple(pretrained[name].shape) != tuple(tensor.shape):
            problems.append(f"{name}: file {tuple(pretrained[name].shape)}, network {tuple(tensor.shape)}")
    return problems


def check_pretrained_argument(argv: list[str] | None = None) -> str | None:
    """The ``-pretrained_weights`` file of this call, checked (readable, nnU-Net's format, not with --c: a continued
    run keeps the weights its identity records); the one place the trainers read it from the command line."""
    argv = sys.argv if argv is None else argv
    pretrained = pretrained_weights_argument(argv)
    if pretrained is None:
        return None
    if "--c" in argv:
        raise ProgressiveConfigError(
            f"-pretrained_weights {pretrained} with --c: pre-trained weights are loaded at the start of a run only "
            f"(nnU-Net refuses both), and a continued run keeps the ones its run file (nnprog_run.json) records; drop "
            f"-pretrained_weights to continue the run")
    load_pretrained_file(pretrained)
    return pretrained


def check_network_fits(pretrained: str, network: torch.nn.Module, dataset: str, plans: str,
                       configuration: str) -> None:
    """One clear error when nnU-Net's ``load_pretrained_weights`` would refuse ``pretrained`` for ``network``."""
    weights = load_pretrained_file(pretrained)["network_weights"]
    network = getattr(network, "module", network)  # DDP
    network = getattr(network, "_orig_mod", network)  # torch.compile
    problems = pretrained_shape_problems(network.state_dict(), weights)
    if problems:
        raise ProgressiveConfigError(
            f"-pretrained_weights {pretrained} does not fit the network of {plans} {configuration} "
            f"({len(problems)} tensor(s): {'; '.join(problems[:3])}{' ...' if len(problems) > 3 else ''}); map it "
            f"onto this network with `nnprog transfer adapt {pretrained} -d {dataset} -c {configuration} -p {plans} "
            f"-o OUT.pth` and pass OUT.pth")


def describe_pretrained(path: str | Path) -> PretrainedWeights:
    """What a new run's identity records of its ``-pretrained_weights`` file: absolute path, size, sha256."""
    path = Path(path).resolve()
    return PretrainedWeights(path=str(path), size=path.stat().st_size, sha256=file_sha256(path))


def check_recorded_pretrained(recorded: PretrainedWeights, run_file: str | Path) -> str:
    """The recorded file of a run started again, unchanged (size and sha256), or one clear error with the fix."""
    path = Path(recorded.path)
    fix = (f"restore it, or start a new run (without --c, after removing {Path(run_file).parent}) with the weights "
           f"you want")
    if not path.is_file():
        raise RunStateError(f"{run_file} says the run started from -pretrained_weights {path}, which is gone; {fix}")
    if path.stat().st_size != recorded.size or file_sha256(path) != recorded.sha256:
        raise RunStateError(f"{run_file} says the run started from -pretrained_weights {path} (sha256 "
                            f"{recorded.sha256[:12]}...), but the file there changed since; {fix}")
    return str(path)
