"""Errors a user can fix. The CLI prints them as one line, never as a traceback."""

from __future__ import annotations


class CarddError(Exception):
    """A problem with the user's input or environment; exit code 1."""

    exit_code = 1


class CarddUsageError(CarddError):
    """A command line that cannot be carried out as given; exit code 2."""

    exit_code = 2
