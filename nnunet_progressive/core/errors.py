"""Exceptions with messages that name the problem and the fix."""


class ProgressiveConfigError(ValueError):
    """A setting or input that cannot work; the message says what was expected and how to fix it."""
