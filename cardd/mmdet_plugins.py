"""What cardd adds to MMDetection's registries, for `custom_imports` in the configs.

Importing this module registers `CarddCocoMetric` (see `cardd.metrics`),
`CarddPlotHook` (training curves, see `cardd.plots`) and `CarddStartupHook` (where
the start-up seconds go, see `cardd.startup`), so a cardd config also runs under
MMDetection's own `tools/train.py` and `test.py`.
"""

from cardd.metrics import register

register()


def _register_plot_hook() -> None:
    from mmdet.registry import HOOKS
    from mmengine.dist import is_main_process
    from mmengine.hooks import Hook

    class CarddPlotHook(Hook):
        """Redraws `<work_dir>/plots/training_curves.png` after each validation and at the
        end of training (after the logger hook has written the scalars)."""

        priority = "VERY_LOW"

        def _draw(self, runner) -> None:
            from cardd.plots import training_curves

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

    if "CarddPlotHook" not in HOOKS.module_dict:
        HOOKS.register_module(module=CarddPlotHook)


_register_plot_hook()


def _register_startup_hook() -> None:
    from mmdet.registry import HOOKS
    from mmengine.dist import is_main_process
    from mmengine.hooks import Hook

    from cardd import startup

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

    if "CarddStartupHook" not in HOOKS.module_dict:
        HOOKS.register_module(module=CarddStartupHook)


_register_startup_hook()
