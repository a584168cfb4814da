"""The `cardd` command line: parse, call one library function, map errors to exit codes.

Exit codes: 0 success, 1 a problem with the input or the environment (one
line, no traceback), 2 a command line that cannot be carried out. Heavy
imports (torch, mmdet) happen inside the commands so that `--help` is instant.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cardd import __version__
from cardd import doctor as doctor_options
from cardd.assess.run import AssessOptions
from cardd.core import options
from cardd.core.errors import CarddError, CarddUsageError
from cardd.data import check as check_options
from cardd.data import convert as convert_options
from cardd.data import download as download_options
from cardd.data import init_data as init_options
from cardd.data import reduce as reduce_options
from cardd.data import synth as synth_options
from cardd.demo import DemoOptions
from cardd.evaluate.common import EvalOptions
from cardd.export.common import ExportOptions
from cardd.infer.common import InferOptions
from cardd.models import pretrained as weights_options
from cardd.serve.service import ServeOptions
from cardd.train.runner import TrainOptions

PathArg = click.Path(path_type=Path)
ExistingFile = click.Path(path_type=Path, exists=True, dir_okay=False)


# Options of the data commands (the model commands' are declared in their options
# dataclasses, through `cardd.core.options`).
data_file_option = options.DATA.click()


def force_option(what: str):
    return click.option("--force", is_flag=True, help=f"Replace an existing {what}.")


def _verbosity_options() -> list[click.Option]:
    from cardd.core import logs

    def choose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if not value:
            return
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
            if os.environ.get("CARDD_DEBUG", "") not in ("", "0"):
                raise
            from cardd.core.errors import one_line

            raise click.ClickException(
                f"{one_line(error)} (set CARDD_DEBUG=1 for the traceback)"
            ) from None


def _print_counts(title: str, summary: dict, names: list[str] | None = None) -> None:
    """A written dataset's counts (CarDD's classes unless `names` says otherwise)."""
    from cardd.core.console import console, counts_table
    from cardd.structures.classes import CLASSES

    console().print(counts_table(title, summary, names or CLASSES))


def _parse_size(ctx, param, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    width, sep, height = value.lower().partition("x")
    if not (
        sep
        and width.isdigit()
        and height.isdigit()
        and 64 <= int(width) <= 8192
        and 64 <= int(height) <= 8192
    ):
        raise click.BadParameter("expected WIDTHxHEIGHT, each 64..8192, e.g. 1024x768")
    return int(width), int(height)


def _finish_check(report) -> None:
    """Print a dataset check's table and problems; exit 1 when it found any."""
    from cardd.core.console import console

    console().print(report.table())
    if not report.ok:
        for line in report.problem_lines():
            click.echo(line, err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"{report.root}: ok")


@click.group(cls=CarddGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cardd")
def cli() -> None:
    """cardd: detect and segment car damage (CarDD dataset) with MMDetection 3.

    \b
    Start here:
      cardd doctor                       check the installation
      cardd demo                         the whole pipeline on toy data, on CPU
      cardd download-data                fetch the CarDD dataset into data/
      cardd download-weights             fetch the COCO-pretrained DCN model
      cardd train --config DCN_plus      the CarDD paper's best model (GPU)
      cardd infer photo.jpg              detect damage in photos
      cardd assess claim/ --damage-model M   a claim: damage by part, severity, status
      cardd train --data my-data.yaml    your own dataset and classes (cardd init-data)
      cardd serve                        the claims service: HTTP API and web page
      cardd export --out model.pth       a trained model to share (weights only)
      cardd export --out model.onnx      ... as ONNX: infer/serve without PyTorch
    """


@cli.command()
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


@cli.command(
    "download-data", epilog="Example: cardd download-data --zip ~/Downloads/CarDD_release.zip"
)
@options.apply(*download_options.OPTIONS)
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


@cli.command("check-data", epilog="Example: cardd check-data --root small_data/CarDD_COCO --deep")
@options.apply(*check_options.OPTIONS)
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


@cli.command(
    "reduce-data", epilog="Example: cardd reduce-data --src data --dst small_data --every 10"
)
@options.apply(*reduce_options.OPTIONS)
def reduce_data(**params) -> None:
    """Write a consistent 1-in-N subset of a dataset, for quick runs."""
    from cardd.data.reduce import reduce_dataset

    summary = reduce_dataset(**params)
    _print_counts(f"kept in {params['dst'] / 'CarDD_COCO'} (1 in {params['every']})", summary)


@cli.command("synth-data", epilog="Example: cardd synth-data --dest data/synthetic --images 24")
@options.apply(*synth_options.OPTIONS)
def synth_data(**params) -> None:
    """Write a tiny deterministic dataset in the CarDD layout (for demos and tests)."""
    from cardd.data.synth import PART_CATEGORIES, synthesize

    summary = synthesize(**params)
    names = [c["name"] for c in PART_CATEGORIES] if params["parts"] else None
    _print_counts(f"synthetic dataset in {params['dest'] / 'CarDD_COCO'}", summary, names)


@cli.command(
    "init-data",
    epilog="Example: cardd init-data ~/datasets/claims  # writes claims/cardd-data.yaml",
)
@click.argument("folder", type=PathArg)
@options.apply(*init_options.OPTIONS)
def init_data(folder: Path, **params) -> None:
    """Write the dataset description (--data FILE) of a folder of COCO data: the
    CarDD layout, a Roboflow COCO export, or annotations/<split>.json + images/."""
    from cardd.data.init_data import init_data as run

    spec = run(folder, **params)
    for split, files in spec.splits.items():
        click.echo(f"{split:>5}: {files.annotations}  images {files.images}")
    click.echo(f"{spec.classes().describe()}; written to {spec.source}")


@cli.group(cls=CarddGroup)
def convert() -> None:
    """Import a dataset in another format as COCO (the source is only read)."""


@convert.command(
    "yolo",
    epilog="Example: cardd convert yolo ~/datasets/carparts-seg/data.yaml data/carparts",
)
@click.argument("source", type=click.Path(path_type=Path, exists=True))
@click.argument("out", type=PathArg)
@options.apply(*convert_options.OPTIONS)
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


@cli.command("download-weights", epilog="Example: cardd download-weights --dest checkpoints")
@options.apply(*weights_options.OPTIONS)
def download_weights(dest: Path, url: str | None, force: bool) -> None:
    """Fetch the COCO-pretrained Mask R-CNN R-101 DCN checkpoint DCN+ starts from."""
    from cardd.models.pretrained import PRETRAINED_URL
    from cardd.models.pretrained import download_weights as run

    run(dest=dest, url=url or PRETRAINED_URL, force=force)


TRAIN_EPILOG = """\b
Examples:
  cardd train --config DCN_plus                      # the paper's DCN+ on a CUDA GPU
  cardd train --config DCN_plus --amp                # mixed precision
  cardd train --config DCN_plus --nproc 4            # 4 GPUs on this machine (torchrun)
  cardd train --config DCN_plus --resume             # continue the last run
  cardd train --config tiny_DCN_plus --max-epochs 2  # toy run on CPU (cardd synth-data first)
  cardd train --config DCN_plus --data my-data.yaml --from dcn_plus.pth   # your classes
  cardd train --config DCN_plus --profile-steps 5    # where an iteration's time goes
  torchrun --nnodes 2 --nproc_per_node 8 ... -m cardd train --launcher pytorch
  srun -N 2 --ntasks-per-node 8 cardd train --launcher slurm
"""


@cli.command(epilog=TRAIN_EPILOG)
@options.decorate(TrainOptions)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the merged config after all options (and the effective lr), then exit.",
)
def train(print_config: bool, **params) -> None:
    """Train a model (mmengine Runner); checkpoints and logs go to the work dir.

    The lr in a config is for its total batch of base_batch_size images (4 for
    DCN_plus) and scales linearly with the real total batch (auto_scale_lr):
    change the batch size, not the lr. The model predicts the dataset's classes:
    its annotation files' categories (ids, names, order).
    """
    from cardd.train.runner import print_config as describe
    from cardd.train.runner import train as run

    opts = options.from_params(TrainOptions, params)
    if print_config:
        click.echo(describe(opts))
        return
    out = run(opts, from_process_start=True)
    click.echo(f"training finished: checkpoints and logs in {out}")


EVAL_EPILOG = """\b
Examples:
  cardd eval --checkpoint best --work-dir work_dirs/DCN_plus --split test
  cardd eval --checkpoint model.pth --data-root data/CarDD_COCO      # a `cardd export` file
  cardd eval --results rfdetr_test.json --data-root data/CarDD_COCO --split test
  cardd eval --results preds.json --ann data/CarDD_COCO/annotations/instances_test2017.json
  cardd eval --checkpoint best --work-dir work_dirs/claims --data my-data.yaml --split val
  cardd eval --checkpoint dcn_plus.onnx --data-root data/CarDD_COCO  # onnxruntime, no PyTorch
"""


@cli.command("eval", epilog=EVAL_EPILOG)
@options.decorate(EvalOptions)
def eval_(**params) -> None:
    """COCO box and mask AP, per class and in the CarDD paper's size bins, of a
    model or of any model's COCO results file."""
    from cardd.core import logs
    from cardd.core.storage import join
    from cardd.evaluate.common import print_metrics
    from cardd.evaluate.runner import run_eval

    opts = options.from_params(EvalOptions, params)
    metrics, out_dir = run_eval(opts)
    if opts.results is not None and metrics["detections"] == 0:
        click.echo(f"{opts.results} holds no detections: every AP is 0", err=True)
    if logs.verbosity() >= logs.NORMAL:
        print_metrics(metrics)
    metrics_file, report = join(out_dir, "metrics.json"), join(out_dir, "report.html")
    click.echo(f"metrics written to {metrics_file}; report: {report}")


ASSESS_EPILOG = """\b
Examples:
  cardd assess claim_1234/ --damage-model dcn_plus.pth --parts-model carparts.pth
  cardd assess a.jpg b.jpg --damage-model dcn_plus.pth --thresholds runs/eval/exp/metrics.json
  cardd assess claim/ --damage-model dcn_plus.pth --rules my_rules.yaml --out-dir runs/c1234
"""


@cli.command(epilog=ASSESS_EPILOG)
@click.argument("inputs", nargs=-1)
@options.decorate(AssessOptions)
def assess(inputs, **params) -> None:
    """The photos of one claim: which part is damaged, how badly, what to do, how sure;
    claim.json, claim.csv and claim.html in the output folder."""
    from cardd.assess.claim import claim_lines
    from cardd.assess.run import run_assessment, run_claims

    opts = options.from_params(AssessOptions, params, inputs=inputs)
    if bool(opts.inputs) == bool(opts.claims):
        raise click.UsageError("pass the photos of one claim, or --claims DIR, not both")
    if opts.claims is not None:
        results, out = run_claims(opts, opts.claims)
        failed = 0
        for name, claim in results:
            if isinstance(claim, str):
                failed += 1
                click.echo(f"{name}: failed: {claim}", err=True)
            else:
                click.echo(f"{name}: {claim_lines(claim)[0]}")
        click.echo(f"{len(results)} claims assessed into {out} (claims.csv)")
        if failed:
            raise click.exceptions.Exit(1)
        return
    claim, out = run_assessment(opts)
    for line in claim_lines(claim):
        click.echo(line)
    click.echo(f"claim written to {out}: claim.json, claim.csv, claim.html")


INFER_EPILOG = """\b
Examples:
  cardd infer photo.jpg
  cardd infer claims/ --recursive --score-thr 0.5 --out-dir runs/claims
  cardd infer photos/ --checkpoint model.pth                # a `cardd export` file
  cardd infer photos/ --checkpoint model.onnx               # onnxruntime, no PyTorch
  cardd infer 'photos/*.png' --checkpoint runs/demo/work_dir/epoch_12.pth
  cardd infer s3://claims/2026-12/ --checkpoint model.pth --out-dir s3://results/2026-12/
  cardd infer s3://claims/ --recursive --checkpoint model.pth --engine ray --address auto \\
      --gpus-per-worker 1 --batch-size 4 --out-dir s3://results/all/ --resume
"""


@cli.command(epilog=INFER_EPILOG)
@click.argument("inputs", nargs=-1, required=True)
@options.decorate(InferOptions)
def infer(inputs, **params) -> None:
    """Detect damage in images (files, folders, globs, URLs): annotated images, JSON, CSV."""
    from cardd.infer.local import run_inference

    summary = run_inference(options.from_params(InferOptions, params, inputs=inputs))
    click.echo(summary.line())
    if summary.failed:
        raise click.exceptions.Exit(1)


SERVE_EPILOG = """\b
Examples:
  cardd serve --checkpoint dcn_plus.pth                   # http://127.0.0.1:8000/
  cardd serve --checkpoint best --work-dir work_dirs/DCN_plus --device cuda
  CARDD_API_KEY=... cardd serve --checkpoint dcn_plus.pth --host 0.0.0.0 --port 8080
  cardd serve --checkpoint dcn_plus.pth --device cuda --replicas 4   # one per GPU
  curl -F image=@car.jpg 'http://127.0.0.1:8000/v1/detect?score_thr=0.5'
"""


@cli.command(epilog=SERVE_EPILOG)
@options.decorate(ServeOptions)
def serve(**params) -> None:
    """The claims service: an HTTP API and a web page around one model (FastAPI)."""
    from cardd.serve.run import serve as run

    run(options.from_params(ServeOptions, params), announce=click.echo)


@cli.command(epilog="Example: cardd plot work_dirs/DCN_plus")
@click.argument("work_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=PathArg, help="Default: WORK_DIR/plots/training_curves.png")
def plot(work_dir: Path, out: Path | None) -> None:
    """Draw a run's training curves (losses, lr, validation AP) from its logs."""
    from cardd.visualize.plots import training_curves

    click.echo(f"training curves: {training_curves(work_dir, out)}")


EXPORT_EPILOG = """\b
Examples:
  cardd export --checkpoint best --work-dir work_dirs/DCN_plus --out dcn_plus.pth --half
  cardd export --checkpoint runs/demo/work_dir/epoch_12.pth --out tiny.pth
  cardd export --checkpoint dcn_plus.pth --out dcn_plus.onnx     # runs without PyTorch
"""


@cli.command(epilog=EXPORT_EPILOG)
@options.decorate(ExportOptions)
def export(**params) -> None:
    """Write a model file to share: weights, config, classes, versions, metrics; it
    loads with torch.load(weights_only=True) and runs no code. With --format onnx,
    an ONNX graph checked against PyTorch before it is written."""
    from cardd.export.run import export_model

    result = export_model(options.from_params(ExportOptions, params))
    epoch = f", epoch {result.epoch}" if result.epoch is not None else ""
    if result.check:
        check = result.check
        click.echo(
            f"checked with onnxruntime against PyTorch: {check['detections']} detections, "
            f"boxes within {check['max_box_px']:.2g} px, scores within {check['max_score']:.2g}"
        )
    click.echo(
        f"exported {result.source}{epoch} -> {result.path} ({result.size_bytes / 1e6:.1f} MB)"
    )
    click.echo(f"sha256 {result.sha256}")


@cli.command()
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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="cardd")  # CarddGroup.invoke filters library warnings first


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
