"""Errors that reach the user as one clear line, never a traceback."""


class UserError(Exception):
    """Bad input from the user: a scenario file, a flag, a run directory.

    The message names the file, field or flag and what was expected; the CLI
    prints it on one line and exits non-zero.
    """
