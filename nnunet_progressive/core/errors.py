"""The one error family of nnunet-progressive.

Every error the package raises on purpose is a :class:`NnprogError`; its message names what is wrong, where
(file, knob, key, value) and the fix. The ``nnprog`` command line prints it as one line on stderr and exits
with code 2; the trainers let it end ``nnUNetv2_train`` with that message (never a bare traceback).
"""


class NnprogError(Exception):
    """Base of every deliberate error; the message says what, where and how to fix it."""


class ProgressiveConfigError(NnprogError, ValueError):
    """A setting, file or input that cannot work (a user error)."""


class RunStateError(NnprogError):
    """A run's stored state (settings, checkpoint, sidecar) cannot be used to continue it exactly."""
