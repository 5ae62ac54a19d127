"""Errors caused by what the user gave us; the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A bad input, option or file: the message says what is wrong and what to do."""


class CheckpointMismatchError(UserError):
    """Weights on disk do not fit the model their config describes."""
