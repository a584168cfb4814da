"""What cardd adds to MMDetection's registries, for `custom_imports` in the configs.

Importing this module registers `CarddCocoMetric` (see `cardd.metrics`) and
`CarddPlotHook` (training curves, see `cardd.plots`), so a cardd config also runs
under MMDetection's own `tools/train.py` and `test.py`.
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
