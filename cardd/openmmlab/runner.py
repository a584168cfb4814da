"""mmengine's Runner as cardd's commands use it: quiet on the terminal, complete in its log."""

from __future__ import annotations

from cardd.core import logs


def quiet_runner(base: type) -> type:
    """mmengine's Runner (or a subclass) whose logger prints to the terminal only at
    `terminal_level()`; its log file in the run folder keeps everything."""

    class QuietRunner(base):
        def build_logger(self, *args, **kwargs):
            return logs.quiet_terminal(super().build_logger(*args, **kwargs))

        def load_checkpoint(self, *args, **kwargs):
            # mmengine's Runner loads `load_from` and `--resume` files with no logger,
            # so its "Loads checkpoint by local backend" line is a bare print(): sent
            # to the run's logger instead (the log file; the terminal with --verbose)
            from mmengine.runner import runner as runner_module

            original = runner_module._load_checkpoint

            def logged(filename, map_location=None, logger="current"):
                return original(filename, map_location=map_location, logger=logger)

            runner_module._load_checkpoint = logged
            try:
                return super().load_checkpoint(*args, **kwargs)
            finally:
                runner_module._load_checkpoint = original

    return QuietRunner
