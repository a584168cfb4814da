"""Output folders of runs: one policy for every command that writes one (`cardd infer`,
`eval`, `assess`, `demo`).

* No folder given: a new numbered one, `runs/<command>/exp`, `exp2`, ... (never an
  earlier run's).
* A folder given: used if new or empty; one holding files is refused, unless
  `--exist-ok` (the earlier run's outputs are removed first, and only where a run of
  the same command left its marks: a folder cardd did not write is never emptied) or
  `--resume` (the earlier outputs stay, for the command to pick up).
* The resolved options are saved beside the results, in `options.json`.

A folder may be local or a URL (`cardd.core.storage`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardd.core import storage
from cardd.core.errors import CarddUsageError

#: The resolved options of a run, beside its results.
OPTIONS_FILE = "options.json"


def next_run_dir(parent: Path, stem: str = "exp") -> Path:
    """`parent/exp`, else `parent/exp2`, `exp3`, ...: the first that does not exist
    or is empty (an empty folder holds no earlier results)."""
    index = 1
    while True:
        candidate = parent / (stem if index == 1 else f"{stem}{index}")
        if not candidate.exists() or (candidate.is_dir() and not any(candidate.iterdir())):
            return candidate
        index += 1


@dataclass(frozen=True)
class RunKind:
    """What one command's run folders look like.

    command: the command (`runs/<command>/exp...` by default).
    flag: the option that names the folder, for messages (`--out-dir`).
    marks: files only a run of this command leaves: `--exist-ok` empties only a folder
        holding one of them.
    outputs: what `--exist-ok` removes: names or glob patterns of the folder's top-level
        files and sub-folders; nothing else is touched.
    """

    command: str
    flag: str
    marks: frozenset[str]
    outputs: tuple[str, ...]
    parent: Path | None = None  # default: runs/<command>
    stem: str = "exp"
    resumable: bool = False  # whether the command takes --resume (its refusal says so)

    def check(self, out: Path | str | None, exist_ok: bool = False, resume: bool = False) -> None:
        """Refuse a folder that cannot be used, before minutes of model loading.

        Raises:
            CarddUsageError: a file, or an earlier run's folder without `exist_ok` or
                `resume`, or `exist_ok` on a folder no run of this command wrote.
        """
        if resume and exist_ok:
            raise CarddUsageError(
                "--resume keeps an earlier run's outputs, --exist-ok replaces them"
            )
        if out is None:
            if resume:
                raise CarddUsageError(f"--resume needs the {self.flag} of the run to finish")
            return
        folder = storage.Folder(out)
        if folder.is_file():
            raise CarddUsageError(f"{self.flag} {out} is a file")
        if not folder.is_empty():
            if not (exist_ok or resume):
                again = "pass --resume to finish that run, " if self.resumable else ""
                raise CarddUsageError(
                    f"{out} is not empty: {again}pass --exist-ok to replace its outputs, or "
                    f"another {self.flag}"
                )
            if exist_ok and not (self.marks & folder.files()):
                marks = " or ".join(sorted(self.marks))
                raise CarddUsageError(
                    f"--exist-ok: {out} holds files but no run of `cardd {self.command}` (no "
                    f"{marks}); they are not cardd's to replace: choose another {self.flag}"
                )
        folder.probe()

    def open(self, out: Path | str | None, exist_ok: bool = False, resume: bool = False,
             also: tuple[str, ...] = ()) -> storage.Folder:  # fmt: skip
        """The run's folder, checked (`check`), made, and with `exist_ok` emptied of an
        earlier run's outputs (and of `also`: names this run will write); other files
        are left alone."""
        from fnmatch import fnmatchcase

        self.check(out, exist_ok, resume)
        parent = self.parent if self.parent is not None else Path("runs") / self.command
        folder = storage.Folder(out if out is not None else next_run_dir(parent, self.stem))
        if exist_ok and not folder.is_empty():
            top = {name.split("/", 1)[0] for name in folder.files()}
            patterns = (*self.outputs, *also)
            for name in sorted(top):
                if any(fnmatchcase(name, pattern) for pattern in patterns):
                    folder.remove(name)
        folder.make()
        return folder


def options_document(opts: Any) -> dict:
    """An options dataclass as JSON-ready data: paths as text, tuples as lists."""

    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    return {f.name: plain(getattr(opts, f.name)) for f in dataclasses.fields(opts)}


def save_options(folder: storage.Folder | Path, opts: Any, **resolved) -> None:
    """Write `options.json`: the run's options as given, and what they resolved to
    (`resolved`: the model file, the device...), so a run says how it was made."""
    text = json.dumps({**options_document(opts), **resolved}, indent=1, default=str)
    if isinstance(folder, storage.Folder):
        folder.write_text(OPTIONS_FILE, text)
    else:
        from cardd.core.files import write_file

        write_file(Path(folder) / OPTIONS_FILE, text, root=Path(folder))
