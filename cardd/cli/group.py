"""The command group every `cardd` command belongs to: one-line errors with the right exit
code, and -v/--verbose and -q/--quiet on every command."""

from __future__ import annotations

import click

from cardd.core.errors import CarddError, CarddUsageError


def _verbosity_options() -> list[click.Option]:
    def choose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if not value:
            return
        from cardd.core import logs  # when a flag is given, not for every --help

        if ctx.meta.get("cardd.verbosity") not in (None, param.name):
            raise click.UsageError("pass -v/--verbose or -q/--quiet, not both")
        ctx.meta["cardd.verbosity"] = param.name
        logs.set_verbosity(logs.VERBOSE if param.name == "verbose" else logs.QUIET)

    return [
        click.Option(
            ["-v", "--verbose"], is_flag=True, expose_value=False, callback=choose,
            help="Also show mmengine's and mmdet's log lines (environment, config, weights).",
        ),
        click.Option(
            ["-q", "--quiet"], is_flag=True, expose_value=False, callback=choose,
            help="Only errors and the final line.",
        ),
    ]  # fmt: skip


#: What `pip install cardd` (the ONNX runtime) leaves out and `cardd[torch]` adds.
PYTORCH_STACK = {"torch", "torchvision", "mmcv", "mmdet", "mmengine"}


class CarddGroup(click.Group):
    """Turns `CarddError` into Click's one-line errors with the right exit code, and any
    other exception into one line too (exit 1): its type and first line, and how to see
    the traceback (`CARDD_DEBUG=1`)."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Every command takes -v/--verbose and -q/--quiet (`cardd.core.logs`)."""
        cmd.params.extend(_verbosity_options())
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context):
        import os

        from cardd.core import logs

        logs.set_verbosity(logs.NORMAL)  # each command starts from the default
        logs.filter_library_warnings()
        try:
            return super().invoke(ctx)
        except CarddUsageError as error:
            raise click.UsageError(str(error)) from None  # one line, exit code 2
        except CarddError as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:
            missing = getattr(error, "name", None) or ""
            if isinstance(error, ModuleNotFoundError) and missing.split(".")[0] in PYTORCH_STACK:
                raise click.ClickException(  # `pip install cardd` alone: the ONNX runtime
                    f"this needs the PyTorch stack ({missing} is not installed): "
                    'pip install "cardd[torch]"'
                ) from None
            if os.environ.get("CARDD_DEBUG", "") not in ("", "0"):
                raise
            from cardd.core.errors import one_line

            raise click.ClickException(
                f"{one_line(error)} (set CARDD_DEBUG=1 for the traceback)"
            ) from None
