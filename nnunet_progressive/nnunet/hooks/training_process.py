"""The training process itself: its data-augmentation workers die with it, and its errors read as messages.

nnU-Net's ``NonDetMultiThreadedAugmenter`` forks worker processes that are not told when the training process is
killed (``kill -9``, an out-of-memory kill, a cluster's time limit): they live on, holding memory and CPU.
:func:`install` registers an ``os.register_at_fork`` handler once in the training process: every child forked
from its main thread asks the kernel to send it SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``, Linux),
and kills itself at once if the parent died before that request took effect. This covers every loader this
package or nnU-Net builds, without touching their code. Children forked from other threads are left alone: the
kernel ties the signal to the forking THREAD, which may end long before the process.

Processes STARTED (not forked) by the training, such as the pool nnU-Net's final validation exports with
(multiprocessing's 'spawn': a fresh interpreter), get the same request: :func:`install` adds one entry to the data
multiprocessing pickles for every spawned child (``spawn.get_preparation_data``), and unpickling that entry, the
first thing a spawned child does, makes the request there (:func:`spawned_child_dies_with_parent`). The resource
tracker that multiprocessing starts beside them ends by itself once the training and its children are gone (its
pipe closes). On systems without ``PR_SET_PDEATHSIG`` (macOS, Windows) nothing changes: children can outlive a
training killed with SIGKILL (Ctrl-C and ordinary ends stop them as nnU-Net does).

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


SPAWN_ENTRY = "nnprog_dies_with_parent"  # the key added to multiprocessing's preparation data

_installed = False
_fork = {"parent": 0, "from_main_thread": False}
_error_callbacks: list = []
_prctl: list = []  # libc's prctl, looked up once (before any fork: a child must not run the dynamic loader)


def _libc_prctl():
    if not _prctl:
        try:
            _prctl.append(ctypes.CDLL(None, use_errno=True).prctl)
        except (OSError, AttributeError):
            _prctl.append(None)
    return _prctl[0]


def parent_death_signal_supported() -> bool:
    """True where :func:`set_parent_death_signal` can work (Linux with libc's prctl); looks prctl up, sets nothing."""
    return sys.platform.startswith("linux") and _libc_prctl() is not None


def set_parent_death_signal(signal_number: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``signal_number`` to this process when its parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    prctl = _libc_prctl()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, int(signal_number), 0, 0, 0) == 0


def die_with_parent(parent: int) -> None:
    """In a new child of ``parent``: SIGKILL when the parent dies, and at once if it has died already."""
    if set_parent_death_signal(signal.SIGKILL) and os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def spawned_child_dies_with_parent(parent: int, from_main_thread: bool) -> None:
    """Run in a spawned child while it unpickles its preparation data (see the module's text)."""
    if from_main_thread and "--multiprocessing-fork" in sys.argv:  # spawn's children only, not forkserver's
        die_with_parent(parent)


class _SpawnedChildDiesWithParent:
    """Pickled into a spawned child's preparation data; unpickling it there calls
    :func:`spawned_child_dies_with_parent` with the parent's pid and whether its main thread started the child."""

    def __reduce__(self):
        return (spawned_child_dies_with_parent,
                (os.getpid(), threading.current_thread() is threading.main_thread()))


def _install_spawn_hook() -> None:
    import multiprocessing.spawn as spawn

    original = spawn.get_preparation_data

    def get_preparation_data(name):
        data = original(name)
        data[SPAWN_ENTRY] = _SpawnedChildDiesWithParent()  # prepare() ignores keys it does not know
        return data

    spawn.get_preparation_data = get_preparation_data


def _before_fork() -> None:
    _fork["parent"] = os.getpid()
    _fork["from_main_thread"] = threading.current_thread() is threading.main_thread()


def _after_fork_in_child() -> None:
    if _fork["from_main_thread"]:
        die_with_parent(_fork["parent"])  # also if the parent died between fork and prctl


def on_error(callback) -> None:
    """Call ``callback(error)`` when an exception (not Ctrl-C or an exit) ends this process, before it is
    reported: trainers remove what a failed start created. Callbacks that fail are skipped. A bound method is
    held weakly (a trainer that is gone needs no clean-up). Only this process runs it: a child forked from it
    (an augmentation worker) inherits the list but never cleans up the training's folders."""
    reference = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else (lambda: callback)
    _error_callbacks.append((os.getpid(), reference))


WORKER_DIED = "background workers are no longer alive"  # batchgenerators' augmenters, when a worker is gone
_reported_worker_death: list[bool] = []


def _report_package_errors(kind, error, traceback) -> None:
    """The package's errors, Ctrl-C and a dead augmentation worker as one line on stderr; others as Python does."""
    from nnunet_progressive.core.errors import NnprogError

    if isinstance(error, Exception):
        for owner, reference in _error_callbacks:
            callback = reference() if owner == os.getpid() else None
            if callback is None:
                continue
            try:
                callback(error)
            except Exception:  # noqa: BLE001 - cleaning up must never hide the error being reported
                pass
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    if isinstance(error, NnprogError):
        print(f"{program}: error: {error}", file=sys.stderr, flush=True)
        return
    resumable = program == "nnUNetv2_train" and "--val" not in sys.argv
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C: the interpreter still ends with SIGINT's exit status
        print(f"{program}: interrupted" + ("; continue the run from its last checkpoint with the same command and "
                                           "--c" if resumable else ""), file=sys.stderr, flush=True)
        return
    if isinstance(error, RuntimeError) and WORKER_DIED in str(error):  # batchgenerators' augmenter
        if not _reported_worker_death:  # its result threads and the main thread may all raise it
            _reported_worker_death.append(True)
            print(f"{program}: error: a data-augmentation worker of this process died (killed, or out of memory; "
                  f"its own message, if any, is above)" + ("; the last checkpoint is intact: continue with the same "
                                                          "command and --c" if resumable else ""),
                  file=sys.stderr, flush=True)
        return
    sys.__excepthook__(kind, error, traceback)


def _report_thread_errors(arguments) -> None:
    """A dead augmentation worker seen by a thread of batchgenerators' augmenter: the one line above."""
    if isinstance(arguments.exc_value, RuntimeError) and WORKER_DIED in str(arguments.exc_value):
        _report_package_errors(arguments.exc_type, arguments.exc_value, arguments.exc_traceback)
        return
    threading.__excepthook__(arguments)


def install() -> None:
    """Register the fork and spawn hooks and the error report in this process (once; later calls do nothing)."""
    global _installed
    if _installed:
        return
    _installed = True
    if parent_death_signal_supported():
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        _install_spawn_hook()
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _report_package_errors
    if threading.excepthook is threading.__excepthook__:
        threading.excepthook = _report_thread_errors
