"""Where the seconds between `cardd train` and its first iteration go.

Every training run logs one line, e.g.
    start-up 9.8 s to the first iteration: interpreter and imports 1.9 | config 2.3 |
    environment log 0.4 | model 1.1 | rest of runner 0.3 | datasets 0.6 | ...
and writes the same marks to `<log_dir>/startup.json`. The marks are taken from the
process's own start (Linux: /proc), so interpreter start-up and imports count too.
With `--profile-startup` the whole way there also runs under cProfile:
`<log_dir>/startup.prof` (open with `python -m pstats` or snakeviz) and the 25
functions with the most cumulative time in the log.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cardd.core.files import write_file

_IMPORTED_AT = time.perf_counter()


def process_age() -> float:
    """Seconds since this process started (Linux), else since cardd was imported."""
    try:
        with open("/proc/self/stat") as f:
            # the command name (field 2) may hold spaces: count fields after its ')'
            started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED_AT


class StartupTimeline:
    """Named marks in seconds since the run started (the process's start, or now); a
    phase is the time between a mark and the one before it."""

    def __init__(self, from_process_start: bool = True) -> None:
        self.marks: list[tuple[str, float]] = []
        self.from_process_start = from_process_start
        started = process_age() if from_process_start else 0.0
        self._offset = started - time.perf_counter()
        self._profiler = None
        self.finished = False

    def mark(self, phase: str) -> None:
        """`phase` ended now."""
        if not any(name == phase for name, _ in self.marks):
            self.marks.append((phase, time.perf_counter() + self._offset))

    def phases(self) -> list[tuple[str, float]]:
        durations, previous = [], 0.0
        for name, at in self.marks:
            durations.append((name, at - previous))
            previous = at
        return durations

    def summary(self) -> str:
        total = self.marks[-1][1] if self.marks else 0.0
        parts = " | ".join(f"{name} {seconds:.1f}" for name, seconds in self.phases())
        return f"start-up {total:.1f} s to the first iteration: {parts}"

    def start_profile(self) -> None:
        import cProfile

        self._profiler = cProfile.Profile()
        self._profiler.enable()

    def stop_profile(self) -> None:
        """Stop profiling without a report (a run that ended before its first iteration)."""
        if self._profiler is not None:
            self._profiler.disable()
            self._profiler = None

    def finish(self, log_dir: str | Path, log) -> None:
        """Write `startup.json` (and `startup.prof`) into `log_dir`, log the summary."""
        self.finished = True
        log_dir = Path(log_dir)
        write_file(
            log_dir / "startup.json",
            json.dumps(
                {
                    "seconds_to_first_iteration": round(self.marks[-1][1], 3),
                    "phases": [{"phase": n, "seconds": round(s, 3)} for n, s in self.phases()],
                },
                indent=1,
            )
        )
        log(self.summary())
        if self._profiler is not None:
            import io
            import pstats

            self._profiler.disable()
            self._profiler.dump_stats(log_dir / "startup.prof")
            report = io.StringIO()
            pstats.Stats(self._profiler, stream=report).sort_stats("cumulative").print_stats(25)
            log(f"start-up profile ({log_dir / 'startup.prof'}):\n{report.getvalue()}")
            self._profiler = None


#: The timeline of this process's current training run.
TIMELINE = StartupTimeline()


def begin(from_process_start: bool) -> StartupTimeline:
    """The timeline of a training run starting now: counted from the process's start
    where the process is this run (`cardd train`), else from now (the demo, the API)."""
    global TIMELINE
    TIMELINE = StartupTimeline(from_process_start)
    return TIMELINE
