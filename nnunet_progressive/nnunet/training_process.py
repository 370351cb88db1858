"""The training process itself: its data-augmentation workers die with it, and its errors read as messages.

nnU-Net's ``NonDetMultiThreadedAugmenter`` forks worker processes that are not told when the training process is
killed (``kill -9``, an out-of-memory kill, a cluster's time limit): they live on, holding memory and CPU.
:func:`install` registers an ``os.register_at_fork`` handler once in the training process: every child forked
from its main thread asks the kernel to send it SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``, Linux),
and kills itself at once if the parent died before that request took effect. This covers every loader this
package or nnU-Net builds, without touching their code. Children forked from other threads are left alone: the
kernel ties the signal to the forking THREAD, which may end long before the process.

It also makes an :class:`~nnunet_progressive.core.errors.NnprogError` that ends ``nnUNetv2_train`` print as one
line on stderr (``nnUNetv2_train: error: ...``), not as a traceback; every other exception keeps Python's report.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import weakref

PR_SET_PDEATHSIG = 1  # linux/prctl.h

_installed = False
_fork = {"parent": 0, "from_main_thread": False}
_error_callbacks: list = []


def set_parent_death_signal(signal_number: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``signal_number`` to this process when its parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal_number), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _before_fork() -> None:
    _fork["parent"] = os.getpid()
    _fork["from_main_thread"] = threading.current_thread() is threading.main_thread()


def _after_fork_in_child() -> None:
    if not _fork["from_main_thread"]:
        return
    if set_parent_death_signal(signal.SIGKILL) and os.getppid() != _fork["parent"]:
        os.kill(os.getpid(), signal.SIGKILL)  # the parent died between fork and prctl: follow it


def on_error(callback) -> None:
    """Call ``callback(error)`` when an exception (not Ctrl-C or an exit) ends this process, before it is
    reported: trainers remove what a failed start created. Callbacks that fail are skipped. A bound method is
    held weakly (a trainer that is gone needs no clean-up)."""
    _error_callbacks.append(weakref.WeakMethod(callback) if hasattr(callback, "__self__") else lambda: callback)


def _report_package_errors(kind, error, traceback) -> None:
    from nnunet_progressive.core.errors import NnprogError

    if isinstance(error, Exception):
        for reference in _error_callbacks:
            callback = reference()
            if callback is None:
                continue
            try:
                callback(error)
            except Exception:  # noqa: BLE001 - cleaning up must never hide the error being reported
                pass
    if isinstance(error, NnprogError):
        program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
        print(f"{program}: error: {error}", file=sys.stderr, flush=True)
        return
    sys.__excepthook__(kind, error, traceback)


def install() -> None:
    """Register the fork handler and the error report in this process (once; later calls do nothing)."""
    global _installed
    if _installed:
        return
    _installed = True
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _report_package_errors
