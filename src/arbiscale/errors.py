"""Errors caused by what the user gave us; the CLI prints them as one line, without a traceback.

Messages name the library's parameters in backticks (`max_memory`); the command line shows each as the
flag that sets it (`cli.flags.as_flags`: --max-memory), so one message serves both."""

import warnings


class UserError(Exception):
    """A bad input, option or file: the message says what is wrong and what to do."""


class CheckpointMismatchError(UserError):
    """Weights on disk do not fit the model their config describes."""


class UserNotice(UserWarning):
    """Something the person running the command should know, though the work goes on (e.g. a folder
    that could not be read was skipped); the CLI prints it as one `warning:` line."""


def notify(message: str) -> None:
    """Warn the user with a `UserNotice` (one line on the command line, a warning in Python)."""
    warnings.warn(message, UserNotice, stacklevel=2)
