"""`cardd train`'s terminal: a bar per epoch (or a line per logging interval when the
output is not a terminal), and after each validation one line of the numbers that matter.

mmengine's own log lines go to the run's log file (`cardd.core.logs`); this is what a
person watches instead, on rank 0 only (`CarddProgressHook` in `cardd.openmmlab.plugins`).
"""

from __future__ import annotations

import sys
import time


def _fmt_seconds(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def loss_terms(outputs: dict | None) -> dict[str, float]:
    """The logged loss terms of one iteration (mmdet's `log_vars`), as floats."""
    terms = {}
    for name, value in (outputs or {}).items():
        if name.startswith("loss") or name == "acc":
            terms[name] = float(value.detach() if hasattr(value, "detach") else value)
    return terms


def describe_terms(terms: dict[str, float]) -> str:
    total = terms.get("loss")
    parts = [f"loss {total:.3f}"] if total is not None else []
    parts += [
        f"{name[5:]} {value:.3f}" for name, value in terms.items() if name.startswith("loss_")
    ]
    return " ".join(parts)


def _percent(value: float | None) -> str:
    """An AP as a percentage; COCO's -1 (no ground truth of that size) as `-`."""
    return "-" if value is None or value < 0 else f"{100 * value:.1f}"


def validation_line(epoch: int, max_epochs: int, metrics: dict, best: dict) -> str:
    """`val 3/12: box AP 41.2 AP50 60.3 APs/m/l* 20.1/35.3/50.2 | mask ... | best box AP ...`
    (* the CarDD paper's size bins)."""
    parts = []
    for iou_type, name in (("bbox", "box"), ("segm", "mask")):
        ap = metrics.get(f"coco/{iou_type}_mAP")
        if ap is None:
            continue
        bins = "/".join(
            _percent(metrics.get(f"coco/{iou_type}_mAP_{size}_cardd")) for size in ("s", "m", "l")
        )
        ap50 = 100 * metrics.get(f"coco/{iou_type}_mAP_50", 0.0)
        parts.append(f"{name} AP {100 * ap:.1f} AP50 {ap50:.1f} APs/m/l* {bins}")
    line = f"val {epoch}/{max_epochs}: " + (" | ".join(parts) or "no COCO metrics")
    if best:
        line += f" | best box AP {100 * best['ap']:.1f} (epoch {best['epoch']})"
    return line


class TrainingProgress:
    """The state behind the terminal output of one training run."""

    def __init__(self, interval: int, max_epochs: int, max_iters: int, start_iter: int = 0):
        self.interval = max(1, interval)
        self.max_epochs, self.max_iters = max_epochs, max_iters
        self.start_iter = start_iter
        self.began = time.perf_counter()
        self.bar = None
        self.best: dict = {}
        self.tty = sys.stdout.isatty()

    def epoch_started(self, epoch: int, iterations: int) -> None:
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=iterations, desc=f"epoch {epoch}/{self.max_epochs}", unit="it",
                            dynamic_ncols=True, leave=True)  # fmt: skip

    def iteration_ended(
        self,
        epoch: int,
        index: int,
        iterations: int,
        done_iters: int,
        terms: dict[str, float],
        lr: float,
        memory_gb: float | None,
        seconds_per_iter: float | None = None,
    ) -> None:
        """One iteration done; `seconds_per_iter`: mmengine's timer (the iteration alone,
        without validation), else the run's average so far."""
        run = done_iters - self.start_iter
        per_iter = seconds_per_iter or (time.perf_counter() - self.began) / max(1, run)
        eta = per_iter * (self.max_iters - done_iters)
        memory = f" mem {memory_gb:.1f}G" if memory_gb is not None else ""
        details = f"{describe_terms(terms)} lr {lr:.2e} {per_iter:.2f}s/it{memory}"
        if self.bar is not None:
            self.bar.set_postfix_str(details, refresh=False)
            self.bar.update(1)
        elif (index + 1) % self.interval == 0 or index + 1 == iterations:
            print(
                f"epoch {epoch}/{self.max_epochs} iter {index + 1}/{iterations} {details} "
                f"eta {_fmt_seconds(eta)}",
                flush=True,
            )

    def epoch_ended(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def validated(self, epoch: int, metrics: dict) -> None:
        ap = metrics.get("coco/bbox_mAP")
        if ap is not None and (not self.best or ap > self.best["ap"]):
            self.best = {"ap": ap, "epoch": epoch}
        print(validation_line(epoch, self.max_epochs, metrics, self.best), flush=True)
