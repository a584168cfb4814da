"""Every `cardd ...` line in the README and the docs parses against the command line.

A renamed option, a removed command or a misspelt flag in a guide fails here, not in
a user's terminal. Lines are taken from the code blocks; a value Click checks against
the disk (a file that must exist) is the reader's own, and passes.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest

from cardd.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PREFIXES = ("cardd ", ".venv/bin/cardd ", ".venv-onnx/bin/cardd ", "$ cardd ")


def command_lines(page: Path) -> list[tuple[int, str]]:
    """(line number, command) for each `cardd` command in the page's code blocks, with
    backslash continuations joined."""
    found, fence, pending, start = [], False, "", 0
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if not fence:
            continue
        text = line.strip()
        if pending:
            pending += " " + text
        elif text.startswith(PREFIXES):
            pending, start = text, number
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        found.append((start, pending))
        pending = ""
    return found


def words_of(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    while words and words[0] != "cardd" and not words[0].endswith("/cardd"):
        words.pop(0)  # "$"
    return words[1:]


def parse(words: list[str]) -> None:
    """Parse as `cardd` would, down to the command, without running anything."""
    command: click.Command = cli
    parent, name = None, "cardd"
    while True:
        context = command.make_context(name, list(words), parent=parent)
        if not isinstance(command, click.Group):
            return
        rest = [*getattr(context, "_protected_args", []), *context.args]
        if not rest:
            return
        name, sub, words = command.resolve_command(context, rest)
        if sub is None:
            raise click.UsageError(f"no command {rest[0]!r}")
        command, parent = sub, context


def _all_lines():
    for page in PAGES:
        for number, command in command_lines(page):
            yield pytest.param(command, id=f"{page.relative_to(ROOT)}:{number}")


@pytest.mark.parametrize("command", list(_all_lines()))
def test_the_docs_command_parses(command):
    try:
        parse(words_of(command))
    except click.exceptions.Exit:
        pass  # --help, --version
    except FileNotFoundError:
        pass  # a path Click checks on the disk: the reader's own
    except click.BadParameter as error:
        if "does not exist" not in error.format_message():
            raise AssertionError(f"{command}: {error.format_message()}") from None
    except click.ClickException as error:
        raise AssertionError(f"{command}: {error.format_message()}") from None


def test_the_check_sees_a_wrong_option_and_a_wrong_command(tmp_path):
    """The control: what the docs test must catch, it catches."""
    with pytest.raises(click.NoSuchOption):
        parse(["infer", "photo.jpg", "--score-thrr", "0.5"])
    with pytest.raises(click.UsageError):
        parse(["infr", "photo.jpg"])
    parse(["convert", "yolo", str(tmp_path), "out"])  # a group's command with its arguments
    assert len(list(_all_lines())) > 50  # the pages have commands to check
