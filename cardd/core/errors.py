"""Errors a user can fix. The CLI prints them as one line, never as a traceback."""

from __future__ import annotations


class CarddError(Exception):
    """A problem with the user's input or environment; exit code 1."""

    exit_code = 1


class CarddUsageError(CarddError):
    """A command line that cannot be carried out as given; exit code 2."""

    exit_code = 2


def one_line(error: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, for an error cardd did not foresee."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
