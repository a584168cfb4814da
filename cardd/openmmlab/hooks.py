"""cardd's mmengine hooks, registered in mmdet's HOOKS registry as mmdet registers its own.

`CarddPlotHook` (training curves, `cardd.visualize.plots`), `CarddStartupHook` (where the
start-up seconds go, `cardd.openmmlab.startup`), `CarddStepProfileHook` (where an
iteration's time goes, `cardd.openmmlab.step_profile`), `CarddProgressHook` (`cardd
train`'s terminal, `cardd.openmmlab.progress`) and `CarddTestProgressHook` (`cardd eval`'s).
Imported by `cardd.openmmlab.plugins`, the module the configs name in `custom_imports`.
"""

from __future__ import annotations

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from cardd.openmmlab import startup
from cardd.openmmlab.progress import TrainingProgress, loss_terms
from cardd.openmmlab.registration import register_once
from cardd.openmmlab.step_profile import StepProfile


@register_once(HOOKS)
class CarddPlotHook(Hook):
    """Redraws `<work_dir>/plots/training_curves.png` after each validation and at the
    end of training (after the logger hook has written the scalars)."""

    priority = "VERY_LOW"

    def _draw(self, runner) -> None:
        from cardd.visualize.plots import training_curves

        if not is_main_process():
            return
        try:
            training_curves(runner.work_dir)
        except Exception as error:  # a picture must never stop a training run
            runner.logger.warning(f"training curves not drawn: {error}")

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._draw(runner)

    def after_train(self, runner) -> None:
        self._draw(runner)


@register_once(HOOKS)
class CarddStartupHook(Hook):
    """Marks the start-up phases inside `Runner.train` and, after the first
    iteration, logs them and writes `<log_dir>/startup.json` (rank 0)."""

    priority = "VERY_HIGH"  # the marks are taken before the other hooks run

    def before_run(self, runner) -> None:
        startup.TIMELINE.mark("datasets, optimizer, evaluator")

    def before_train(self, runner) -> None:
        startup.TIMELINE.mark("weights (initialise, load, resume)")

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        startup.TIMELINE.mark("first batch (data workers)")

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        timeline = startup.TIMELINE
        if timeline.finished:
            return
        timeline.mark("first iteration")
        if is_main_process():
            try:
                timeline.finish(runner.log_dir, runner.logger.info)
            except OSError as error:  # a report must never stop a training run
                runner.logger.warning(f"start-up report not written: {error}")
        timeline.finished = True


@register_once(HOOKS)
class CarddStepProfileHook(Hook):
    """`cardd train --profile-steps N`: profiles N iterations after the first `after`
    and writes `<log_dir>/profile_steps.txt` and `trace.json.gz` (see
    `cardd.openmmlab.step_profile`). On rank 0 only; the other ranks train unprofiled."""

    # first in line: the profiled span is the model's step, not the other hooks' work
    priority = "VERY_HIGH"

    def __init__(self, steps: int, after: int = 10) -> None:
        self.steps, self.after = steps, after
        self.profile: StepProfile | None = None

    def before_train(self, runner) -> None:
        # after the checkpoint is loaded: a resumed run counts from where it resumes
        if not is_main_process():
            return
        cuda = next(runner.model.parameters()).is_cuda
        self.profile = StepProfile(self.steps, self.after, cuda=cuda, start=runner.iter)
        self.profile.check_length(runner.max_iters)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self.profile is not None:
            self.profile.iteration_started(runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.profile is None or not self.profile.iteration_ended(runner.iter):
            return
        try:
            out = self.profile.write(runner.log_dir)
            runner.logger.info(f"{self.profile.report} (table: {out})")
        except Exception as error:  # a report must never stop a training run
            runner.logger.warning(f"step profile not written: {error!r}")
        self.profile = None


@register_once(HOOKS)
class CarddProgressHook(Hook):
    """`cardd train`'s terminal output (see `cardd.openmmlab.progress`): rank 0 only; mmengine's
    own lines then go to the log file alone (`cardd.core.logs`)."""

    priority = "LOW"  # after IterTimerHook and LoggerHook have read the iteration

    def __init__(self, interval: int = 50) -> None:
        self.interval = interval
        self.progress: TrainingProgress | None = None

    def before_train(self, runner) -> None:
        if is_main_process():
            self.progress = TrainingProgress(
                self.interval, runner.max_epochs, runner.max_iters, start_iter=runner.iter
            )

    def before_train_epoch(self, runner) -> None:
        if self.progress is not None:
            self.progress.epoch_started(runner.epoch + 1, len(runner.train_dataloader))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.progress is None:
            return
        import torch

        lr = runner.optim_wrapper.get_lr()["lr"][0]
        cuda = torch.cuda.is_available() and next(runner.model.parameters()).is_cuda
        memory = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        timer = runner.message_hub.log_scalars.get("train/time")  # IterTimerHook's
        self.progress.iteration_ended(
            runner.epoch + 1, batch_idx, len(runner.train_dataloader), runner.iter + 1,
            loss_terms(outputs), lr, memory, timer.mean(20) if timer is not None else None,
        )  # fmt: skip

    def after_train_epoch(self, runner) -> None:
        if self.progress is not None:
            self.progress.epoch_ended()

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self.progress is not None and metrics:
            self.progress.validated(runner.epoch, metrics)


@register_once(HOOKS)
class CarddTestProgressHook(Hook):
    """`cardd eval`'s terminal while the model runs over the split: a progress bar on
    a terminal, else a line at each quarter (mmengine's lines are in the log file)."""

    priority = "LOW"

    def __init__(self) -> None:
        self.bar = None
        self.total = 0

    def before_test(self, runner) -> None:
        import sys

        if not is_main_process():
            return
        self.total = len(runner.test_dataloader)
        if sys.stdout.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc="eval", unit="img", dynamic_ncols=True)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if not is_main_process():
            return
        if self.bar is not None:
            self.bar.update(1)
            return
        done = batch_idx + 1
        quarter = self.total // 4 if self.total >= 8 else self.total  # a few: the end only
        if done == self.total or done % max(1, quarter) == 0:
            print(f"eval: {done}/{self.total} batches through the model", flush=True)

    def after_test(self, runner) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
