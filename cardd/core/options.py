"""Command-line options, each declared once.

An `Option` says everything about one option: its flag, what it takes, its default
and its help. From it come the Click option of every command that takes it
(`Option.click`), the field of an options dataclass (`Option.field`: the
dataclass's default is the option's), and the option's words on another
process's command line (`Option.argv`: what `cardd train --nproc` hands each
torchrun worker). So a default, a range or a help text cannot disagree between
the commands, the library and the workers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardd.core.errors import CarddUsageError


def _location_type():
    import click

    class LocationType(click.ParamType):
        """A local path (a `Path`; checked like `click.Path` with `exists`) or a URL (kept
        as text, `cardd.core.storage` reads it)."""

        name = "path|url"

        def __init__(self, exists: bool = False) -> None:
            self.path = click.Path(path_type=Path, exists=exists, dir_okay=not exists)

        def convert(self, value, param, ctx):
            from cardd.core.storage import is_url, local_path

            if isinstance(value, str) and is_url(value):
                local = local_path(value)
                return value if local is None else self.path.convert(str(local), param, ctx)
            return self.path.convert(value, param, ctx)

    return LocationType


def _size_type():
    import click

    class SizeType(click.ParamType):
        """`WIDTHxHEIGHT`, each 64..8192 pixels, as (width, height)."""

        name = "WxH"

        def convert(self, value, param, ctx):
            if isinstance(value, tuple):
                return value
            width, sep, height = str(value).lower().partition("x")
            if not (sep and width.isdigit() and height.isdigit()
                    and 64 <= int(width) <= 8192 and 64 <= int(height) <= 8192):  # fmt: skip
                self.fail("expected WIDTHxHEIGHT, each 64..8192, e.g. 1024x768", param, ctx)
            return int(width), int(height)

    return SizeType()


def Location(exists: bool = False):  # noqa: N802 - a Click type, named as one
    """The Click type of a local path or a URL (`exists`: an existing file, or a URL)."""
    return _location_type()(exists)


@dataclass(frozen=True)
class Option:
    """One command-line option.

    kind: `text`, `path`, `file` (an existing one), `folder` (an existing one), `size`
    (WIDTHxHEIGHT, a (width, height) tuple),
    `location` (a path or a URL), `file_location` (an existing file or a URL), `int`,
    `float`, `flag` (with default True: the flag turns it off, as `--no-vis`),
    `choice` (of `choices`), or `pairs` (repeatable KEY=VALUE, a dict in the dataclass).
    """

    flag: str
    help: str
    kind: str = "text"
    default: Any = None
    low: float | None = None  # ranges, for int and float
    high: float | None = None
    choices: tuple[str, ...] = ()
    flag_value: str | None = None  # a value option that may also stand alone (--resume)
    metavar: str | None = None
    dest: str | None = None  # the parameter's name when not the flag's (--from: from_model)
    required: bool = False
    envvar: str | None = None  # an environment variable that gives the value when not passed

    @property
    def name(self) -> str:
        return self.dest or self.flag.lstrip("-").replace("-", "_")

    def but(self, **changes) -> Option:
        """This option with some settings changed (another help text or default for one
        command), still one declaration where it differs."""
        return dataclasses.replace(self, **changes)

    def click(self, **overrides):
        """The Click decorator of this option (`overrides`: e.g. another help text)."""
        import click

        bounded = self.low is not None or self.high is not None
        kinds = {
            "path": click.Path(path_type=Path),
            "file": click.Path(path_type=Path, exists=True, dir_okay=False),
            "int": click.IntRange(min=self.low, max=self.high) if bounded else click.INT,
            "float": click.FloatRange(min=self.low, max=self.high) if bounded else click.FLOAT,
            "choice": click.Choice(list(self.choices)),
            "folder": click.Path(path_type=Path, exists=True, file_okay=False),
            "location": Location(),
            "file_location": Location(exists=True),
            "size": _size_type(),
        }
        settings: dict[str, Any] = {"help": self.help}
        if self.required:
            settings["required"] = True
        if self.envvar:
            settings["envvar"] = self.envvar
        if self.kind == "flag":
            settings["is_flag"] = True
            if self.default is True:  # --no-vis: passing it turns the setting off
                settings.update(flag_value=False, default=True)
        elif self.kind == "pairs":
            settings.update(multiple=True, metavar=self.metavar or "KEY=VALUE")
        else:
            if self.kind in kinds:
                settings["type"] = kinds[self.kind]
            if self.default is not None:
                settings.update(default=self.default, show_default=True)
            if self.flag_value is not None:
                settings.update(is_flag=False, flag_value=self.flag_value, default=self.default)
            if self.metavar:
                settings["metavar"] = self.metavar
        settings.update(overrides)
        names = [self.flag] if self.dest is None else [self.flag, self.dest]
        return click.option(*names, **settings)

    def field(self):
        """A dataclass field holding this option's value, with the option's default."""
        if self.kind == "pairs":
            return dataclasses.field(default_factory=dict, metadata={"option": self})
        # a required option's field defaults to None: Click asks for it on the command line
        default = bool(self.default) if self.kind == "flag" else self.default
        return dataclasses.field(default=default, metadata={"option": self})

    def argv(self, value: Any) -> list[str]:
        """This option with `value` as words of a command line (nothing for the default)."""
        if self.kind == "flag":
            return [self.flag] if value != bool(self.default) else []
        if self.kind == "pairs":
            return [word for k, v in value.items() for word in (self.flag, f"{k}={v!r}")]
        if value is None or value == self.default:
            return []
        return [self.flag, str(value)]


def options_of(cls) -> list[Option]:
    """The options of an options dataclass, in field order."""
    return [f.metadata["option"] for f in dataclasses.fields(cls) if "option" in f.metadata]


def decorate(cls):
    """A decorator adding every option of the dataclass `cls` to a Click command."""
    return apply(*options_of(cls))


def apply(*declared: Option):
    """A decorator adding these options to a Click command, in this order (for commands
    whose library function takes them as keyword arguments of the same names)."""

    def add(command):
        for option in reversed(declared):
            command = option.click()(command)
        return command

    return add


# Options that several commands take.
DEVICE = Option(
    "--device", "auto (a GPU when PyTorch sees one), cpu, cuda or cuda:N.", default="auto"
)
DATA_ROOT = Option("--data-root", "A folder in the CarDD layout (holding annotations/).", "path")
DATA = Option(
    "--data",
    "A dataset description file (YAML: per split a COCO annotation file and an image "
    "folder; `cardd init-data` writes one), instead of --data-root.",
    "path",
)
TRUST = Option(
    "--trust-checkpoint",
    "Unpickle this file in full (it may run code): only for a file whose maker you "
    "trust. Files your own `cardd train` wrote and weight files never need it.",
    "flag",
)
#: Trust is per file: --trust-checkpoint never extends to the parts model.
TRUST_PARTS = Option(
    "--trust-parts-model",
    "Unpickle the --parts-model file in full (it may run code): only for a file whose "
    "maker you trust. --trust-checkpoint does not extend to it.",
    "flag",
)
#: `cardd assess` and the service's /v1/assess: the same claim from the same settings.
PARTS_MODEL = Option("--parts-model", "A car-parts model: damage placed on parts, sized by them.")
PARTS_SCORE_THR = Option(
    "--parts-score-thr", "Part masks below this score are not parts.", "float", 0.3, 0.0, 1.0
)
RULES = Option("--rules", "A claim rules file (default: cardd's claim_rules.yaml).", "file")
THRESHOLDS = Option(
    "--thresholds",
    "A `cardd eval` metrics.json: its best-F1 score threshold per class confirms findings.",
    "file",
)
SCORE_THR = Option(
    "--score-thr", "Drop detections below this score in every output.", "float", 0.3, 0.0, 1.0
)
# What names a model, for every command that runs one.
MODEL_CONFIG = Option(
    "--config",
    "Config name or path. Default: the config a model file's record names, else DCN_plus.",
)
CHECKPOINT = Option(
    "--checkpoint",
    "A checkpoint or `cardd export` file, or 'latest' / 'best' (the best_*.pth kept) of the "
    "work dir.",
    default="latest",
)
MODEL_WORK_DIR = Option(
    "--work-dir",
    "The training run 'latest'/'best' look in. Default: work_dirs/<config name>.",
    "path",
)
HALF = Option(
    "--half",
    "Run the model in float16 (autocast) on a CUDA GPU: faster, half the memory; boxes "
    "within a pixel or two of float32's.",
    "flag",
)
FORCE = Option("--force", "Replace an existing output.", "flag")
#: Every command that writes a run folder: `cardd.core.runs`.
EXIST_OK = Option("--exist-ok", "Replace an earlier run's outputs in the output folder.", "flag")


def from_params(cls, params: dict, **values):
    """An options dataclass from a Click command's parameters (the fields' options), and
    `values` for the fields that are not options (a command's arguments)."""
    for f in dataclasses.fields(cls):
        option = f.metadata.get("option")
        if option is None or option.name not in params:
            continue
        value = params[option.name]
        values[f.name] = parse_cfg_options(value) if option.kind == "pairs" else value
    return cls(**values)


def parse_cfg_options(pairs: tuple[str, ...]) -> dict:
    """`KEY=VALUE` strings -> a dict for `Config.merge_from_dict`, values parsed as
    Python literals where they are (numbers, lists, tuples, None, booleans)."""
    import ast

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CarddUsageError(f"--cfg-options expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value  # a plain string
    return options
