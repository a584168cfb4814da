"""Where a training iteration's time goes: `cardd train --profile-steps N`.

The start-up report (`cardd.openmmlab.startup`) covers the way to the first iteration; this
covers the steady state. After `after` iterations (warm-up: cuDNN, the caching
allocator and the data workers settle), PyTorch's profiler records `steps`
iterations (the model's forward, backward and optimizer step); then
`<log_dir>/profile_steps.txt` holds a one-line verdict and PyTorch's table of
operators and kernels, and `<log_dir>/trace.json.gz` the timeline of every op and
kernel (open it in https://ui.perfetto.dev).

The verdict answers the first question about a slow GPU step: is the GPU busy?
`GPU busy G s/iter (P%)` is the kernels' time per iteration against the wall time:
at 50%, half of each step the GPU waits for the Python side to launch work (then
fp16 cannot help; fewer, larger kernels can).
"""

from __future__ import annotations

import time
from pathlib import Path

from cardd.core.errors import CarddError
from cardd.core.files import write_file

#: PyTorch's FunctionEventAvg times are in microseconds.
_US = 1e-6


class StepProfile:
    """Profiles `steps` iterations after the first `after` of this run (0-based
    iterations `start + after` ..; `start` is where a resumed run starts).

    The caller says where each iteration starts and ends (`iteration_started`,
    `iteration_ended`); on CUDA both wait for the GPU, so the wall time counts
    the GPU's work on those iterations and nothing of the others.
    """

    def __init__(self, steps: int, after: int, cuda: bool, start: int = 0) -> None:
        if steps < 1:
            raise CarddError(f"--profile-steps must be at least 1, got {steps}")
        if after < 0:
            raise CarddError(f"--profile-after must be 0 or more, got {after}")
        self.steps, self.after, self.cuda, self.start = steps, after, cuda, start
        self.first, self.last = start + after, start + after + steps - 1
        self._profiler = None
        self._iteration_scope = None
        self._started_at: float | None = None
        self.wall_seconds: float | None = None
        self.report: str | None = None

    def check_length(self, max_iters: int) -> None:
        """Refuse, before the first iteration, a run too short to reach the profiled ones."""
        if max_iters <= self.last:
            raise CarddError(
                f"--profile-steps {self.steps} --profile-after {self.after} needs at least "
                f"{self.after + self.steps} training iterations; this run has "
                f"{max_iters - self.start} (lower --profile-after, or train for more epochs)"
            )

    def _synchronize(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def iteration_started(self, iteration: int) -> None:
        from torch.profiler import ProfilerActivity, profile, record_function

        if self.wall_seconds is not None:
            return  # done
        if iteration == self.first:
            self._synchronize()  # the earlier iterations' kernels are not ours
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
            self._profiler = profile(activities=activities)
            self._profiler.__enter__()
            self._started_at = time.perf_counter()
        if self._profiler is not None and self.first <= iteration <= self.last:
            # one named span per iteration on the timeline
            self._iteration_scope = record_function(f"cardd iteration {iteration + 1}")
            self._iteration_scope.__enter__()

    def iteration_ended(self, iteration: int) -> bool:
        """True once the last profiled iteration ended (the report is ready to write)."""
        if self._profiler is None or self.wall_seconds is not None:
            return False  # not started yet, or already done
        if self._iteration_scope is not None:
            self._iteration_scope.__exit__(None, None, None)
            self._iteration_scope = None
        if iteration < self.last:
            return False
        self._synchronize()
        self.wall_seconds = time.perf_counter() - self._started_at
        self._profiler.__exit__(None, None, None)
        return True

    def _time_by_name(self) -> list[tuple[str, float]]:
        """(name, seconds) of what the time is counted on, costliest first: on CUDA the
        kernels and copies (wherever they were launched from, mmcv's own kernels too),
        on CPU the operators' own time."""
        from torch.autograd import DeviceType

        rows = []
        for event in self._profiler.key_averages():
            if getattr(event, "is_user_annotation", False) or event.key.startswith("cardd "):
                continue
            if self.cuda and event.device_type == DeviceType.CUDA:
                rows.append((event.key, event.self_device_time_total * _US))
            elif not self.cuda:
                rows.append((event.key, event.self_cpu_time_total * _US))
        return sorted((row for row in rows if row[1] > 0), key=lambda row: -row[1])

    def summary(self) -> str:
        """The verdict: seconds per iteration, how busy the GPU was, the costliest work."""
        per_iteration = self.wall_seconds / self.steps
        first, last = self.first + 1, self.last + 1  # as mmengine's log counts them
        head = f"profiled iterations {first}-{last}: {per_iteration:.3f} s/iter"
        spent = self._time_by_name()
        total = sum(seconds for _, seconds in spent)
        if self.cuda:
            busy = total / self.steps
            head += f", GPU busy {busy:.3f} s/iter ({100 * busy / per_iteration:.0f}%)"
        if not total:
            return head
        top = ", ".join(
            f"{_short(name)} {100 * seconds / total:.0f}%" for name, seconds in spent[:5]
        )
        return f"{head}; most {'GPU' if self.cuda else 'CPU'} time: {top}"

    def write(self, log_dir: str | Path) -> Path:
        """`profile_steps.txt` (verdict and table) and `trace.json.gz` into `log_dir`."""
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        sort_by = "self_cuda_time_total" if self.cuda else "self_cpu_time_total"
        table = self._profiler.key_averages().table(
            sort_by=sort_by, row_limit=40, max_name_column_width=70
        )
        self.report = self.summary()
        out = log_dir / "profile_steps.txt"
        write_file(out, f"{self.report}\n\n{table}\n")
        self._profiler.export_chrome_trace(str(log_dir / "trace.json.gz"))
        return out


def _short(kernel: str, width: int = 60) -> str:
    """A CUDA kernel's name without its return type and template arguments."""
    name = kernel.removeprefix("void ").replace("(anonymous namespace)::", "")
    name = name.split("<", 1)[0].split("(", 1)[0]
    return name if len(name) <= width else name[: width - 3] + "..."
