"""The one error family of nnunet-progressive.

Every error the package raises on purpose is a :class:`NnprogError`; its message names what is wrong, where
(file, knob, key, value) and the fix. Two kinds:

- user errors (a setting, file, argument or input that cannot work): :class:`ProgressiveConfigError` (and
  :class:`DatasetExistsError`), and :class:`RunStateError` for a run that cannot be continued exactly; ``nnprog``
  exits with code 2;
- failures of nnU-Net's commands (``nnUNetv2_train``, ``_predict``, ``_plan_and_preprocess``) that the package
  runs: :class:`NnunetCommandError` (:class:`NnunetCommandTimeout`); the message names the command, its exit
  code and the end of its output or its log; ``nnprog`` exits with code 1.

``nnprog`` (``cli/main.py``, the one place) prints every one as one line ``nnprog <command>: error: <message>`` on
stderr and exits with the error's :attr:`NnprogError.exit_code`; the trainers let it end ``nnUNetv2_train`` with
that message (never a bare traceback). The classes also derive from the builtin error that code outside the
package would catch (ValueError, FileExistsError, RuntimeError, TimeoutError).
"""


class NnprogError(Exception):
    """Base of every deliberate error; the message says what, where and how to fix it."""

    exit_code = 2  # of `nnprog` when this error ends it


class ProgressiveConfigError(NnprogError, ValueError):
    """A setting, file or input that cannot work (a user error)."""


class RunStateError(NnprogError):
    """A run's stored state (settings, checkpoint, sidecar) cannot be used to continue it exactly."""


class DatasetExistsError(ProgressiveConfigError, FileExistsError):
    """A dataset folder (or its 3-digit id) is already taken in nnUNet_raw."""


class NnunetCommandError(NnprogError, RuntimeError):
    """A command of nnU-Net that the package ran failed (not a user error: its output or log says why)."""

    exit_code = 1


class NnunetCommandTimeout(NnunetCommandError, TimeoutError):
    """A command of nnU-Net ran longer than it was given."""
