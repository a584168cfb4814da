"""Datasets and weights: `cardd download-data`, `check-data`, `reduce-data`, `synth-data`,
`init-data`, `convert yolo`, `download-weights`."""

from __future__ import annotations

from pathlib import Path

import click

from cardd.cli.group import CarddGroup
from cardd.core import options
from cardd.core.errors import CarddError
from cardd.data import options as data_options
from cardd.models import options as weights_options

PathArg = click.Path(path_type=Path)


def _print_counts(title: str, summary: dict, names: list[str] | None = None) -> None:
    """A written dataset's counts (CarDD's classes unless `names` says otherwise)."""
    from cardd.core.console import console, counts_table
    from cardd.structures.classes import CLASSES

    console().print(counts_table(title, summary, names or CLASSES))


def _finish_check(report) -> None:
    """Print a dataset check's table and problems; exit 1 when it found any."""
    from cardd.core.console import console

    console().print(report.table())
    if not report.ok:
        for line in report.problem_lines():
            click.echo(line, err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"{report.root}: ok")


@click.command(
    "download-data", epilog="Example: cardd download-data --zip ~/Downloads/CarDD_release.zip"
)
@options.apply(*data_options.DOWNLOAD_OPTIONS)
def download_data(dataset: str, **params) -> None:
    """Download (or take) the CarDD release zip, extract it safely, check it."""
    from cardd.data.download import download_data as run

    if dataset == "carparts":
        from cardd.data.carparts import download_carparts

        if params.pop("keep_sod"):
            raise click.UsageError("--keep-sod is for the CarDD release")
        report = download_carparts(**params)
        if report.problems:
            click.echo(f"{len(report.problems)} bad label lines or files left out", err=True)
        click.echo(report.summary())
        click.echo(f"train a parts model: cardd train --data {report.out / 'data.yaml'}")
        return
    _finish_check(run(**params))


@click.command("check-data", epilog="Example: cardd check-data --root small_data/CarDD_COCO --deep")
@options.apply(*data_options.CHECK_OPTIONS)
def check_data(root: Path, data: Path | None, deep: bool) -> None:
    """Check a dataset (a CarDD-layout folder, or --data FILE); print images and
    instances per class per split."""
    from cardd.data.check import check_dataset, check_spec

    if data is not None:
        from cardd.data.spec import load_data_file

        _finish_check(check_spec(load_data_file(data), deep=deep))
        return
    if not root.exists():
        raise CarddError(f"{root} does not exist: run `cardd download-data` or `cardd synth-data`")
    _finish_check(check_dataset(root, deep=deep))


@click.command(
    "reduce-data", epilog="Example: cardd reduce-data --src data --dst small_data --every 10"
)
@options.apply(*data_options.REDUCE_OPTIONS)
def reduce_data(**params) -> None:
    """Write a consistent 1-in-N subset of a dataset, for quick runs."""
    from cardd.data.reduce import reduce_dataset

    summary = reduce_dataset(**params)
    _print_counts(f"kept in {params['dst'] / 'CarDD_COCO'} (1 in {params['every']})", summary)


@click.command("synth-data", epilog="Example: cardd synth-data --dest data/synthetic --images 24")
@options.apply(*data_options.SYNTH_OPTIONS)
def synth_data(**params) -> None:
    """Write a tiny deterministic dataset in the CarDD layout (for demos and tests)."""
    from cardd.data.synth import PART_CATEGORIES, synthesize

    summary = synthesize(**params)
    names = [c["name"] for c in PART_CATEGORIES] if params["parts"] else None
    _print_counts(f"synthetic dataset in {params['dest'] / 'CarDD_COCO'}", summary, names)


@click.command(
    "init-data",
    epilog="Example: cardd init-data ~/datasets/claims  # writes claims/cardd-data.yaml",
)
@click.argument("folder", type=PathArg)
@options.apply(*data_options.INIT_OPTIONS)
def init_data(folder: Path, **params) -> None:
    """Write the dataset description (--data FILE) of a folder of COCO data: the
    CarDD layout, a Roboflow COCO export, or annotations/<split>.json + images/."""
    from cardd.data.init_data import init_data as run

    spec = run(folder, **params)
    for split, files in spec.splits.items():
        click.echo(f"{split:>5}: {files.annotations}  images {files.images}")
    click.echo(f"{spec.classes().describe()}; written to {spec.source}")


@click.group(cls=CarddGroup)
def convert() -> None:
    """Import a dataset in another format as COCO (the source is only read)."""


@convert.command(
    "yolo",
    epilog="Example: cardd convert yolo ~/datasets/carparts-seg/data.yaml data/carparts",
)
@click.argument("source", type=click.Path(path_type=Path, exists=True))
@click.argument("out", type=PathArg)
@options.apply(*data_options.CONVERT_OPTIONS)
def convert_yolo(source: Path, out: Path, **params) -> None:
    """A YOLO segmentation or detection dataset (Ultralytics, Roboflow) -> COCO files
    and a dataset description in OUT; class ids kept as in its data.yaml."""
    from cardd.data.convert import ConversionFailed
    from cardd.data.convert import convert_yolo as run

    try:
        report = run(source, out, **params)
    except ConversionFailed as failed:
        _print_problems(failed.report.problems)
        raise
    if report.problems:
        _print_problems(report.problems)
    click.echo(report.summary())
    click.echo(f"train with: cardd train --data {out / 'data.yaml'}")


def _print_problems(problems: list[str], limit: int = 20) -> None:
    for line in problems[:limit]:
        click.echo(f"  {line}", err=True)
    if len(problems) > limit:
        click.echo(f"  ... and {len(problems) - limit} more", err=True)


@click.command("download-weights", epilog="""Examples:
  cardd download-weights                        # DCN_plus's start: Mask R-CNN R-101 DCN
  cardd download-weights --model rtmdet-ins-s   # RTMDet_ins_s's start""")
@options.apply(*weights_options.WEIGHTS_OPTIONS)
def download_weights(model: str, dest: Path, url: str | None, force: bool) -> None:
    """Fetch the COCO weights a config fine-tunes from, checked by their sha256."""
    from cardd.models.pretrained import download_weights as run

    run(dest=dest, url=url, force=force, model=model)


COMMANDS = (download_data, check_data, reduce_data, synth_data, init_data, convert,
            download_weights)  # fmt: skip
