"""What the terminal shows: what a person needs; mmengine's and mmdet's detail goes to log files.

Three levels, set once per command by `-q/--quiet` and `-v/--verbose` (`set_verbosity`):

* quiet: errors and the command's last line;
* normal (the default): progress, results, where the files are, warnings;
* verbose: also every INFO line of mmengine and mmdet (environment report, merged
  config, weight loading, "upgraded to version 2"), as plain mmdet prints them.

Whatever the level, the log files get everything at full detail: a training run's
`<work_dir>/<timestamp>/<timestamp>.log` (mmengine's own file), `infer.log` in
`cardd infer`'s output folder, and `cardd eval`'s run log in its output folder.
"""

from __future__ import annotations

import logging
import logging.handlers
import warnings
from pathlib import Path

QUIET, NORMAL, VERBOSE = 0, 1, 2
_verbosity = NORMAL


def set_verbosity(level: int) -> None:
    global _verbosity
    _verbosity = level


def verbosity() -> int:
    return _verbosity


def terminal_level() -> int:
    """The lowest level of mmengine's records that reaches the terminal."""
    return {QUIET: logging.ERROR, NORMAL: logging.WARNING, VERBOSE: logging.INFO}[_verbosity]


def quiet_terminal(logger: logging.Logger) -> logging.Logger:
    """Lower what an MMLogger prints on the terminal to `terminal_level()`; its log file
    (if any) keeps every record."""
    for handler in logger.handlers:
        if type(handler) is logging.StreamHandler:  # the terminal, not a FileHandler
            handler.setLevel(terminal_level())
            if _verbosity < VERBOSE and _drop_library_notices not in handler.filters:
                handler.addFilter(_drop_library_notices)
    _quiet_pycocotools()
    return logger


#: mmengine warnings about its own API that cardd's users cannot act on (mmdet 3.3.0
#: still calls the deprecated FileClient); the log file keeps them.
#: mmengine's note on each of RTMDet's shared head convolutions (`share_conv` puts one
#: layer in several places; its optimizer settings skip the repeats, as they should).
LIBRARY_NOTICES = (
    '"FileClient" will be deprecated',
    '"HardDiskBackend" is the alias',
    "It is skipped since bypass_duplicate=True",
)


def _drop_library_notices(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(notice in message for notice in LIBRARY_NOTICES)


def _quiet_pycocotools() -> None:
    """pycocotools prints four lines each time an annotation file loads (datasets,
    metrics); below `--verbose` they are dropped."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    if getattr(COCO.__init__, "cardd_quiet", False):
        return
    original = COCO.__init__

    def quiet_init(self, *args, **kwargs):
        if _verbosity >= VERBOSE:
            return original(self, *args, **kwargs)
        with contextlib.redirect_stdout(io.StringIO()):
            return original(self, *args, **kwargs)

    quiet_init.cardd_quiet = True
    COCO.__init__ = quiet_init


class RunLog:
    """mmengine's and mmdet's records of a command that is not a training run, for its
    output folder: a logger that is mmengine's current one (where `print_log(...,
    logger='current')` writes), quiet on the terminal, and buffered until the folder
    exists (it is made only once the model has loaded, so a failed load leaves
    nothing) and then written to `<folder>/<name>`."""

    def __init__(self, name: str) -> None:
        import uuid

        logger_name = f"cardd-{name}-{uuid.uuid4().hex[:8]}"
        try:
            from mmengine.logging import MMLogger
        except ImportError:  # an install without PyTorch (ONNX models): nothing of theirs logs
            logger = logging.getLogger(logger_name)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        else:
            logger = MMLogger.get_instance(logger_name, log_level="INFO")
        self.logger = quiet_terminal(logger)
        self.name = name
        self.buffer = logging.handlers.MemoryHandler(
            capacity=100_000, flushLevel=logging.CRITICAL + 1
        )
        self.buffer.setLevel(logging.INFO)
        self.logger.addHandler(self.buffer)
        self.path: Path | None = None

    def write_to(self, folder: Path) -> Path:
        """From now on (and everything so far) into `<folder>/<name>`."""
        self.path = folder / self.name
        target = logging.FileHandler(self.path, mode="w")
        target.setFormatter(
            logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")
        )
        self.buffer.setTarget(target)
        self.buffer.flush()
        self.logger.removeHandler(self.buffer)
        self.logger.addHandler(target)
        return self.path

    def close(self) -> None:
        for handler in list(self.logger.handlers):
            if type(handler) is not logging.StreamHandler:
                handler.close()
                self.logger.removeHandler(handler)


def filter_library_warnings() -> None:
    """Warnings from libraries that no cardd user can act on, silenced once, here."""
    # setuptools: mmengine's `mmdet::` config lookup imports pkg_resources (pinned
    # setuptools<82 keeps it); the warning is for mmengine's maintainers.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    # numpy 2 via pycocotools' mask decoding: a pycocotools matter, results are right.
    warnings.filterwarnings(
        "ignore",
        message="__array__ implementation doesn't accept a copy",
        category=DeprecationWarning,
    )
    # torch on mmdet's anchor generator: mmdet 3.3.0 calls meshgrid without `indexing`;
    # the default it warns about is the one mmdet means.
    warnings.filterwarnings("ignore", message="torch.meshgrid: in an upcoming release")
    # torch on mmdet's CSPNeXt and SE layers (RTMDet): mmdet 3.3.0 still writes
    # `torch.cuda.amp.autocast(enabled=False)`, which does what it means.
    warnings.filterwarnings(
        "ignore", message=r"`torch.cuda.amp.autocast\(args...\)` is deprecated",
        category=FutureWarning,
    )


def say(message: str) -> None:
    """A line for the person at the terminal: progress and results, not in `--quiet`."""
    if _verbosity >= NORMAL:
        print(message, flush=True)
