"""The install and the tour: `cardd doctor`, `cardd demo`."""

from __future__ import annotations

import click

from cardd import doctor as doctor_options
from cardd.core import options
from cardd.demo import DemoOptions


@click.command()
@options.apply(*doctor_options.OPTIONS)
def doctor(**params) -> None:
    """Print versions and capabilities of the stack; exit 1 if it is broken."""
    from cardd.doctor import diagnose

    report = diagnose(**params)
    width = max(len(name) for name, _ in report.rows)
    for name, value in report.rows:
        click.echo(f"{name:<{width}}  {value}")
    if not report.ok:
        for problem in report.problems:
            click.echo(f"problem: {problem}", err=True)
        raise click.exceptions.Exit(1)
    click.echo("ok: the stack works")


@click.command()
@options.decorate(DemoOptions)
def demo(**params) -> None:
    """The whole pipeline on toy data on CPU: synth-data, train, eval, infer."""
    from cardd.core import logs
    from cardd.demo import DISCLAIMER, run_demo

    result = run_demo(options.from_params(DemoOptions, params))
    if logs.verbosity() == logs.QUIET:
        click.echo(f"demo finished in {result.run_dir}")
        return
    click.echo("")
    click.echo(f"demo finished in {result.run_dir}:")
    click.echo(f"  checkpoints   {result.work_dir}")
    click.echo(f"  curves        {result.work_dir / 'plots' / 'training_curves.png'}")
    click.echo(f"  metrics       {result.eval_dir / 'metrics.json'}")
    click.echo(f"  report        {result.eval_dir / 'report.html'}")
    click.echo(f"  annotated     {result.infer_dir / 'vis'} ({result.detections} detections)")
    click.echo(f"  index         {result.infer_dir / 'index.html'}")
    click.echo(
        f"  JSON / CSV    {result.infer_dir / 'preds'}, {result.infer_dir / 'predictions.csv'}"
    )
    click.echo(DISCLAIMER)


COMMANDS = (doctor, demo)
